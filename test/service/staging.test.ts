import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { spawnSync } from "node:child_process"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { removeOrphanedStaging } from "../../src/service/backupd.js"
import { memoryLog } from "../../src/telemetry/ServiceLog.js"

describe("staging directories left by killed sessions", () => {
  it("are removed when their process is gone; live ones and other names stay", async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "staging-"))
    // A pid that surely ended: a child that has exited.
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout
    for (const name of [dead, String(process.pid), String(process.ppid), "notapid"]) {
      fs.mkdirSync(path.join(base, name, "pending"), { recursive: true })
      fs.writeFileSync(path.join(base, name, "0123456789abcdef0123456789abcdef01234567"), "x")
    }
    const log = memoryLog()
    await Effect.runPromise(removeOrphanedStaging(base, log).pipe(Effect.provide(NodeFileSystem.layer)))
    expect(fs.readdirSync(base).sort()).toEqual([String(process.pid), String(process.ppid), "notapid"].sort())
    expect(log.lines).toEqual([`info: removing staging directory of ended process ${dead}`])
    fs.rmSync(base, { recursive: true, force: true })
  })
})
