/**
 * Acceptance (issue 16): `ctl_backups metrics` over 10,000 synthetic backups (entries in
 * backups.db, each with a small data file and index of its own) finishes in under 10 s and
 * under 128 MB. The bounds are the issue's, checked on the child process that does the work
 * (`/usr/bin/time`: elapsed seconds and peak RSS), not a timing claim: the figures with the
 * machine's load are in docs/benchmarks.md (`npm run bench:metrics`). Needs `npm run build`.
 */
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeSyntheticHost, type SyntheticHost } from "../support/syntheticBackups.js"

const USERS = 10_000
const haveTime = fs.existsSync("/usr/bin/time") && fs.existsSync("dist/bundle/ctl_backups.bundle.cjs")

describe.skipIf(!haveTime)(`ctl_backups metrics over ${USERS} backups`, () => {
  let host: SyntheticHost
  beforeAll(async () => {
    host = await makeSyntheticHost(fs.mkdtempSync(path.join(os.tmpdir(), "metrics-scale-")), USERS, { ageOf: (i) => (i % 100 === 0 ? 3 * 86400 : undefined) })
  }, 300_000)
  afterAll(() => fs.rmSync(host.dir, { recursive: true, force: true }))

  it("finishes in under 10 s and 128 MB, every backup counted", () => {
    const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %M", path.resolve("bin/ctl_backups"), "-C", host.conf, "metrics"], { encoding: "utf8", maxBuffer: 1 << 24 })
    expect(r.status, r.stderr).toBe(0)
    const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr)
    expect(m, r.stderr).not.toBeNull()
    const [seconds, kb] = [Number(m![1]), Number(m![2])]
    console.log(`metrics over ${USERS} backups: ${seconds} s, peak RSS ${(kb / 1024).toFixed(1)} MB, load ${os.loadavg()[0]!.toFixed(2)}`)
    expect(r.stdout).toContain(`\ncyrus_backup_users ${USERS}\n`)
    expect(r.stdout).toContain(`\ncyrus_backup_users_stale ${USERS / 100}\n`)
    expect(r.stdout).toContain(`\ncyrus_backup_chunks ${3 * USERS}\n`)
    expect(seconds).toBeLessThan(10)
    expect(kb).toBeLessThan(128 * 1024)
  }, 120_000)
})
