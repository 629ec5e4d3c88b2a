/**
 * A user rename on the source (docs/gaps.md G1), end to end: carol is renamed to dave by an admin
 * (`RENAME user.carol user.dave`, `allowusermoves: yes`), and the real `sync_client` 3.6.1
 * replicates that to our backupd under the real master.
 *
 * What an administrator gets: dave's backup holds everything dave now has (the real
 * `cyr_backup`, the index and our GET answers agree with the source, and the real `restore`
 * brings dave back identical). carol's backup is kept, with every message she had, so her
 * history stays restorable (point in time), but it no longer shows her mailboxes, subscriptions
 * or sieve script as live: sync_client finds no carol on the source and sends APPLY UNUSER,
 * which the C backupd throws away (docs/gaps.md G6) and ours records. Every backup passes the real
 * `ctl_backups verify`, and erin, who reads carol's shared folder, still matches the source.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync } from "node:fs"
import * as path from "node:path"
import {
  ADMIN_PASSWORD,
  ADMIN_USER,
  adminName,
  backupFilesOf,
  cyrBackupListing,
  expectedContents,
  guidsInDataFile,
  haveCyrus,
  imapSession,
  indexContents,
  populate,
  runCtlBackups,
  runRestore,
  snapshotUser,
  startBackupServer,
  startRestoreTarget,
  startSource,
  USER_PASSWORD,
  warnIfNoCyrus,
  type UserSnapshot
} from "../harness/index.js"
import { adminSession, syncOk as syncOkOn } from "../harness/steps.js"

const OUR_BACKUPD = path.resolve("bin/backupd")
const BUILT = existsSync(path.resolve("dist/bin/backupd.js"))
const cyrusPresent = warnIfNoCyrus("user rename through sync_client → our backupd")
if (cyrusPresent && !BUILT) console.warn("\n!!! SKIPPING user rename e2e: dist/ missing, run `npm run build`\n")
const runnable = haveCyrus() && BUILT

/** dave has a password from the start (sasldb), but no mailbox until the rename. */
const ACCOUNTS = ["carol", "erin", "dave"]
const POPULATED = ["carol", "erin"]

const makeEnv = Effect.gen(function*() {
  const restoreTarget = yield* startRestoreTarget({ users: ACCOUNTS })
  const backup = yield* startBackupServer({
    backupdCmd: OUR_BACKUPD,
    users: ACCOUNTS,
    restoreTarget,
    // the sync_client here authenticates as the admin with a password from its conf
    extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"]
  })
  const source = yield* startSource({ backupPort: backup.port, users: ACCOUNTS, extraConf: ["allowusermoves: yes"] })
  yield* populate({ ...source, users: POPULATED }, { messages: 40, maxAttachment: 20_000 })
  return { restoreTarget, backup, source }
})

class Env extends Context.Tag("UserRenameEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

const syncOk = (args: ReadonlyArray<string>) => Effect.flatMap(Env, ({ source, backup }) => syncOkOn(source, backup, args))

const snapshot = (user: string) =>
  Effect.flatMap(Env, ({ source }) => snapshotUser(source.imapPort, user, USER_PASSWORD))

/** Our GET USER answer's data lines for `user`. */
const getUser = (user: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const { backup } = yield* Env
      const client = yield* adminSession(backup)
      const answer = yield* client.command(`GET USER ${user}`)
      expect(answer.final).toBe("OK Success")
      yield* client.command("EXIT")
      return answer.untagged
    })
  )

/** The names our GET USER answers as live mailboxes of `user`. */
const liveMailboxesViaGet = (user: string) =>
  Effect.map(getUser(user), (lines) =>
    lines
      .filter((l) => l.startsWith("* MAILBOX "))
      .map((l) => /\bMBOXNAME ("[^"]*"|\S+)/.exec(l)![1]!.replace(/^"|"$/g, ""))
      .sort()
  )

/** The backup of `user` equals the source's `snap`: cyr_backup listing, index, GET USER. */
const expectBackupMatches = (user: string, snap: UserSnapshot, label: string) =>
  Effect.gen(function*() {
    const { backup } = yield* Env
    const expected = expectedContents(snap)
    const names = Object.keys(expected).sort()
    const files = backupFilesOf(backup, user)
    expect(files, `${label}: ${user} has a backup`).toBeDefined()
    const listing = yield* cyrBackupListing(backup, user)
    expect(listing.mailboxes, `${label}: cyr_backup list mailboxes of ${user}`).toEqual(names)
    for (const g of Object.values(expected).flatMap((ms) => ms.map((m) => m.guid))) expect(listing.guids.has(g), `${label}: ${user} has ${g}`).toBe(true)
    expect(yield* indexContents(files!), `${label}: index of ${user}`).toEqual(expected)
    expect(yield* liveMailboxesViaGet(user), `${label}: GET USER ${user}`).toEqual(names)
  })

const verifyAll = (label: string) =>
  Effect.gen(function*() {
    const { backup } = yield* Env
    const verify = yield* runCtlBackups(backup, ["verify", "-A"])
    expect(verify.exitCode, `${label}: ctl_backups verify -A\n${verify.stdout}${verify.stderr}`).toBe(0)
  })

const liveGuids = (snap: UserSnapshot) => new Set(Object.values(snap.mailboxes).flatMap((m) => m.messages.map((x) => x.sha1)))

describe.skipIf(!runnable)("a user rename on the source (carol → dave), through sync_client 3.6.1 into our backupd", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "240 seconds", excludeTestServices: true })((it) => {
    let carolBefore: UserSnapshot

    it.effect("initial -A: carol and erin are backed up", () =>
      Effect.gen(function*() {
        yield* syncOk(["-A"])
        yield* verifyAll("initial -A")
        carolBefore = yield* snapshot("carol")
        expect(Object.keys(carolBefore.mailboxes).length).toBeGreaterThan(2)
        yield* expectBackupMatches("carol", carolBefore, "initial -A")
        yield* expectBackupMatches("erin", yield* snapshot("erin"), "initial -A")
        const { backup } = yield* Env
        expect(backupFilesOf(backup, "dave")).toBeUndefined()
      }))

    it.effect("after RENAME user.carol user.dave and a rolling pass, then -A: dave's backup is complete, carol's keeps her history", () =>
      Effect.gen(function*() {
        const { source, backup } = yield* Env
        yield* Effect.scoped(
          Effect.gen(function*() {
            const admin = yield* imapSession(source.imapPort, ADMIN_USER, ADMIN_PASSWORD)
            yield* admin.rename("user.carol", "user.dave")
          })
        )
        const dave = yield* snapshot("dave")
        // the rename moved everything: same folders, same messages
        expect(Object.keys(dave.mailboxes).sort()).toEqual(Object.keys(carolBefore.mailboxes).sort())
        expect([...liveGuids(dave)].sort()).toEqual([...liveGuids(carolBefore)].sort())

        yield* syncOk(["-R", "-1"])
        yield* verifyAll("rolling after the rename")
        yield* expectBackupMatches("dave", dave, "rolling after the rename")
        yield* syncOk(["-A"])
        yield* verifyAll("-A after the rename")
        yield* expectBackupMatches("dave", dave, "-A after the rename")

        // carol's backup stays, with every message she had; none of her mailboxes is live
        const carolFiles = backupFilesOf(backup, "carol")
        expect(carolFiles, "carol's backup is kept").toBeDefined()
        const kept = guidsInDataFile(carolFiles!.data)
        for (const g of liveGuids(carolBefore)) expect(kept.has(g), `carol's backup still holds ${g}`).toBe(true)
        // sync_client found no carol on the source and sent APPLY UNUSER carol (G6: the C
        // backupd throws it away and keeps her mailboxes live forever)
        const carolNow = yield* getUser("carol")
        expect(carolNow.filter((l) => /^\* (MAILBOX|LSUB|SIEVE) /.test(l)), "GET USER carol after the rename").toEqual([])
        const listing = yield* cyrBackupListing(backup, "carol")
        for (const g of liveGuids(carolBefore)) expect(listing.guids.has(g), `cyr_backup still lists ${g} for carol`).toBe(true)

        // erin (who reads carol's, now dave's, shared Archive) still matches the source
        yield* expectBackupMatches("erin", yield* snapshot("erin"), "-A after the rename")
      }))

    it.effect("the real restore brings dave back identical from his backup", () =>
      Effect.gen(function*() {
        const { backup, restoreTarget } = yield* Env
        const dave = yield* snapshot("dave")
        const names = Object.keys(dave.mailboxes).map((f) => adminName("dave", f))
        const result = yield* runRestore(backup, ["-U", "-X", restoreTarget.syncAddress, "-u", "dave", ...names])
        expect(result.exitCode, `restore dave: ${result.stderr}`).toBe(0)
        const after = yield* snapshotUser(restoreTarget.imapPort, "dave", USER_PASSWORD)
        expect(after.mailboxes).toEqual(dave.mailboxes)
      }))

    it.effect("carol's history is still restorable: restore -a brings back her mailboxes as they were before the rename", () =>
      Effect.gen(function*() {
        const { backup, restoreTarget } = yield* Env
        // -a: every mailbox of the backup, those UNUSER recorded as removed included
        const result = yield* runRestore(backup, ["-U", "-X", "-a", restoreTarget.syncAddress, "-u", "carol"])
        expect(result.exitCode, `restore carol: ${result.stderr}`).toBe(0)
        const after = yield* snapshotUser(restoreTarget.imapPort, "carol", USER_PASSWORD)
        expect(after.mailboxes).toEqual(carolBefore.mailboxes)
      }))
  })
})
