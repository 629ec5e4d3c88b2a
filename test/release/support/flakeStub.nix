# Evaluates flake.nix's outputs against a stub nixpkgs (no network here): catches typos and
# wrong structure, not nixpkgs API mistakes.
{ flakePath }:
let
  flake = import flakePath;
  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    cleanSource = p: p;
    fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    licenses.bsd3 = "bsd3";
  };
  mkDrv = attrs: attrs // {
    outPath = "/nix/store/fake-${attrs.pname}";
    overrideAttrs = f: mkDrv (attrs // f attrs);
  };
  pkgs = {
    inherit lib;
    nodejs_20 = "/nix/store/fake-nodejs";
    python3 = "py"; gnumake = "make"; gcc = "gcc"; sqlite = "sqlite"; git = "git"; cyrus_sasl = "sasl";
    buildNpmPackage = mkDrv;
    mkShell = a: a;
  };
  nixpkgs = { inherit lib; legacyPackages = { x86_64-linux = pkgs; aarch64-linux = pkgs; }; };
  out = flake.outputs { self = { rev = "0123abc"; }; inherit nixpkgs; };
  s = "x86_64-linux";
in {
  pkgName = out.packages.${s}.default.pname;
  version = out.packages.${s}.default.version;
  commit = out.packages.${s}.default.CYRUS_BACKUPD_COMMIT;
  apps = builtins.mapAttrs (n: a: a.program) out.apps.${s};
  checks = builtins.attrNames out.checks.${s};
  testsName = out.checks.${s}.tests.pname;
  testsCheck = out.checks.${s}.tests.checkPhase;
  shell = builtins.length out.devShells.${s}.default.packages;
}
