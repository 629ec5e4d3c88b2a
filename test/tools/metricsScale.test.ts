/**
 * Acceptance (issue 16): `ctl_backups metrics` over 10,000 synthetic backups (entries in
 * backups.db, each with a small data file and index of its own) finishes in under 10 s and
 * under 128 MB. The bounds are the issue's, checked on the child process that does the work
 * (`/usr/bin/time`: elapsed seconds and peak RSS), not a timing claim: the figures with the
 * machine's load are in docs/benchmarks.md (`npm run bench:metrics`). Needs `npm run build`.
 *
 * Run twice: without object storage, and with it configured, when the same pass also reads each
 * index's upload state for `cyrus_backup_upload_pending_*` (local state only: the configured
 * endpoint is a local listener that must see no connection).
 */
import { spawn } from "node:child_process"
import net from "node:net"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeSyntheticHost, uploadPendingOf, type SyntheticHost } from "../support/syntheticBackups.js"

const USERS = 10_000
const haveTime = fs.existsSync("/usr/bin/time") && fs.existsSync("dist/bundle/ctl_backups.bundle.cjs")

describe.skipIf(!haveTime)(`ctl_backups metrics over ${USERS} backups`, () => {
  let host: SyntheticHost
  beforeAll(async () => {
    host = await makeSyntheticHost(fs.mkdtempSync(path.join(os.tmpdir(), "metrics-scale-")), USERS, { ageOf: (i) => (i % 100 === 0 ? 3 * 86400 : undefined) })
  }, 300_000)
  afterAll(() => fs.rmSync(host.dir, { recursive: true, force: true }))

  // asynchronous, so that the listener below can accept while the child runs
  const timed = (conf: string) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn("/usr/bin/time", ["-f", "TIME %e %M", path.resolve("bin/ctl_backups"), "-C", conf, "metrics"])
      const out: Array<Buffer> = []
      const err: Array<Buffer> = []
      child.stdout.on("data", (b: Buffer) => out.push(b))
      child.stderr.on("data", (b: Buffer) => err.push(b))
      child.on("close", (status) => resolve({ status, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }))
    })

  const check = async (conf: string, what: string) => {
    const r = await timed(conf)
    expect(r.status, r.stderr).toBe(0)
    const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr)
    expect(m, r.stderr).not.toBeNull()
    const [seconds, kb] = [Number(m![1]), Number(m![2])]
    console.log(`metrics over ${USERS} backups${what}: ${seconds} s, peak RSS ${(kb / 1024).toFixed(1)} MB, load ${os.loadavg()[0]!.toFixed(2)}`)
    expect(r.stdout).toContain(`\ncyrus_backup_users ${USERS}\n`)
    expect(r.stdout).toContain(`\ncyrus_backup_users_stale ${USERS / 100}\n`)
    expect(r.stdout).toContain(`\ncyrus_backup_chunks ${3 * USERS}\n`)
    expect(seconds).toBeLessThan(10)
    expect(kb).toBeLessThan(128 * 1024)
    return r.stdout
  }

  it("finishes in under 10 s and 128 MB, every backup counted", async () => {
    const text = await check(host.conf, "")
    expect(text).not.toContain("cyrus_backup_upload_pending")
  }, 120_000)

  it("the same with object storage configured: pending from the local upload state, no request to the store", async () => {
    let connections = 0
    const listener = net.createServer((socket) => {
      connections++
      socket.destroy()
    })
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve))
    try {
      const { port } = listener.address() as net.AddressInfo
      const text = await check(host.objectStoreConf(`http://127.0.0.1:${port}`), " with object storage")
      const pending = uploadPendingOf(USERS)
      expect(text).toContain(`\ncyrus_backup_upload_pending_chunks ${pending.chunks}\n`)
      expect(text).toContain(`\ncyrus_backup_upload_pending_bytes ${pending.bytes}\n`)
      expect(connections).toBe(0)
    } finally {
      listener.close()
    }
  }, 120_000)
})
