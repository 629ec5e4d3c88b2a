/**
 * Acceptance (tools issue): a whole round trip through our programs, with Cyrus 3.6.1 at
 * both ends. A real source (3 users: nested folders, flags, expunges, bob's \Seen on a
 * folder alice shares, subscriptions, alice's active sieve script) is backed up by the real
 * `sync_client -A` into OUR backupd (under the real master, credentials through a real
 * saslauthd); then OUR `bin/restore -U -S -a` puts every user back into a fresh Cyrus
 * (sync_server + imapd). Over IMAP the target then holds the same folders, byte-identical
 * messages under the same UIDs, the same flags, ACLs, seen state and subscriptions; its
 * sync_server holds the same sieve scripts (text and which is active) as the source's
 * timsieved. Needs `npm run build` first.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync } from "node:fs"
import * as path from "node:path"
import {
  ADMIN_PASSWORD,
  ADMIN_USER,
  adminName,
  haveCyrus,
  imapSession,
  populate,
  runCtlBackups,
  runRestore,
  runSyncClient,
  saslauthdSkipReason,
  snapshotUser,
  startBackupServer,
  startRestoreTarget,
  startSaslauthd,
  startSource,
  USER_PASSWORD,
  warnIfNoCyrus
} from "../harness/index.js"
import { sieveScriptsViaCsync, sieveScriptsViaManageSieve } from "./acceptanceSupport.js"

const ROOT = path.resolve(__dirname, "../..")
const OUR_BACKUPD = path.join(ROOT, "bin", "backupd")
const OUR_RESTORE = path.join(ROOT, "bin", "restore")
const built = ["backupd", "restore"].every((p) => existsSync(path.join(ROOT, "dist", "bin", `${p}.js`)))

const cyrusPresent = warnIfNoCyrus("backup → restore round trip")
const saslSkip = saslauthdSkipReason()
if (cyrusPresent && saslSkip !== undefined) console.warn(`\n!!! SKIPPING round trip suite: ${saslSkip}\n`)
if (cyrusPresent && !built) console.warn("\n!!! SKIPPING round trip suite: dist/ missing, run `npm run build`\n")
const runnable = haveCyrus() && saslSkip === undefined && built

const makeEnv = Effect.gen(function*() {
  const saslauthd = yield* startSaslauthd()
  const restoreTarget = yield* startRestoreTarget()
  const backup = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, saslauthdPath: saslauthd.muxPath, restoreTarget })
  const source = yield* startSource({ backupPort: backup.port })
  const report = yield* populate(source, { messages: 48, seed: 7, maxAttachment: 60_000 }) // seed 7: alice's Archive gets mail to share
  return { saslauthd, restoreTarget, backup, source, report }
})

class Env extends Context.Tag("RoundTripEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

/** uid → flags of `mailbox` as `user` sees it (their own seen state included). */
const flagsAs = (port: number, user: string, mailbox: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const imap = yield* imapSession(port, user, USER_PASSWORD)
      yield* imap.select(mailbox, true)
      return Object.fromEntries([...(yield* imap.fetchFlags)].map(([uid, f]) => [uid, f.flags.join(" ")]))
    })
  )

// The steps share one set of servers and run in file order.
describe.skipIf(!runnable)("sync_client → our backupd → our restore -S → a fresh Cyrus: nothing lost", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "180 seconds", excludeTestServices: true })((it) => {
    it.effect("sync_client -A backs every user up into our backupd; the real verify passes", () =>
      Effect.gen(function*() {
        const { source, backup, report } = yield* Env
        expect(report.expunged).toBeGreaterThanOrEqual(3)
        expect(report.sieve.some((l) => l.includes("ACTIVE"))).toBe(true)
        const sync = yield* runSyncClient(source, ["-A"], { timeout: "120 seconds" })
        expect(sync.exitCode, sync.stderr).toBe(0)
        yield* backup.awaitBackupsClosed()
        const verify = yield* runCtlBackups(backup, ["verify", "-A"])
        expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
      }))

    it.effect("our restore -U -S -a brings every user back into the fresh target", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget } = yield* Env
        // the owner of a shared folder first: bob's seen state on it needs the folder
        for (const user of source.users) {
          const r = yield* runRestore(backup, ["-U", "-S", restoreTarget.syncAddress, "-u", user, "-a"], {
            program: OUR_RESTORE,
            timeout: "120 seconds"
          })
          expect(r.exitCode, `restore ${user}: ${r.stderr}`).toBe(0)
        }
      }))

    it.effect("every folder, message (bytes, UID, size), flag, ACL and subscription matches the source", () =>
      Effect.gen(function*() {
        const { source, restoreTarget } = yield* Env
        let messages = 0
        for (const user of source.users) {
          const before = yield* snapshotUser(source.imapPort, user, USER_PASSWORD)
          const after = yield* snapshotUser(restoreTarget.imapPort, user, USER_PASSWORD)
          expect(Object.keys(after.mailboxes).sort(), `${user}: folders`).toEqual(Object.keys(before.mailboxes).sort())
          expect(Object.keys(before.mailboxes).length, `${user}: folders`).toBeGreaterThanOrEqual(9)
          for (const [folder, mb] of Object.entries(before.mailboxes)) {
            expect(after.mailboxes[folder], `${user} ${folder}`).toEqual(mb)
            messages += mb.messages.length
          }
          expect(after.subscriptions, `${user}: subscriptions`).toEqual(before.subscriptions)
          expect(before.subscriptions.length, `${user}: subscriptions`).toBeGreaterThan(0)
        }
        expect(messages).toBeGreaterThanOrEqual(40)
      }))

    it.effect("bob's seen state on the folder alice shares with him matches the source", () =>
      Effect.gen(function*() {
        const { source, restoreTarget } = yield* Env
        const shared = adminName("alice", "INBOX.Archive")
        const sourceView = yield* flagsAs(source.imapPort, "bob", shared)
        const seen = Object.values(sourceView).filter((f) => f.split(" ").includes("\\Seen")).length
        expect(seen, "bob has \\Seen on some of alice's Archive").toBeGreaterThan(0)
        expect(yield* flagsAs(restoreTarget.imapPort, "bob", shared)).toEqual(sourceView)
        // and alice's own view of it is still hers
        expect(yield* flagsAs(restoreTarget.imapPort, "alice", "INBOX.Archive")).toEqual(yield* flagsAs(source.imapPort, "alice", "INBOX.Archive"))
      }))

    it.effect("every user's sieve scripts (text, active one) match the source", () =>
      Effect.gen(function*() {
        const { source, restoreTarget } = yield* Env
        for (const user of source.users) {
          const before = yield* sieveScriptsViaManageSieve(source.sievePort, user, USER_PASSWORD)
          const after = yield* sieveScriptsViaCsync(restoreTarget.syncPort, ADMIN_USER, ADMIN_PASSWORD, user)
          expect(after, `${user}: sieve scripts`).toEqual(before)
          if (user === source.users[0]) expect(before.map((s) => [s.name, s.active]), user).toEqual([["harness", true]])
          else expect(before, user).toEqual([])
        }
      }))
  })
})
