/**
 * flake.nix parses, and its outputs evaluate to the expected shape against a stub nixpkgs
 * (no network here to fetch the real one): packages, an app per program, checks, devShell.
 * Needs nix-instantiate (Debian: apt-get install nix-bin); skipped loudly without it.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../../scripts/build-release.mjs"

const haveNix = spawnSync("nix-instantiate", ["--version"]).status === 0
if (!haveNix) console.warn("!!! release tests: SKIPPING the flake.nix checks: nix-instantiate is missing (apt-get install nix-bin)")

const nix = (args: ReadonlyArray<string>) =>
  spawnSync("nix-instantiate", [...args], { encoding: "utf8", env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: "/tmp", NIX_STATE_DIR: "/tmp/cyb-nix-state" } })

describe.skipIf(!haveNix)("flake.nix", () => {
  const flake = path.join(repoRoot, "flake.nix")

  it("parses", () => {
    const r = nix(["--parse", flake])
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
  })

  it("evaluates to a package, an app per program, checks and a dev shell", () => {
    const r = nix(["--eval", "--strict", "--json", path.join(__dirname, "support", "flakeStub.nix"), "--arg", "flakePath", flake])
    expect(r.stderr).toBe("")
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({
      pkgName: "cyrus-backupd",
      commit: "0123abc",
      checks: ["release", "tests"],
      testsName: "cyrus-backupd-tests"
    })
    for (const program of ["backupd", "ctl_backups", "cyr_backup", "restore"]) {
      expect(out.apps[program]).toBe(`/nix/store/fake-cyrus-backupd/libexec/cyrus-backupd/${program}`)
    }
  })
})
