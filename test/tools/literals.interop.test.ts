/**
 * Literals in data-file lines against the real Cyrus 3.6.1 tools (issue 12.2, docs/storage.md
 * "Literals in data-file lines"). A real source whose users have sieve scripts (one with 8-bit
 * text), subscriptions, folders with international (modified UTF-7) names and an 8-bit
 * mailbox annotation is backed up by the real `sync_client -A` into OUR backupd. Every line
 * that holds a literal (APPLY SIEVE's CONTENT, the annotation's value) must be written `{n}`,
 * and then: our verify, the real verify, the real restore and ours, our reindex, all pass; the
 * real reindex reads every line (at `{n+}` it stops: "didn't parse dlist").
 *
 * What no data-file bytes can give: the real reindex computes each chunk's length and SHA-1,
 * and the offsets of later lines, from its own re-printing of the lines, which writes literals
 * `{n+}` (a form its own readers refuse). On a chunk holding k literals its index is k bytes
 * long and its verify fails. This test pins that down exactly, and that our reindex repairs it;
 * on a backup with no such line (carol's), the real reindex then the real verify pass.
 * Needs `npm run build` first.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { gunzipSync } from "node:zlib"
import {
  ADMIN_PASSWORD,
  ADMIN_USER,
  adminName,
  backupFilesOf,
  haveCyrus,
  imapSession,
  populate,
  putActiveSieveScript,
  runCtlBackups,
  runRestore,
  saslauthdSkipReason,
  snapshotUser,
  sqlite,
  startBackupServer,
  startRestoreTarget,
  startSaslauthd,
  startSource,
  USER_PASSWORD,
  warnIfNoCyrus,
  type BackupFiles,
  type BackupServerInstance,
  type UserSnapshot
} from "../harness/index.js"
import { syncOk } from "../harness/steps.js"
import { lineLiterals } from "../store/support.js"
import { sieveScriptsViaCsync, sieveScriptsViaManageSieve } from "./acceptanceSupport.js"

const ROOT = path.resolve(__dirname, "../..")
const OUR_BACKUPD = path.join(ROOT, "bin", "backupd")
const OUR_CTL = path.join(ROOT, "bin", "ctl_backups")
const OUR_RESTORE = path.join(ROOT, "bin", "restore")
const built = ["backupd", "ctl_backups", "restore"].every((p) => existsSync(path.join(ROOT, "dist", "bin", `${p}.js`)))

const cyrusPresent = warnIfNoCyrus("literals in data files against the real tools")
const saslSkip = saslauthdSkipReason()
if (cyrusPresent && saslSkip !== undefined) console.warn(`\n!!! SKIPPING literals interop suite: ${saslSkip}\n`)
if (cyrusPresent && !built) console.warn("\n!!! SKIPPING literals interop suite: dist/ missing, run `npm run build`\n")
const runnable = haveCyrus() && saslSkip === undefined && built

/** alice's folders with international names (modified UTF-7: Café, 日本語), subscribed. */
const INTERNATIONAL = ["INBOX.Caf&AOk-", "INBOX.&ZeVnLIqe-"]
/**
 * alice's folder with an 8-bit comment. It stays out of the restores: the real sync_server
 * 3.6.1 dies on a RESTORE MAILBOX that carries annotations ("assertion failed:
 * imap/mboxlist.c: 1088: user_isnamespacelocked(userid)"), whichever restore sends it.
 */
const ANNOTATED = "INBOX.Notes"
/** UTF-8 with a line break: printable only as a literal. */
const COMMENT = Buffer.from("Café: notes\r\nzweite Zeile ü", "utf8").toString("latin1")
const BOB_SIEVE = Buffer.from('require ["fileinto"];\n# Grüße, bob\nif header :contains "subject" "Bestätigung" { fileinto "INBOX.Archive"; }\n', "utf8").toString("latin1")
const MESSAGE = "From: a@example.com\r\nTo: alice@example.com\r\nSubject: caf\r\n\r\nin the international folder\r\n"

const makeEnv = Effect.gen(function*() {
  const saslauthd = yield* startSaslauthd()
  const theirTarget = yield* startRestoreTarget()
  const ourTarget = yield* startRestoreTarget()
  const backup = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, saslauthdPath: saslauthd.muxPath, restoreTarget: theirTarget })
  const source = yield* startSource({ backupPort: backup.port })
  yield* populate(source, { messages: 12, seed: 7, maxAttachment: 20_000 })
  yield* Effect.scoped(
    Effect.gen(function*() {
      const imap = yield* imapSession(source.imapPort, "alice", USER_PASSWORD)
      for (const f of INTERNATIONAL) {
        yield* imap.create(f)
        yield* imap.subscribe(f)
      }
      yield* imap.ok(`APPEND "${INTERNATIONAL[0]}" {${MESSAGE.length}+}\r\n${MESSAGE}`)
      yield* imap.create(ANNOTATED)
      yield* imap.ok(`SETMETADATA "${ANNOTATED}" (/shared/comment {${COMMENT.length}+}\r\n${COMMENT})`)
    })
  )
  yield* putActiveSieveScript(source.sievePort, "bob", USER_PASSWORD, "gruss", BOB_SIEVE)
  yield* syncOk(source, backup, ["-A"])
  return { saslauthd, theirTarget, ourTarget, backup, source }
})

class Env extends Context.Tag("LiteralsInteropEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

const files = (backup: BackupServerInstance, user: string): BackupFiles => {
  const f = backupFilesOf(backup, user)
  expect(f, `backup of ${user}`).toBeDefined()
  return f!
}

/** Each chunk's id, offset and lengths, and its lines' literals (from the data file). */
const chunksOf = (f: BackupFiles) =>
  Effect.gen(function*() {
    const rows = (yield* sqlite(f.index, "SELECT id, offset, length FROM chunk ORDER BY offset")).map(([id, offset, length]) => ({
      id: Number(id),
      offset: Number(offset),
      length: Number(length)
    }))
    const file = readFileSync(f.data)
    return rows.map((c, i) => ({ ...c, literals: lineLiterals(gunzipSync(file.subarray(c.offset, rows[i + 1]?.offset ?? file.length)).toString("latin1")) }))
  })

const TABLES = ["chunk", "message", "mailbox", "mailbox_message", "subscription", "seen", "sieve"] as const
const dump = (f: BackupFiles) =>
  Effect.gen(function*() {
    const out: Record<string, ReadonlyArray<ReadonlyArray<string>>> = {}
    for (const t of TABLES) out[t] = yield* sqlite(f.index, `SELECT * FROM ${t} ORDER BY id`)
    return out
  })

const verifyBoth = (backup: BackupServerInstance) =>
  Effect.gen(function*() {
    const theirs = yield* runCtlBackups(backup, ["verify", "-A"])
    const ours = yield* runCtlBackups(backup, ["verify", "-A"], { program: OUR_CTL })
    return { theirs, ours }
  })

/** A user's folders as IMAP names, and as restore names, without the annotated one. */
const restorable = (snap: UserSnapshot) => {
  const mailboxes = Object.fromEntries(Object.entries(snap.mailboxes).filter(([f]) => f !== ANNOTATED))
  return { mailboxes, names: Object.keys(mailboxes).map((f) => adminName(snap.user, f)) }
}

const USERS = ["alice", "bob", "carol"]

// The steps share one set of servers and run in file order.
describe.skipIf(!runnable)("literals in data-file lines, against the real Cyrus 3.6.1 tools", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "240 seconds", excludeTestServices: true })((it) => {
    it.effect("our backupd writes every literal of a line as {n}: sieve scripts and the 8-bit annotation", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        const literals = (user: string) => Effect.map(chunksOf(files(backup, user)), (cs) => cs.flatMap((c) => c.literals))
        const alice = yield* literals("alice")
        const bob = yield* literals("bob")
        expect(alice.filter((l) => l.plus), "alice: no {n+}").toEqual([])
        expect(bob.filter((l) => l.plus), "bob: no {n+}").toEqual([])
        const text = gunzipSync(readFileSync(files(backup, "alice").data)).toString("latin1")
        expect(text).toContain(`ANNOTATIONS (%(ENTRY /comment USERID "" MODSEQ 0 VALUE {${COMMENT.length}}\r\n${COMMENT})`)
        expect(text).toContain(`{${COMMENT.length}}\r\n${COMMENT}`)
        expect(text).toMatch(/ APPLY SIEVE %\(USERID alice FILENAME harness\.script LAST_UPDATE \d+ CONTENT \{\d+\}\r\n/)
        expect(alice.length).toBeGreaterThanOrEqual(2)
        expect(bob.length).toBeGreaterThanOrEqual(1)
      }))

    it.effect("our verify and the real verify pass", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        const { theirs, ours } = yield* verifyBoth(backup)
        expect(theirs.exitCode, theirs.stdout + theirs.stderr).toBe(0)
        expect(theirs.stderr).not.toContain("didn't parse dlist")
        expect(ours.exitCode, ours.stdout + ours.stderr).toBe(0)
      }))

    it.effect("the real restore brings alice's folders back, the international ones included", () =>
      Effect.gen(function*() {
        const { source, backup, theirTarget } = yield* Env
        const before = restorable(yield* snapshotUser(source.imapPort, "alice", USER_PASSWORD))
        for (const f of INTERNATIONAL) expect(Object.keys(before.mailboxes)).toContain(f)
        const r = yield* runRestore(backup, ["-U", "-X", theirTarget.syncAddress, "-u", "alice", ...before.names], { timeout: "120 seconds" })
        expect(r.exitCode, r.stderr).toBe(0)
        const after = yield* snapshotUser(theirTarget.imapPort, "alice", USER_PASSWORD)
        expect(after.mailboxes).toEqual(before.mailboxes)
      }))

    it.effect("our restore -S brings every user back: folders, subscriptions and sieve scripts", () =>
      Effect.gen(function*() {
        const { source, backup, ourTarget } = yield* Env
        for (const user of USERS) {
          const before = yield* snapshotUser(source.imapPort, user, USER_PASSWORD)
          const { mailboxes, names } = restorable(before)
          const r = yield* runRestore(backup, ["-U", "-X", "-S", ourTarget.syncAddress, "-u", user, ...names], { program: OUR_RESTORE, timeout: "120 seconds" })
          expect(r.exitCode, `restore ${user}: ${r.stderr}`).toBe(0)
          const after = yield* snapshotUser(ourTarget.imapPort, user, USER_PASSWORD)
          expect(after.mailboxes, user).toEqual(mailboxes)
          expect(after.subscriptions, user).toEqual(before.subscriptions)
          const sieve = yield* sieveScriptsViaCsync(ourTarget.syncPort, ADMIN_USER, ADMIN_PASSWORD, user)
          expect(sieve, `${user}: sieve scripts`).toEqual(yield* sieveScriptsViaManageSieve(source.sievePort, user, USER_PASSWORD))
        }
        const alice = yield* snapshotUser(ourTarget.imapPort, "alice", USER_PASSWORD)
        for (const f of INTERNATIONAL) expect(alice.subscriptions).toContain(f)
        expect((yield* sieveScriptsViaCsync(ourTarget.syncPort, ADMIN_USER, ADMIN_PASSWORD, "bob")).map((s) => [s.name, s.active, s.content])).toEqual([
          ["gruss", true, BOB_SIEVE]
        ])
      }))

    it.effect("our reindex rebuilds the very same index; both verifies pass after it", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        const before = yield* Effect.forEach(USERS, (u) => dump(files(backup, u)))
        const r = yield* runCtlBackups(backup, ["reindex", "-A"], { program: OUR_CTL })
        expect(r.exitCode, r.stdout + r.stderr).toBe(0)
        expect(yield* Effect.forEach(USERS, (u) => dump(files(backup, u)))).toEqual(before)
        const { theirs, ours } = yield* verifyBoth(backup)
        expect(theirs.exitCode, theirs.stdout + theirs.stderr).toBe(0)
        expect(ours.exitCode, ours.stdout + ours.stderr).toBe(0)
      }))

    it.effect("where no line needs a {n} literal (carol: mail, folders, flags, seen), the real reindex then the real verify pass, and its index is ours", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        const f = files(backup, "carol")
        const chunks = yield* chunksOf(f)
        expect(chunks.flatMap((c) => c.literals), "carol: no literal in any line").toEqual([])
        const ours = yield* dump(f)
        expect(ours["message"]!.length, "carol has mail").toBeGreaterThan(0)
        const r = yield* runCtlBackups(backup, ["reindex", "-u", "carol"])
        expect(r.exitCode, r.stdout + r.stderr).toBe(0)
        expect(r.stderr).not.toContain("didn't parse dlist")
        expect(yield* dump(f)).toEqual(ours)
        const v = yield* runCtlBackups(backup, ["verify", "-u", "carol"])
        expect(v.exitCode, v.stdout + v.stderr).toBe(0)
      }))

    it.effect("the real reindex reads every line; only its re-printed {n+} lengths differ, and our reindex repairs that", () =>
      Effect.gen(function*() {
        const { backup } = yield* Env
        for (const user of ["alice", "bob"]) {
          const f = files(backup, user)
          const chunks = yield* chunksOf(f)
          const ours = yield* dump(f)
          const r = yield* runCtlBackups(backup, ["reindex", "-u", user])
          expect(r.exitCode, r.stdout + r.stderr).toBe(0)
          expect(r.stderr, `${user}: every line parsed`).not.toContain("didn't parse dlist")
          const theirs = yield* dump(f)
          // the rows are ours, except what the real reindex counts on its re-printing
          for (const t of ["mailbox", "mailbox_message", "subscription", "seen"] as const) expect(theirs[t], `${user}: ${t}`).toEqual(ours[t])
          const chunkOf = new Map(chunks.map((c) => [c.id, c]))
          const plusBefore = (chunkId: string, offset: string) => chunkOf.get(Number(chunkId))!.literals.filter((l) => l.at < Number(offset)).length
          // message: id, guid, partition, chunk_id, offset, size; sieve: id, chunk_id, last_update, filename, guid, offset, deleted
          expect(theirs["message"], `${user}: message`).toEqual(ours["message"]!.map((m) => [...m.slice(0, 4), String(Number(m[4]) + plusBefore(m[3]!, m[4]!)), ...m.slice(5)]))
          expect(theirs["sieve"], `${user}: sieve`).toEqual(ours["sieve"]!.map((s) => [...s.slice(0, 5), String(Number(s[5]) + plusBefore(s[1]!, s[5]!)), ...s.slice(6)]))
          const lengths = (yield* sqlite(f.index, "SELECT id, length FROM chunk ORDER BY id")).map(([id, length]) => [Number(id), Number(length)])
          expect(lengths, `${user}: chunk lengths`).toEqual(chunks.map((c) => [c.id, c.length + c.literals.length]))
          // so its verify fails at the first chunk that holds a literal, as it does on the C backupd's backups
          const first = chunks.find((c) => c.literals.length > 0)!
          const v = yield* runCtlBackups(backup, ["verify", "-u", user])
          expect(v.exitCode).toBe(75)
          expect(v.stdout + v.stderr).toContain(`data length mismatch for chunk ${first.id}: ${first.length} on disk,${first.length + first.literals.length} in index`)
        }
        const r = yield* runCtlBackups(backup, ["reindex", "-A"], { program: OUR_CTL })
        expect(r.exitCode, r.stdout + r.stderr).toBe(0)
        const { theirs, ours } = yield* verifyBoth(backup)
        expect(theirs.exitCode, theirs.stdout + theirs.stderr).toBe(0)
        expect(ours.exitCode, ours.stdout + ours.stderr).toBe(0)
      }))
  })
})
