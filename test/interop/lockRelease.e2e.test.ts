/**
 * Locks released per user: right after `sync_client -A` returns, at most the last user's
 * backup may still be locked. Our backupd seals and unlocks a user's backup as soon as the
 * next user's sync begins (GET USER / GET META of another user), instead of holding every
 * touched backup until the session ends.
 *
 * Real master, real sync_client 3.6.1, our backupd; locks are seen through the real
 * `ctl_backups list -A` (a locked backup is a `<user>: ... locked ...` line on its stderr).
 * CI size: 8 users (CYB_LOCK_USERS to change it; the figure in docs/benchmarks.md was taken
 * with 60). Timing is reported, never asserted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as path from "node:path"
import {
  haveCyrus,
  populate,
  runCtlBackups,
  runSyncClient,
  startBackupServer,
  startSource,
  warnIfNoCyrus
} from "../harness/index.js"
import { ensureBuilt } from "../service/support/fakeMaster.js"

const cyrusPresent = haveCyrus()
warnIfNoCyrus("per-user lock release (our backupd under the real master)")

const BACKUPD = path.resolve("bin/backupd")
const USERS = Array.from({ length: Number(process.env["CYB_LOCK_USERS"] ?? 8) }, (_, i) => `u${String(i + 1).padStart(2, "0")}`)

describe.skipIf(!cyrusPresent)("per-user lock release", () => {
  it.live(
    `right after sync_client -A of ${USERS.length} users returns, at most the last user's backup is locked`,
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          ensureBuilt()
          const backup = yield* startBackupServer({
            backupdCmd: BACKUPD,
            extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"]
          })
          const source = yield* startSource({ backupPort: backup.port, users: USERS })
          yield* populate(source, { messages: USERS.length * 4, seed: 11, sieve: false })

          const sync = yield* runSyncClient(source, ["-A"])
          const returned = Date.now()
          expect(sync.exitCode, sync.stderr).toBe(0)
          const lockedNow = (r: { stdout: string; stderr: string }) =>
            r.stderr.split("\n").filter((l) => /locked/i.test(l)).map((l) => l.split(":")[0]!)
          const first = yield* runCtlBackups(backup, ["list", "-A"])
          const firstLocked = lockedNow(first)
          let locked = firstLocked
          let polls = 1
          while (locked.length > 0 && Date.now() - returned < 30_000) {
            locked = lockedNow(yield* runCtlBackups(backup, ["list", "-A"]))
            polls++
          }
          const unlockedAfter = Date.now() - returned
          console.log(
            `lock release: ${USERS.length} users; first ctl_backups list after sync_client returned: ` +
              `${firstLocked.length} locked (${firstLocked.join(" ")}); all unlocked ${unlockedAfter} ms after it returned (${polls} lists)`
          )
          expect(locked).toEqual([])
          expect(firstLocked.length).toBeLessThanOrEqual(1)
          if (firstLocked.length === 1) expect(firstLocked[0]).toBe(USERS.at(-1))

          yield* backup.awaitBackupsClosed()
          const verify = yield* runCtlBackups(backup, ["verify", "-A"])
          expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
          const list = yield* runCtlBackups(backup, ["list", "-A"])
          for (const user of USERS) expect(list.stdout).toContain(user)
        })
      ),
    600_000
  )
})
