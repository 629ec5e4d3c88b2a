/**
 * Proves the interop harness against the REAL C backupd: source + backup
 * server + restore target, 3 users with ~30 messages, sync_client -A,
 * ctl_backups verify, cyr_backup list, restore of one user and an IMAP
 * comparison with the source. Later suites swap in our backupd via
 * startBackupServer({ backupdCmd }).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as path from "node:path"
import {
  adminName,
  cyrusProgram,
  haveCyrus,
  makeCyrusTempRoot,
  makeDeliveries,
  mutate,
  populate,
  readTextIfExists,
  runCtlBackups,
  runCyrBackup,
  runRestore,
  runSyncClient,
  SeededStream,
  snapshotUser,
  startBackupServer,
  startRestoreTarget,
  startSource,
  USER_PASSWORD,
  warnIfNoCyrus,
  writeCyrusFile
} from "../harness/index.js"

// Pure part of the harness: runs everywhere, Cyrus or not.
describe("interop harness mail generator", () => {
  it("is deterministic per seed, per-message distinct, and sized as documented", () => {
    const users = ["alice", "bob", "carol"]
    const a = makeDeliveries(new SeededStream(42), users, 120)
    const b = makeDeliveries(new SeededStream(42), users, 120)
    expect(b).toEqual(a)
    expect(makeDeliveries(new SeededStream(7), users, 3)).not.toEqual(a.slice(0, 3))
    expect(new Set(a.map((d) => d.message)).size).toBe(a.length)
    const multipart = a.filter((d) => d.message.includes("multipart/mixed"))
    expect(multipart.length).toBeGreaterThan(0)
    for (const d of a) {
      expect(d.message).toMatch(/^Return-Path: /)
      expect(d.message).not.toMatch(/[^\r]\n/) // CRLF only
      const size = d.message.length
      if (multipart.includes(d)) expect(size).toBeLessThan(450_000)
      else {
        expect(size).toBeGreaterThan(2_000)
        expect(size).toBeLessThan(21_000)
      }
    }
    expect(a[0]!.recipient).toMatch(/^alice(\+[\w.-]+)?@example\.com$/)
  })
})

const cyrusPresent = haveCyrus()
warnIfNoCyrus("interop harness smoke")

const makeEnv = Effect.gen(function*() {
  const restoreTarget = yield* startRestoreTarget()
  const backup = yield* startBackupServer({ restoreTarget })
  const source = yield* startSource({ backupPort: backup.port })
  const report = yield* populate(source, { messages: 30 })
  return { source, backup, restoreTarget, report }
})

class Env extends Context.Tag("HarnessSmokeEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

// Each step below depends on the previous one (they share one set of servers, in file order).
describe.skipIf(!cyrusPresent)("interop harness with the C backupd", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "90 seconds", excludeTestServices: true })((it) => {
    it.effect("populates the source deterministically", () =>
      Effect.gen(function*() {
        const { report, source } = yield* Env
        expect(report.delivery.delivered).toBe(30)
        expect(report.delivery.refused).toEqual([])
        expect(report.expunged).toBeGreaterThanOrEqual(source.users.length)
        expect(report.sieve.some((l) => l.includes("harness") && l.includes("ACTIVE"))).toBe(true)
        const alice = yield* snapshotUser(source.imapPort, "alice", USER_PASSWORD)
        expect(Object.keys(alice.mailboxes)).toContain("INBOX.Work.Projects.2024")
        expect(alice.subscriptions).toContain("INBOX.Lists.cyrus-devel")
      }))

    it.effect("sync_client -A exits 0", () =>
      Effect.gen(function*() {
        const { source, backup } = yield* Env
        const result = yield* runSyncClient(source, ["-A"])
        if (result.exitCode !== 0) console.error(result.stdout, result.stderr, (yield* backup.syslog).join("\n"))
        expect(result.exitCode).toBe(0)
        yield* backup.awaitBackupsClosed()
        expect(result.durationMs).toBeLessThan(30_000) // no IMAP-first fallback
      }))

    it.effect("ctl_backups verify passes for every user", () =>
      Effect.gen(function*() {
        const { source, backup } = yield* Env
        const list = yield* runCtlBackups(backup, ["list"])
        expect(list.exitCode, list.stdout + list.stderr).toBe(0)
        for (const user of source.users) {
          expect(list.stdout).toContain(user)
          const verify = yield* runCtlBackups(backup, ["verify", user])
          expect(verify.exitCode, verify.stderr).toBe(0)
        }
        const all = yield* runCtlBackups(backup, ["verify", "-A"])
        expect(all.exitCode).toBe(0)
      }))

    it.effect("cyr_backup -u alice list mailboxes shows alice's folders", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        const listing = yield* runCyrBackup(backup, ["-u", "alice", "list", "mailboxes"])
        expect(listing.exitCode).toBe(0)
        for (const folder of ["INBOX", "INBOX.Work", "INBOX.Work.Projects.2024", "INBOX.Lists.cyrus-devel", "INBOX.Trash"]) {
          expect(listing.stdout).toContain(adminName("alice", folder))
        }
        expect(listing.stdout).not.toContain("user.bob")
      }))

    it.effect("restore brings alice back identical (content, flags, ACLs)", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget } = yield* Env
        const before = yield* snapshotUser(source.imapPort, "alice", USER_PASSWORD)
        const names = Object.keys(before.mailboxes).map((f) => adminName("alice", f))
        const result = yield* runRestore(backup, ["-U", "-X", restoreTarget.syncAddress, "-u", "alice", ...names])
        expect(result.exitCode, result.stderr).toBe(0)
        const after = yield* snapshotUser(restoreTarget.imapPort, "alice", USER_PASSWORD)
        expect(after.mailboxes).toEqual(before.mailboxes)
      }))

    it.effect("incremental: mutate, rolling pass and -A replicate renames and deletes", () =>
      Effect.gen(function*() {
        const { source, backup } = yield* Env
        const delivered = yield* mutate(source, { messages: 6 })
        expect(delivered.delivered).toBe(6)
        const rolling = yield* runSyncClient(source, ["-R", "-1"])
        expect(rolling.exitCode, rolling.stderr).toBe(0)
        const all = yield* runSyncClient(source, ["-A"])
        expect(all.exitCode, all.stderr).toBe(0)
        yield* backup.awaitBackupsClosed()
        const listing = yield* runCyrBackup(backup, ["-u", "alice", "list", "mailboxes"])
        expect(listing.stdout).toContain("user.alice.Mailinglists.cyrus-devel")
        // the -A pass re-sends APPLY MAILBOX for the renamed folders, so verify holds (see gaps G2)
        const verify = yield* runCtlBackups(backup, ["verify", "-A"])
        expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
      }))

    it.scoped("backupdCmd swaps the program master runs (a wrapper that execs the C backupd)", () =>
      Effect.gen(function*() {
        const { source, backup } = yield* Env
        const dir = yield* makeCyrusTempRoot("wrapper")
        const wrapper = path.join(dir, "backupd-wrapper")
        // master execs cmd= directly; the wrapper must exec so the service pid is the one master forked
        yield* writeCyrusFile(
          wrapper,
          `#!/bin/sh\necho "$@" > ${dir}/argv\nexec ${cyrusProgram("backupd")} "$@"\n`,
          0o755
        )
        const other = yield* startBackupServer({ backupdCmd: wrapper, backupdArgs: ["-U", "5"] })
        yield* source.retarget(other.port)
        const sync = yield* runSyncClient(source, ["-A"]).pipe(Effect.ensuring(Effect.orDie(source.retarget(backup.port))))
        expect(sync.exitCode, sync.stderr).toBe(0)
        yield* other.awaitBackupsClosed()
        expect((yield* readTextIfExists(path.join(dir, "argv"))).trim()).toBe(`-C ${other.conf} -U 5`)
        const verify = yield* runCtlBackups(other, ["verify", "-A"])
        expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
        expect(yield* other.masterLog).not.toMatch(/long dead children/)
      }))

    it.effect("the C backupd logged through the syslog sink and master stayed quiet", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        if (backup.syslogCapture.available) {
          const lines = yield* backup.syslog
          expect(lines.some((l) => l.includes("/backupd["))).toBe(true)
        } else {
          console.warn(`syslog not captured: ${backup.syslogCapture.reason}`)
        }
        expect(yield* backup.masterLog).not.toMatch(/unknown state|long dead children/)
      }))
  })
})
