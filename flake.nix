{
  description = "cyrus-backupd: the Cyrus IMAP backup server and its tools, on Node.js and Effect";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # A development shell with what `npm ci && npm test` needs. The release package
      # (buildNpmPackage with a pinned npmDepsHash) is tracked by the release issue.
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.nodejs_20 pkgs.python3 pkgs.gnumake pkgs.gcc pkgs.sqlite pkgs.git ];
        };
      });
    };
}
