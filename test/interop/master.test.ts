/**
 * Our backupd as a service of the REAL Cyrus master: master forks `bin/backupd -U 2`, hands
 * it the listening socket and status pipe, and the real sync_client backs users up through
 * it. With -U 2 a process ends after two connections (the harness's port probe is the first
 * one) and master forks a new one for the next; master must never complain about the status
 * messages it got.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  haveCyrus,
  liveSleep,
  populate,
  requireSuccess,
  runCtlBackups,
  runSyncClient,
  startBackupServer,
  startSource,
  warnIfNoCyrus
} from "../harness/index.js"
import { ensureBuilt } from "../service/support/fakeMaster.js"
import { MASTER_COMPLAINTS } from "../service/support/masterLog.js"

const cyrusPresent = haveCyrus()
warnIfNoCyrus("master service (our backupd under the real master)")

const BACKUPD = path.resolve("bin/backupd")

/** Pids of master's children running our backupd (node exec'd through bin/backupd). */
const ourBackupdChildren = (masterPid: number): ReadonlyArray<number> => {
  const pids: Array<number> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid !== masterPid) continue
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "latin1")
      if (cmdline.includes(BACKUPD)) pids.push(Number(entry))
    } catch {
      // the process went away meanwhile
    }
  }
  return pids
}

describe.skipIf(!cyrusPresent)("our backupd under the real Cyrus master", () => {
  it.live(
    "serves sync_client; -U 2 ends a process after two connections and master starts another",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          ensureBuilt()
          const backup = yield* startBackupServer({
            backupdCmd: BACKUPD,
            backupdArgs: ["-U", "2"],
            extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"]
          })
          const source = yield* startSource({ backupPort: backup.port })
          yield* populate(source, { messages: 12, seed: 7 })

          // Sample master's backupd children while the syncs run.
          const seen = new Set<number>()
          yield* Effect.forkScoped(
            Effect.forever(
              Effect.zipRight(
                Effect.sync(() => ourBackupdChildren(backup.masterPid).forEach((p) => seen.add(p))),
                liveSleep("20 millis")
              )
            )
          )
          // First connection: the whole server at once.
          const all = yield* runSyncClient(source, ["-A"])
          expect(all.exitCode, all.stderr).toBe(0)
          // Second and third: one user each. The process that served two connections exits (-U 2).
          for (const user of ["alice", "bob"]) {
            yield* runSyncClient(source, ["-u", user]).pipe(Effect.flatMap(requireSuccess))
          }
          yield* backup.awaitBackupsClosed()
          yield* liveSleep("300 millis")

          // Two processes served the three connections: the first ended after two.
          expect(seen.size).toBe(2)
          const [first] = [...seen].sort((a, b) => a - b)
          expect(fs.existsSync(`/proc/${first}`)).toBe(false)

          const verify = yield* runCtlBackups(backup, ["verify", "-A"])
          expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
          const list = yield* runCtlBackups(backup, ["list"])
          for (const user of ["alice", "bob", "carol"]) expect(list.stdout).toContain(user)

          // master accepted every status message (no unknown state, no long dead children).
          const masterLog = yield* backup.masterLog
          expect(masterLog).not.toMatch(MASTER_COMPLAINTS)
          // The accept lock lives where Cyrus puts it.
          expect(fs.readdirSync(path.join(backup.root, "conf", "socket"))).toContain("backupd-0.lock")

          // When syslog is captured: every session logged its totals, under two different pids.
          if (backup.syslogCapture.available) {
            const lines = yield* backup.syslog
            // The harness's port probe (connect, close) is the first connection; then the three syncs.
            const totals = lines.filter((l) => l.includes("session totals:"))
            expect(totals.filter((l) => l.includes("user=admin")).length).toBe(3)
            expect(totals.length).toBe(4)
            const pids = new Set(totals.map((l) => /\[(\d+)\]/.exec(l)?.[1]))
            expect(pids.size).toBe(2)
            expect(lines.some((l) => /login: \S+ admin PLAIN User logged in/.test(l))).toBe(true)
          }
        })
      ),
    180_000
  )
})
