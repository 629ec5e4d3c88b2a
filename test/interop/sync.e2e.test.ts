/**
 * Acceptance (issue "csync"): the real `sync_client` 3.6.1 replicates to OUR backupd, run by
 * the real master, with credentials checked by a real saslauthd. After every step the real
 * `ctl_backups verify` passes, and three independent views of the backups — the real
 * `cyr_backup` listings, each user's SQLite index, and our own `GET USER`/`GET FULLMAILBOX`
 * answers — match the source's IMAP state. Also: no message leaks into another user's backup
 * (docs/gaps.md G3), the real `restore` restores every user, the same conversation gives the same
 * answers and the same backups with COMPRESS DEFLATE on and off, the telemetry log has
 * Cyrus's shape, and bad credentials / non-admins / garbage get the documented answers.
 *
 * COMPRESS "off": sync_client always negotiates COMPRESS when it is advertised, so the
 * uncompressed run is a replay — the plaintext client bytes of the compressed initial sync,
 * taken from our telemetry log, sent without COMPRESS to a second, empty backup server.
 *
 * One set of servers is shared by all steps (in file order). Needs `npm run build` first.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import {
  ADMIN_PASSWORD,
  ADMIN_USER,
  adminName,
  backupFilesOf,
  backupFootprint,
  csyncSession,
  cyrBackupListing,
  expectedContents,
  guidsInDataFile,
  haveCyrus,
  imapSession,
  indexContents,
  joinedRecords,
  mkdirCyrus,
  mutate,
  parseTelemetry,
  populate,
  runCtlBackups,
  runRestore,
  saslauthdSkipReason,
  snapshotUser,
  startBackupServer,
  startRestoreTarget,
  startSaslauthd,
  startSource,
  unreferencedMessages,
  USER_PASSWORD,
  warnIfNoCyrus,
  type BackupServerInstance,
  type CsyncClient,
  type MailboxContents,
  type SourceInstance,
  type UserSnapshot
} from "../harness/index.js"
import { adminSession, syncOk as syncOkOn } from "../harness/steps.js"

const OUR_BACKUPD = path.resolve("bin/backupd")
const BUILT = existsSync(path.resolve("dist/bin/backupd.js"))
const MESSAGES = 210

const cyrusPresent = warnIfNoCyrus("sync_client → our backupd (e2e)")
const saslSkip = saslauthdSkipReason()
if (cyrusPresent && saslSkip !== undefined) console.warn(`\n!!! SKIPPING sync e2e suite: ${saslSkip}\n`)
if (cyrusPresent && !BUILT) console.warn("\n!!! SKIPPING sync e2e suite: dist/ missing, run `npm run build`\n")
const runnable = haveCyrus() && saslSkip === undefined && BUILT

const makeEnv = Effect.gen(function*() {
  const saslauthd = yield* startSaslauthd()
  const restoreTarget = yield* startRestoreTarget()
  const backup = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, saslauthdPath: saslauthd.muxPath, restoreTarget })
  // Telemetry is written only where an admin created the user's log directory.
  const telemetryDir = path.join(backup.root, "conf", "log", ADMIN_USER)
  yield* mkdirCyrus(telemetryDir)
  const source = yield* startSource({ backupPort: backup.port })
  const started = Date.now()
  const report = yield* populate(source, { messages: MESSAGES, maxAttachment: 120_000 })
  const populateMs = Date.now() - started
  return { saslauthd, restoreTarget, backup, source, report, telemetryDir, populateMs }
})

class Env extends Context.Tag("SyncE2eEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

const field = (line: string, name: string): string | undefined => new RegExp(`\\b${name} ("[^"]*"|[^ ()]+)`).exec(line)?.[1]?.replace(/^"|"$/g, "")

/** The source's state as our `GET USER` / `GET FULLMAILBOX` answers describe it. */
const stateViaGet = (client: CsyncClient, user: string) =>
  Effect.gen(function*() {
    const answer = yield* client.command(`GET USER ${user}`)
    expect(answer.final).toBe("OK Success")
    // DELETED.* mailboxes (delayed deletes on the source) exist there too, but IMAP does not show them
    const names = answer.untagged
      .filter((l) => l.startsWith("* MAILBOX "))
      .map((l) => field(l, "MBOXNAME")!)
      .filter((n) => !n.startsWith("DELETED."))
      .sort()
    const lsub = answer.untagged.find((l) => l.startsWith("* LSUB "))
    const subscriptions = lsub === undefined ? [] : lsub.slice("* LSUB (".length, -1).split(" ").map((s) => s.replace(/^"|"$/g, "")).sort()
    const sieve = answer.untagged.filter((l) => l.startsWith("* SIEVE "))
    const seen = answer.untagged.filter((l) => l.startsWith("* SEEN ")).map((l) => field(l, "UNIQUEID")!)
    const uniqueids = Object.fromEntries(
      answer.untagged.filter((l) => l.startsWith("* MAILBOX ")).map((l) => [field(l, "MBOXNAME")!, field(l, "UNIQUEID")!])
    )
    const contents: Record<string, ReadonlyArray<{ uid: number; guid: string; flags: ReadonlyArray<string> }>> = {}
    for (const name of names) {
      const full = yield* client.command(`GET FULLMAILBOX ${name}`)
      expect(full.final, name).toBe("OK Success")
      // records: %(UID n ... GUID g ... FLAGS (...) ...), fields in any order
      const text = full.untagged.join("\n")
      const records = text.slice(text.indexOf(" RECORD (")).split("%(UID ").slice(1)
      contents[name] = records
        .map((r) => ({
          uid: Number(r.slice(0, r.indexOf(" "))),
          guid: /\bGUID ([0-9a-f]{40})/.exec(r)?.[1] ?? "?",
          flags: (/\bFLAGS \(([^)]*)\)/.exec(r)?.[1] ?? "").split(" ").filter((f) => f !== "").sort()
        }))
        .filter((r) => !r.flags.includes("\\Expunged"))
        .sort((a, b) => a.uid - b.uid)
    }
    return { names, subscriptions, sieve, seen, uniqueids, contents: contents as MailboxContents }
  })

/**
 * The user's subscriptions as the source's subscription database holds them. In 3.6 it is
 * `conf/user/uuid/<c0>/<c1>/<INBOX uniqueid>/sub.db`, flat: a version record, then one
 * `N<name>TAB` line per subscription, the name's levels separated by 0x1F (INBOX = the user's).
 */
const sourceSubscriptions = (source: SourceInstance, user: string, inboxUniqueid: string) =>
  Effect.sync(() => {
    const u = inboxUniqueid
    const file = path.join(source.root, "conf", "user", "uuid", u[0]!, u[1]!, u, "sub.db")
    const text = existsSync(file) ? readFileSync(file, "latin1") : ""
    return text
      .split("\n")
      .filter((l) => l.startsWith("N"))
      .map((l) => l.slice(1).split("\t")[0]!.split("\x1f"))
      .map((levels) => (levels[0] === "INBOX" ? adminName(user, levels.join(".")) : levels.join(".")))
      .sort()
  })

const snapshots = (source: SourceInstance) =>
  Effect.forEach(source.users, (u) => snapshotUser(source.imapPort, u, USER_PASSWORD))

/**
 * The full post-sync check: the real ctl_backups verify passes on every backup, and the real
 * cyr_backup listings, the index and our GET answers all equal the source.
 */
const expectBackupsMatchSource = (label: string) =>
  Effect.gen(function*() {
    const { source, backup } = yield* Env
    yield* backup.awaitBackupsClosed()
    const verify = yield* runCtlBackups(backup, ["verify", "-A"])
    expect(verify.exitCode, `${label}: ctl_backups verify -A\n${verify.stdout}${verify.stderr}`).toBe(0)
    const snaps = yield* snapshots(source)
    yield* Effect.scoped(
      Effect.gen(function*() {
        const client = yield* adminSession(backup)
        const uniqueids: Record<string, string> = {}
        const seenBy: Record<string, ReadonlyArray<string>> = {}
        for (const snap of snaps) {
          const user = snap.user
          const expected = expectedContents(snap)
          const names = Object.keys(expected).sort()
          const live = new Set(Object.values(expected).flatMap((ms) => ms.map((m) => m.guid)))

          const listing = yield* cyrBackupListing(backup, user)
          expect(listing.mailboxes, `${label}: cyr_backup list mailboxes of ${user}`).toEqual(names)
          for (const g of live) expect(listing.guids.has(g), `${label}: ${user} message ${g} listed`).toBe(true)

          const files = backupFilesOf(backup, user)!
          expect(yield* indexContents(files), `${label}: index of ${user}`).toEqual(expected)

          const viaGet = yield* stateViaGet(client, user)
          expect(viaGet.names, `${label}: GET USER ${user} mailboxes`).toEqual(names)
          expect(viaGet.contents, `${label}: GET FULLMAILBOX of ${user}`).toEqual(expected)
          // IMAP LSUB hides subscriptions of folders that no longer exist (after a rename);
          // sync_client replicates the subscription database itself, so compare with that
          const subs = yield* sourceSubscriptions(source, user, viaGet.uniqueids[`user.${user}`]!)
          for (const f of snap.subscriptions) expect(subs, `${label}: ${user} subscribed to ${f}`).toContain(adminName(user, f))
          expect(viaGet.subscriptions, `${label}: GET USER ${user} LSUB`).toEqual(subs)
          expect(viaGet.sieve.length > 0, `${label}: GET USER ${user} SIEVE`).toBe(user === source.users[0])
          Object.assign(uniqueids, viaGet.uniqueids)
          seenBy[user] = viaGet.seen
        }
        // bob's \Seen state on the folder alice shares with him is in bob's backup
        expect(seenBy["bob"], `${label}: bob's SEEN`).toContain(uniqueids["user.alice.Archive"])
        expect((yield* client.command("EXIT")).final).toBe("OK Finished")
      })
    )
    yield* backup.awaitBackupsClosed()
    return snaps
  })

const syncOk = (args: ReadonlyArray<string>) => Effect.flatMap(Env, ({ source, backup }) => syncOkOn(source, backup, args))

const footprints = (backup: BackupServerInstance, users: ReadonlyArray<string>) =>
  Effect.forEach(users, (u) => backupFootprint(backupFilesOf(backup, u)!))

describe.skipIf(!runnable)("sync_client 3.6.1 → our backupd under master, saslauthd credentials", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "240 seconds", excludeTestServices: true })((it) => {
    it.effect("the source holds the acceptance mail: 3 users, ≥ 200 messages, nested folders, flags, expunges, seen, sieve", () =>
      Effect.gen(function*() {
        const { report, source, populateMs } = yield* Env
        console.info(`populate: ${MESSAGES} messages in ${populateMs} ms`)
        expect(source.users.length).toBe(3)
        expect(report.delivery.delivered).toBe(MESSAGES)
        expect(report.expunged).toBeGreaterThanOrEqual(3)
        expect(report.sieve.some((l) => l.includes("ACTIVE"))).toBe(true)
      }))

    it.effect("initial sync_client -A exits 0", () =>
      Effect.gen(function*() {
        const result = yield* syncOk(["-A"])
        console.info(`initial -A: ${result.durationMs} ms`)
      }))

    it.effect("after the initial -A: verify passes and cyr_backup, the index and GET USER match the source", () =>
      Effect.asVoid(expectBackupsMatchSource("initial -A")))

    it.effect("no backup holds a message only other users' mailboxes reference (G3)", () =>
      Effect.gen(function*() {
        const { backup, source } = yield* Env
        const snaps = yield* snapshots(source)
        const liveOf = (s: UserSnapshot) => new Set(Object.values(s.mailboxes).flatMap((m) => m.messages.map((x) => x.sha1)))
        for (const snap of snaps) {
          const files = backupFilesOf(backup, snap.user)!
          expect(yield* unreferencedMessages(files), `${snap.user}: messages no mailbox of theirs references`).toEqual([])
          // the data file itself: every uploaded body belongs to this user
          const inData = guidsInDataFile(files.data)
          const others = snaps.filter((s) => s !== snap).map(liveOf)
          const mine = liveOf(snap)
          const foreign = [...inData].filter((g) => !mine.has(g) && others.some((o) => o.has(g)))
          expect(foreign, `${snap.user}'s data file holds other users' messages`).toEqual([])
          for (const g of mine) expect(inData.has(g), `${snap.user}: ${g} in the data file`).toBe(true)
        }
      }))

    it.effect("the telemetry log of the initial sync has Cyrus's shape", () =>
      Effect.gen(function*() {
        const { telemetryDir } = yield* Env
        const files = readdirSync(telemetryDir)
        expect(files.length).toBeGreaterThan(0)
        for (const f of files) expect(f).toMatch(/^backupd-\d+$/)
        const sessions = files.flatMap((f) => parseTelemetry(readFileSync(path.join(telemetryDir, f), "latin1")))
        const sync = sessions.find((s) => joinedRecords(s.records, "<").includes("GET USER"))!
        expect(sync.userid).toBe(ADMIN_USER)
        // the log starts after AUTHENTICATE: the first exchange is COMPRESS, logged in plaintext
        expect(sync.records[0]).toMatchObject({ dir: "<", bytes: "COMPRESS DEFLATE\r\n" })
        expect(sync.records[1]).toMatchObject({ dir: ">", bytes: "OK DEFLATE active\r\n" })
        const input = joinedRecords(sync.records, "<")
        const output = joinedRecords(sync.records, ">")
        expect(input).not.toContain("AUTHENTICATE")
        expect(input).toMatch(/APPLY MESSAGE \(%\{default [0-9a-f]{40} \d+\}\r\n/)
        expect(input).toMatch(/APPLY MAILBOX %\(UNIQUEID /)
        expect(input).toMatch(/EXIT\r\n$/)
        expect(output).toMatch(/OK Finished\r\n$/)
        for (const r of sync.records) expect(r.bytes.length).toBeLessThanOrEqual(4096)
        // every output flush is whole lines
        for (const r of sync.records.filter((x) => x.dir === ">")) expect(r.bytes).toMatch(/\r\n$/)
      }))

    it.effect("the same conversation without COMPRESS gives the same answers and the same backups", () =>
      Effect.scoped(
        Effect.gen(function*() {
          const { telemetryDir, saslauthd, source, backup } = yield* Env
          const sessions = readdirSync(telemetryDir).flatMap((f) => parseTelemetry(readFileSync(path.join(telemetryDir, f), "latin1")))
          const sync = sessions.find((s) => joinedRecords(s.records, "<").includes("GET USER"))!
          const input = joinedRecords(sync.records, "<")
          const output = joinedRecords(sync.records, ">")
          expect(input.startsWith("COMPRESS DEFLATE\r\n")).toBe(true)
          const other = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, saslauthdPath: saslauthd.muxPath })
          const client = yield* csyncSession(other.port)
          expect(client.banner).toContain("* COMPRESS DEFLATE")
          expect(yield* client.authenticate(ADMIN_USER, ADMIN_PASSWORD)).toBe("OK Success (no protection)")
          yield* client.sendRaw(input.slice("COMPRESS DEFLATE\r\n".length))
          const replayed = yield* client.readToEnd
          expect(replayed).toBe(output.slice("OK DEFLATE active\r\n".length))
          yield* other.awaitBackupsClosed()
          const verify = yield* runCtlBackups(other, ["verify", "-A"])
          expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
          for (const user of source.users) {
            const a = yield* indexContents(backupFilesOf(backup, user)!)
            const b = yield* indexContents(backupFilesOf(other, user)!)
            expect(b, user).toEqual(a)
            const la = yield* cyrBackupListing(backup, user)
            const lb = yield* cyrBackupListing(other, user)
            expect(lb.mailboxes).toEqual(la.mailboxes)
            expect([...lb.guids].sort()).toEqual([...la.guids].sort())
          }
        })
      ))

    it.effect("the real restore restores every user completely from our backups", () =>
      Effect.gen(function*() {
        const { source, backup, restoreTarget } = yield* Env
        for (const user of source.users) {
          const before = yield* snapshotUser(source.imapPort, user, USER_PASSWORD)
          const names = Object.keys(before.mailboxes).map((f) => adminName(user, f))
          const result = yield* runRestore(backup, ["-U", "-X", restoreTarget.syncAddress, "-u", user, ...names])
          expect(result.exitCode, `restore ${user}: ${result.stderr}`).toBe(0)
          const after = yield* snapshotUser(restoreTarget.imapPort, user, USER_PASSWORD)
          expect(after.mailboxes, user).toEqual(before.mailboxes)
        }
      }))

    it.effect("a second -A is a no-op: nothing is appended to any backup", () =>
      Effect.gen(function*() {
        const { backup, source } = yield* Env
        const before = yield* footprints(backup, source.users)
        yield* syncOk(["-A"])
        expect(yield* footprints(backup, source.users)).toEqual(before)
        yield* expectBackupsMatchSource("no-op -A")
      }))

    it.effect("rolling: new mail, flag changes, expunge, rename, delete, subscriptions → -R -1, then -A", () =>
      Effect.gen(function*() {
        const { source } = yield* Env
        const delivered = yield* mutate(source, { messages: 12, maxAttachment: 60_000 })
        expect(delivered.delivered).toBe(12)
        yield* syncOk(["-R", "-1"])
        const snaps = yield* expectBackupsMatchSource("rolling -R -1")
        expect(Object.keys(snaps[0]!.mailboxes)).toContain("INBOX.Mailinglists.cyrus-devel")
        expect(Object.keys(snaps[0]!.mailboxes)).not.toContain("INBOX.Trash")
        yield* syncOk(["-A"])
        yield* expectBackupsMatchSource("-A after rolling")
      }))

    it.effect("rolling again: flags only, a new nested folder, a folder moved back, one more expunge", () =>
      Effect.gen(function*() {
        const { source } = yield* Env
        yield* Effect.scoped(
          Effect.gen(function*() {
            const imap = yield* imapSession(source.imapPort, "bob", USER_PASSWORD)
            yield* imap.create("INBOX.Projects2")
            yield* imap.create("INBOX.Projects2.Deep")
            yield* imap.rename("INBOX.Mailinglists", "INBOX.Lists")
            yield* imap.select("INBOX")
            const uids = yield* imap.uids
            yield* imap.store(uids.slice(0, 3), "+", ["\\Flagged", "$Rolled"])
            yield* imap.store([uids[uids.length - 1]!], "+", ["\\Deleted"])
            yield* imap.expunge
            yield* imap.close
          })
        )
        yield* syncOk(["-R", "-1"])
        yield* expectBackupsMatchSource("second rolling pass")
        yield* syncOk(["-A"])
        yield* expectBackupsMatchSource("-A after second rolling")
      }))

    it.effect("wrong password, non-admin and garbage get the documented answers; every backup still verifies", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        yield* Effect.scoped(
          Effect.gen(function*() {
            const c = yield* csyncSession(backup.port)
            expect(c.banner).toEqual(["* SASL PLAIN LOGIN", "* COMPRESS DEFLATE", expect.stringMatching(/^\* OK cyb-backup Cyrus backup server /)])
            expect((yield* c.command("GET USER alice")).final).toBe("NO Please authenticate first")
            expect((yield* c.command("APPLY UNUSER alice")).final).toBe("NO Please authenticate first")
            expect(yield* c.authenticate(ADMIN_USER, "wrong")).toBe("NO authentication failure")
            expect(yield* c.authenticate("nosuchuser", "x")).toBe("NO authentication failure")
            // a non-admin is refused at AUTHENTICATE (docs/gaps.md G12), and may still leave
            expect(yield* c.authenticate("alice", USER_PASSWORD)).toBe("NO Permission denied")
            expect((yield* c.command("GET USER alice")).final).toBe("NO Please authenticate first")
            expect((yield* c.command("EXIT")).final).toBe("OK Finished")
          })
        )
        yield* Effect.scoped(
          Effect.gen(function*() {
            const c = yield* adminSession(backup)
            expect((yield* c.command("")).final).toBe("BAD Null command")
            expect((yield* c.command("BOGUS")).final).toBe("BAD IMAP_PROTOCOL_ERROR Unrecognized command")
            expect((yield* c.command("NOOP extra")).final).toBe("BAD Unexpected extra arguments to Noop")
            expect((yield* c.command("APPLY")).final).toBe("BAD Missing required argument to Apply")
            // (an unfinished dlist is not garbage: like Cyrus, the server waits for the rest)
            expect((yield* c.command("APPLY MAILBOX %(MBOXNAME user.alice)")).final).toBe("NO IMAP_PROTOCOL_BAD_PARAMETERS Bad parameters")
            expect((yield* c.command("APPLY MESSAGE (%{default 0123456789012345678901234567890123456789 5}\r\nhello)")).final).toBe(
              "NO IMAP_PROTOCOL_ERROR Protocol error"
            )
            expect((yield* c.command("\u0001\u00ff\u0000 binary")).final).toBe("BAD IMAP_PROTOCOL_ERROR Unrecognized command")
            expect((yield* c.command("NOOP")).final).toBe("OK Noop completed")
            expect((yield* c.command("EXIT")).final).toBe("OK Finished")
          })
        )
        yield* backup.awaitBackupsClosed()
        const verify = yield* runCtlBackups(backup, ["verify", "-A"])
        expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
        yield* expectBackupsMatchSource("after bad input")
        expect(yield* backup.masterLog).not.toMatch(/long dead children|unknown state/)
      }))
  })
})

