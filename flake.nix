{
  description = "cyrus-backupd: the Cyrus IMAP backup server and its tools, on Node.js and Effect";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      programs = [ "backupd" "ctl_backups" "cyr_backup" "restore" ];
      version = (builtins.fromJSON (builtins.readFile ./package.json)).version;
      # Recorded in build-info.json and printed by --version.
      commit = self.rev or "dirty";

      release = pkgs:
        let nodejs = pkgs.nodejs_20;
        in pkgs.buildNpmPackage {
          pname = "cyrus-backupd";
          inherit version nodejs;
          src = pkgs.lib.cleanSource ./.;

          # The fixed-output hash of the npm dependencies fetched from package-lock.json.
          # UPDATE IT whenever package-lock.json changes (docs/release.md, "The npmDepsHash"):
          #   nix run nixpkgs#prefetch-npm-deps -- package-lock.json
          # or build once with lib.fakeHash and copy the "got:" hash from the error.
          # !!! PLACEHOLDER: not computed yet (the machine that wrote this had no network). !!!
          npmDepsHash = pkgs.lib.fakeHash;

          # node-gyp builds better-sqlite3, fs-ext and our native/posix.c from source: no
          # prebuilt binaries can be downloaded in the sandbox.
          nativeBuildInputs = [ pkgs.python3 pkgs.gnumake ];
          npm_config_build_from_source = "true";
          npm_config_nodedir = "${nodejs}";
          CYRUS_BACKUPD_COMMIT = commit;

          # `npm ci` (npmConfigHook) builds the dependencies' addons; ours is the root
          # package's own install script, which npm rebuild does not run.
          dontNpmBuild = true;
          buildPhase = ''
            runHook preBuild
            npm run install
            node scripts/build-release.mjs --out release
            runHook postBuild
          '';

          # $out/lib/cyrus-backupd (the release) and $out/libexec/cyrus-backupd/<program>
          # (wrappers that exec this nodejs), as `make install` lays them out anywhere.
          installPhase = ''
            runHook preInstall
            node scripts/install-prefix.mjs --prefix "$out" --node "${nodejs}/bin/node" --from release
            runHook postInstall
          '';

          meta = {
            description = "Cyrus IMAP 3.6 compatible backup server (backupd) and tools";
            license = pkgs.lib.licenses.bsd3;
            platforms = systems;
          };
        };
    in
    {
      packages = forAll (pkgs: {
        default = release pkgs;
        cyrus-backupd = release pkgs;
      });

      # `nix run .#backupd -- --version`. The names clash with Cyrus's own tools, so they are
      # apps under libexec, not binaries put on PATH.
      apps = forAll (pkgs:
        let pkg = release pkgs;
        in nixpkgs.lib.genAttrs programs (name: {
          type = "app";
          program = "${pkg}/libexec/cyrus-backupd/${name}";
        }) // { default = { type = "app"; program = "${pkg}/libexec/cyrus-backupd/backupd"; }; });

      # The test suite (npm test: build, type-check, vitest). Tests that need the Debian Cyrus
      # 3.6.1 programs or root skip themselves, loudly, inside the sandbox.
      checks = forAll (pkgs: {
        tests = (release pkgs).overrideAttrs (old: {
          pname = "cyrus-backupd-tests";
          doCheck = true;
          checkPhase = ''
            runHook preCheck
            npm test
            runHook postCheck
          '';
          installPhase = ''
            runHook preInstall
            touch "$out"
            runHook postInstall
          '';
        });
        release = release pkgs;
      });

      # What `npm ci && npm test` and the interop harness need.
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_20
            pkgs.python3 # node-gyp, and the harness's syslog sink
            pkgs.gnumake
            pkgs.gcc
            pkgs.sqlite # inspecting backup indexes
            pkgs.git
            pkgs.cyrus_sasl # saslpasswd2 for the interop harness
          ];
        };
      });
    };
}
