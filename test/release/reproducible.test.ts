/**
 * Release builds are reproducible: the same commit built from two checkouts at different paths
 * into two output directories gives the same files, byte for byte, with the same modes and
 * mtimes, and nothing in them names the machine's paths or the build time.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { buildRelease, repoRoot } from "../../scripts/build-release.mjs"
import { listTree, removeDir, tempDir } from "./support/release.js"

/** What a build reads from a checkout (esbuild also honours tsconfig.json). */
const CHECKOUT_INPUTS = ["package.json", "tsconfig.json", "src", "scripts", "bin/load.cjs", "build/Release/posix.node"]

/**
 * A second checkout at another path and depth. node_modules is hard-linked (cheap, and the build
 * never writes there); where hard links are impossible it is copied.
 */
const copyCheckout = (root: string): string => {
  const checkout = path.join(root, "deeper", "checkout")
  for (const input of CHECKOUT_INPUTS) {
    fs.mkdirSync(path.dirname(path.join(checkout, input)), { recursive: true })
    fs.cpSync(path.join(repoRoot, input), path.join(checkout, input), { recursive: true })
  }
  const linked = spawnSync("cp", ["-al", path.join(repoRoot, "node_modules"), path.join(checkout, "node_modules")])
  if (linked.status !== 0) fs.cpSync(path.join(repoRoot, "node_modules"), path.join(checkout, "node_modules"), { recursive: true, verbatimSymlinks: true })
  return checkout
}

describe("release build", () => {
  const root = tempDir("repro")
  afterAll(() => removeDir(root))

  it("is byte-identical from two checkouts into two output directories", async () => {
    const outA = path.join(root, "a")
    const first = await buildRelease({ outDir: outA })

    const checkout = copyCheckout(root)
    const outB = path.join(root, "elsewhere", "b")
    const second = spawnSync(
      process.execPath,
      [path.join(checkout, "scripts", "build-release.mjs"), "--out", outB, "--commit", first.buildInfo.commit, "--epoch", String(first.epoch)],
      { cwd: root, encoding: "utf8", env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } }
    )
    expect(second.stderr).toBe("")
    expect(second.status).toBe(0)

    const a = listTree(outA)
    const b = listTree(outB)
    expect(b).toEqual(a)
    expect(a.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        "backupd", "ctl_backups", "cyr_backup", "restore",
        "lib/backupd.cjs", "lib/ctl_backups.cjs", "lib/cyr_backup.cjs", "lib/restore.cjs", "lib/load.cjs",
        "lib/backupd.bundle.cjs", "lib/ctl_backups.bundle.cjs", "lib/cyr_backup.bundle.cjs", "lib/restore.bundle.cjs",
        "build/Release/better_sqlite3.node", "build/Release/fs_ext.node", "build/Release/posix.node",
        "package.json", "build-info.json", "SHA256SUMS"
      ])
    )
    // Every file and directory carries the one fixed mtime.
    expect(new Set(a.map((f) => f.mtime))).toEqual(new Set([first.epoch]))

    // SHA256SUMS lists every other file with its real sum.
    const sums = fs.readFileSync(path.join(outA, "SHA256SUMS"), "utf8").trim().split("\n")
    const files = a.filter((f) => f.sha256 !== "dir" && f.name !== "SHA256SUMS").sort((x, y) => (x.name < y.name ? -1 : 1))
    expect(sums).toEqual(files.map((f) => `${f.sha256}  ${f.name}`))

    // No trace of where or when it was built.
    for (const f of files.filter((f) => !f.name.endsWith(".node"))) {
      const text = fs.readFileSync(path.join(outA, f.name), "latin1")
      for (const place of [repoRoot, checkout, root]) expect(text.includes(place), `${f.name} names ${place}`).toBe(false)
    }
    expect(JSON.parse(fs.readFileSync(path.join(outA, "build-info.json"), "utf8"))).toEqual(first.buildInfo)
    expect(Object.keys(first.buildInfo).sort()).toEqual(["commit", "name", "version"])
  }, 120_000)

  it("refuses to clear a directory that is not a release", async () => {
    const dir = path.join(root, "precious")
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, "keep.txt"), "mine")
    await expect(buildRelease({ outDir: dir })).rejects.toThrow(/not a release/)
    expect(fs.readFileSync(path.join(dir, "keep.txt"), "utf8")).toBe("mine")
  })
})
