/**
 * Our `restore` against the real Cyrus 3.6.1: a source populated and backed up by the C
 * backupd (two sync sessions, so two chunks per user), restored into a real sync_server +
 * imapd, and compared over IMAP with the source. Runs `bin/restore` (dist/, `npm run build`)
 * as user cyrus, the way an admin would.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync } from "node:fs"
import * as path from "node:path"
import {
  ADMIN_PASSWORD,
  ADMIN_USER,
  adminName,
  csyncSession,
  haveCyrus,
  imapSession,
  liveSleep,
  mutate,
  populate,
  runRestore,
  runSyncClient,
  snapshotUser,
  startBackupServer,
  startRestoreTarget,
  startSource,
  USER_PASSWORD,
  warnIfNoCyrus,
  type BackupServerInstance
} from "../harness/index.js"

const ROOT = path.resolve(__dirname, "../..")
const OUR_RESTORE = path.join(ROOT, "bin", "restore")
const built = existsSync(path.join(ROOT, "dist", "bin", "restore.js"))

const cyrusPresent = haveCyrus()
warnIfNoCyrus("restore interop")
if (cyrusPresent && !built) console.warn("restore interop: dist/bin/restore.js missing — run `npm run build` first; skipping")

const ours = (backup: BackupServerInstance, args: ReadonlyArray<string>) =>
  runRestore(backup, args, { program: OUR_RESTORE, timeout: "120 seconds" })

const makeEnv = Effect.gen(function*() {
  const restoreTarget = yield* startRestoreTarget()
  const backup = yield* startBackupServer({ restoreTarget })
  const source = yield* startSource({ backupPort: backup.port })
  yield* populate(source, { messages: 24 })
  const first = yield* runSyncClient(source, ["-A"])
  if (first.exitCode !== 0) throw new Error(`sync_client -A: ${first.stderr}`)
  yield* backup.awaitBackupsClosed()
  // the state every user's first chunk holds
  const carolBefore = yield* snapshotUser(source.imapPort, "carol", USER_PASSWORD)
  const firstChunkTime = Math.floor(Date.now() / 1000)
  yield* liveSleep("1500 millis")
  yield* mutate(source, { messages: 6 })
  for (const args of [["-R", "-1"], ["-A"]]) {
    const r = yield* runSyncClient(source, args)
    if (r.exitCode !== 0) throw new Error(`sync_client ${args.join(" ")}: ${r.stderr}`)
  }
  yield* backup.awaitBackupsClosed()
  return { source, backup, restoreTarget, carolBefore, firstChunkTime }
})

class Env extends Context.Tag("RestoreInteropEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

const targetMailboxes = (port: number, pattern: string) =>
  Effect.scoped(Effect.flatMap(imapSession(port, ADMIN_USER, ADMIN_PASSWORD), (imap) => imap.list(pattern)))

/** uid → flags of a mailbox as `user` sees it. */
const flagsAs = (port: number, user: string, mailbox: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const imap = yield* imapSession(port, user, USER_PASSWORD)
      yield* imap.select(mailbox, true)
      return new Map([...(yield* imap.fetchFlags)].map(([uid, f]) => [uid, f.flags.join(" ")]))
    })
  )

// The steps share one set of servers and run in file order.
describe.skipIf(!cyrusPresent || !built)("our restore into a real sync_server", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "180 seconds", excludeTestServices: true })((it) => {
    it.effect("-n plans the work and changes nothing", () =>
      Effect.gen(function*() {
        const { backup, restoreTarget } = yield* Env
        const r = yield* ours(backup, ["-n", restoreTarget.syncAddress, "-u", "carol", "-a"])
        expect(r.exitCode, r.stderr).toBe(0)
        expect(r.stdout).toMatch(/^user\.carol \d+ records$/m)
        expect(r.stdout).toMatch(/^total: \d+ mailboxes, \d+ records, \d+ messages$/m)
        expect(yield* targetMailboxes(restoreTarget.imapPort, "user.carol*")).toEqual([])
      }))

    it.effect("brings alice back identical (content, flags, ACLs) with her subscriptions and active sieve script (-S)", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget } = yield* Env
        const before = yield* snapshotUser(source.imapPort, "alice", USER_PASSWORD)
        const names = Object.keys(before.mailboxes).map((f) => adminName("alice", f))
        const r = yield* ours(backup, ["-U", "-X", "-S", restoreTarget.syncAddress, "-u", "alice", ...names])
        expect(r.exitCode, r.stderr).toBe(0)
        const after = yield* snapshotUser(restoreTarget.imapPort, "alice", USER_PASSWORD)
        expect(after.mailboxes).toEqual(before.mailboxes)
        expect(after.subscriptions).toEqual(before.subscriptions)
        const sieve = yield* Effect.scoped(
          Effect.gen(function*() {
            const c = yield* csyncSession(restoreTarget.syncPort)
            expect(yield* c.authenticate(ADMIN_USER, ADMIN_PASSWORD)).toMatch(/^OK/)
            return yield* c.command("GET USER alice")
          })
        )
        const lines = sieve.untagged.filter((l) => l.startsWith("* SIEVE "))
        // the script itself, and (replica style) its bytecode name marked active
        expect(lines.some((l) => l.includes("FILENAME harness.script "))).toBe(true)
        expect(lines.some((l) => l.includes("FILENAME harness.bc ") && l.includes("ISACTIVE 1")), lines.join("\n")).toBe(true)
      }))

    it.effect("restores bob's seen state on alice's shared folder (-S)", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget } = yield* Env
        const shared = adminName("alice", "INBOX.Archive")
        const sourceView = yield* flagsAs(source.imapPort, "bob", shared)
        expect([...sourceView.values()].some((f) => f.includes("\\Seen"))).toBe(true)
        const before = yield* snapshotUser(source.imapPort, "bob", USER_PASSWORD)
        const own = Object.keys(before.mailboxes).filter((f) => f.startsWith("INBOX")).map((f) => adminName("bob", f))
        const r = yield* ours(backup, ["-U", "-X", "-S", restoreTarget.syncAddress, "-u", "bob", ...own])
        expect(r.exitCode, r.stderr).toBe(0)
        expect(yield* flagsAs(restoreTarget.imapPort, "bob", shared)).toEqual(sourceView)
      }))

    it.effect("restores a single message by GUID into another mailbox (-M)", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget } = yield* Env
        const snap = yield* snapshotUser(source.imapPort, "bob", USER_PASSWORD)
        const msg = Object.values(snap.mailboxes).flatMap((m) => m.messages).find((m) => m.flags.length > 0)!
        const r = yield* ours(backup, [restoreTarget.syncAddress, "-u", "bob", "-M", "user.bob.Restored", msg.sha1])
        expect(r.exitCode, r.stderr).toBe(0)
        const after = yield* snapshotUser(restoreTarget.imapPort, "bob", USER_PASSWORD)
        const restored = after.mailboxes["INBOX.Restored"]
        expect(restored?.messages.map((m) => [m.sha1, m.flags])).toEqual([[msg.sha1, msg.flags]])
      }))

    it.effect("point in time (-T): carol as the first sync session left her", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget, carolBefore, firstChunkTime } = yield* Env
        const now = yield* snapshotUser(source.imapPort, "carol", USER_PASSWORD)
        expect(now.mailboxes).not.toEqual(carolBefore.mailboxes) // the second session changed her
        const r = yield* ours(backup, ["-U", "-X", "-T", String(firstChunkTime), restoreTarget.syncAddress, "-u", "carol", "-a"])
        expect(r.exitCode, r.stderr).toBe(0)
        const after = yield* snapshotUser(restoreTarget.imapPort, "carol", USER_PASSWORD)
        expect(after.mailboxes).toEqual(carolBefore.mailboxes)
      }))
  })
})
