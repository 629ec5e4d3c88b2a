/**
 * The commands Cyrus 3.6.1 leaves unimplemented: delete, move (to another partition) and
 * reconstruct (backups.db from the partitions); and `lock -c`. Checked with our own list and
 * verify, and with the original ctl_backups when it is installed.
 */
import fs from "node:fs"
import path from "node:path"
import { beforeEach, describe, expect, it } from "vitest"
import { goldenServer, runOurs, runTheirs, type Server } from "./support.js"
import { haveCyrusTools } from "../support/cyrus.js"

describe("ctl_backups delete, move, reconstruct, lock -c", () => {
  let server: Server & { data: string }
  beforeEach(async () => {
    server = await goldenServer("maint")
  })
  const ctl = (...argv: Array<string>) => runOurs("ctl_backups", ["-C", server.conf, ...argv])

  it("moves a backup to another partition and keeps it verifiable", async () => {
    const moved = await ctl("-v", "move", "alice", "other")
    expect(moved).toMatchObject({ code: 0, stdout: expect.stringMatching(/move alice: ok\n$/) })
    expect(fs.existsSync(server.data)).toBe(false)
    const listed = await ctl("list")
    expect(listed.stdout).toMatch(new RegExp(`\\talice\\t${path.join(server.dir, "other", "a")}/alice_[A-Za-z0-9]{6}\\n$`))
    expect((await ctl("verify", "alice")).stdout).toBe("verify alice: ok\n")
    if (haveCyrusTools) expect((await runTheirs("ctl_backups", ["-C", server.conf, "verify", "alice"])).stdout).toBe("verify alice: ok\n")
    expect(await ctl("move", "alice", "nosuch")).toMatchObject({ code: 75, stdout: "move alice: failed (Unknown/invalid partition)\n" })
  })

  it("deletes a backup's files and its backups.db entry", async () => {
    expect(await ctl("delete", "alice")).toMatchObject({ code: 0, stdout: "delete alice: ok\n" })
    expect(fs.existsSync(server.data) || fs.existsSync(`${server.data}.index`)).toBe(false)
    expect(await ctl("list", "alice")).toMatchObject({ code: 75, stderr: "alice: not found in backups.db\n" })
  })

  it("reconstructs backups.db from the partitions", async () => {
    fs.rmSync(server.dbPath)
    fs.mkdirSync(path.join(server.partition, "b"))
    fs.writeFileSync(path.join(server.partition, "b", "bob_AbC123"), "")
    expect(await ctl("reconstruct")).toMatchObject({ code: 0, stdout: "reconstruct alice: added\nreconstruct bob: added\n" })
    const listed = await ctl("list")
    expect(listed.stdout).toContain(`\talice\t${server.data}\n`)
    fs.rmSync(path.join(server.partition, "b", "bob_AbC123"))
    expect(await ctl("reconstruct")).toMatchObject({ code: 0, stdout: "reconstruct bob: removed (data file missing)\n" })
  })

  it("lock -c creates a new backup exclusively", async () => {
    const fresh = path.join(server.partition, "a", "new_backup")
    expect(await ctl("-f", "lock", "-c", "-x", "test -f \"$ctl_backups_lock_index_fname\"", fresh)).toMatchObject({ code: 0 })
    expect(fs.existsSync(fresh)).toBe(true)
    expect(await ctl("-f", "lock", "-c", fresh)).toMatchObject({
      code: 75,
      stdout: `* Trying to obtain lock on ${fresh}...\nNO failed (Mailbox already exists)\n`
    })
  })

  it("compact runs (compact.test.ts checks what it keeps); a second run has nothing to do", async () => {
    const first = await ctl("compact", "alice")
    expect(first.stdout).toMatch(/^compact alice: (ok|skipped)\n$/)
    expect(first.code).toBe(first.stdout.includes("ok") ? 0 : 75)
    expect(await ctl("compact", "alice")).toMatchObject({ code: 75, stdout: "compact alice: skipped\n" })
    expect(await ctl("verify", "alice")).toMatchObject({ code: 0 })
  })
})
