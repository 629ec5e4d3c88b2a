/**
 * The example configuration of a backup host (docs/examples/) is valid: our reader accepts
 * imapd.conf and resolves the paths it means; Cyrus's cyr_info conf-lint, when installed, finds
 * nothing unknown in it; cyrus.conf names the installed wrapper.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Config } from "../../src/config/index.js"
import { repoRoot } from "../../scripts/build-release.mjs"
import { cyrusOracle, removeDir, runAsCyrus, tempDir } from "./support/release.js"

const examples = path.join(repoRoot, "docs", "examples")
const noOracle = cyrusOracle()

describe("docs/examples", () => {
  it("imapd.conf is read by our configuration layer", async () => {
    const c = await Effect.runPromise(
      Config.load({ path: path.join(examples, "imapd.conf"), service: "backupd", env: {} }).pipe(Effect.provide(NodeFileSystem.layer))
    )
    expect(c.backupDbPath).toBe("/var/lib/cyrus/backups.db")
    expect(c.backupStagingPath).toBe("/var/tmp/cyrus-backupd/staging")
    expect(c.overflow("backuppartition-default")).toBe("/srv/cyrus-backups")
    expect(c.admins).toBe("repl")
  })

  it.skipIf(noOracle !== undefined)("imapd.conf passes Cyrus's cyr_info conf-lint", () => {
    const dir = tempDir("examples")
    try {
      fs.chmodSync(dir, 0o755)
      const conf = path.join(dir, "imapd.conf")
      fs.copyFileSync(path.join(examples, "imapd.conf"), conf)
      fs.chmodSync(conf, 0o644)
      const r = runAsCyrus("cyr_info", ["-C", conf, "conf-lint"])
      expect(r.stderr).toBe("")
      expect(r.stdout).toBe("")
      expect(r.status).toBe(0)
    } finally {
      removeDir(dir)
    }
  })

  it("cyrus.conf runs backupd from the install layout", () => {
    const text = fs.readFileSync(path.join(examples, "cyrus.conf"), "utf8")
    expect(text).toMatch(/^\s*backupd cmd="\/usr\/local\/libexec\/cyrus-backupd\/backupd" listen="csync"/m)
  })
})
