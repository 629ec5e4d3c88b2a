/**
 * Off the host, end to end (issue 15): the real sync_client 3.6.1 replicates to our backupd
 * under the real master, with object storage on (age-encrypted) against a real Ceph radosgw.
 *
 * sync → backupd uploads the sealed chunks in the background (the lag after sync_client
 * returns is reported) → the bucket holds age objects whose names carry no user name →
 * recovery by hand (`age -d` + `zcat`) gives the messages → the backup host's partition and
 * backups.db are wiped → `ctl_backups pull -A` → byte-identical data files (SHA-1), the real
 * `ctl_backups verify` passes, the real `restore` into a real Cyrus matches the source → the
 * next `sync_client -A` continues incrementally (nothing appended; the bytes it sent are
 * reported), and new mail goes up again.
 *
 * CI size: 2 users, 12 messages. Needs `npm run build` first.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  adminName,
  backupFilesOf,
  haveCyrus,
  mutate,
  populate,
  runCtlBackups,
  runRestore,
  runSyncClient,
  snapshotUser,
  startBackupServer,
  startRestoreTarget,
  startSource,
  USER_PASSWORD,
  warnIfNoCyrus
} from "../harness/index.js"
import { ageKeys, haveAgeCli } from "../objectstore/support.js"
import { cephContext, createBucket, rawClient, removeBucket, startCeph, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { chownForCyrus, tempDir } from "../support/cyrus.js"

const OUR_BACKUPD = path.resolve("bin/backupd")
const OUR_CTL = path.resolve("bin/ctl_backups")
const BUILT = fs.existsSync(path.resolve("dist/bin/backupd.js"))
const USERS = ["olive", "oscar"]

const cyrusPresent = warnIfNoCyrus("object storage end to end (sync_client → our backupd → Ceph → pull)")
warnIfNoCeph("object storage end to end")
const ceph = cephContext()
const runnable = cyrusPresent && haveCyrus() && BUILT && ceph.skip === undefined && haveAgeCli

const sha1 = (file: string) => createHash("sha1").update(fs.readFileSync(file)).digest("hex")

/** Credentials, recipients and identity files owned by cyrus, mode 0600. */
const storeFiles = async (env: S3Env) => {
  const dir = tempDir("os-e2e-keys")
  const keys = await ageKeys(dir)
  const credentials = path.join(dir, "credentials")
  fs.writeFileSync(credentials, `${env.accessKeyId}\n${env.secretAccessKey}\n`, { mode: 0o600 })
  chownForCyrus(dir)
  return { ...keys, credentials }
}

describe.skipIf(!runnable)("object storage end to end", () => {
  it.live(
    "sync → background upload → wipe → pull → identical files, Cyrus verify, restore, incremental sync",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const env = startCeph()
          const bucket = yield* Effect.promise(() => createBucket(env, "os-e2e"))
          yield* Effect.addFinalizer(() => Effect.promise(() => removeBucket(env, bucket)))
          const files = yield* Effect.promise(() => storeFiles(env))
          const restoreTarget = yield* startRestoreTarget({ users: USERS })
          const backup = yield* startBackupServer({
            backupdCmd: OUR_BACKUPD,
            restoreTarget,
            extraConf: [
              "backupd_sasl_pwcheck_method: alwaystrue",
              `backup_objectstore_endpoint: ${env.endpoint}`,
              `backup_objectstore_bucket: ${bucket}`,
              "backup_objectstore_prefix: hostA",
              `backup_objectstore_credentials: ${files.credentials}`,
              `backup_objectstore_recipients: ${files.recipientsFile}`,
              `backup_objectstore_identity: ${files.identityFile}`
            ]
          })
          const ctl = (args: ReadonlyArray<string>) => runCtlBackups(backup, args, { program: OUR_CTL })
          const source = yield* startSource({ backupPort: backup.port, users: USERS })
          yield* populate(source, { messages: 12, seed: 5, sieve: false })

          const sync = yield* runSyncClient(source, ["-A"])
          expect(sync.exitCode, sync.stderr).toBe(0)
          const returned = Date.now()
          // the upload lag: until no user has anything pending (from backupd's own records)
          const pendingOf = (out: string) => [...out.matchAll(/"pending_chunks":\s*(\d+)/g)].map((m) => Number(m[1]))
          let pending: Array<number> = []
          for (;;) {
            const l = yield* ctl(["list", "-j", "-A"])
            pending = pendingOf(l.stdout)
            if (pending.length === USERS.length && pending.every((n) => n === 0)) break
            if (Date.now() - returned > 60_000) break
            yield* Effect.sleep("100 millis")
          }
          const lag = Date.now() - returned
          console.log(`object store e2e: upload lag after sync_client returned: ${lag} ms (pending per user: ${pending.join(",")})`)
          expect(pending).toEqual(USERS.map(() => 0))
          yield* backup.awaitBackupsClosed()

          // the bucket: age objects, no user name in any key
          const s3 = new (yield* Effect.promise(() => import("@aws-sdk/client-s3"))).S3Client({
            endpoint: env.endpoint,
            region: env.region,
            forcePathStyle: true,
            credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey }
          })
          const listed = yield* Effect.promise(() => s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "hostA/" })))
          const keys = (listed.Contents ?? []).map((o) => o.Key!)
          const chunkKeys = keys.filter((k) => k.includes("/chunks/"))
          expect(chunkKeys.length).toBeGreaterThanOrEqual(USERS.length)
          for (const k of keys) for (const u of USERS) expect(k).not.toContain(u)
          for (const k of keys.filter((k) => k !== "hostA/cyrus-backupd.json")) expect(k).toMatch(/\.age$/)

          // recovery by hand: age -d, zcat (docs/restore.md)
          const work = tempDir("os-e2e-manual")
          const obj = yield* Effect.promise(() => s3.send(new GetObjectCommand({ Bucket: bucket, Key: chunkKeys[0]! })))
          const enc = path.join(work, "chunk.age")
          fs.writeFileSync(enc, yield* Effect.promise(() => obj.Body!.transformToByteArray()))
          expect(fs.readFileSync(enc).subarray(0, 21).toString()).toBe("age-encryption.org/v1")
          execFileSync("age", ["-d", "-i", files.identityFile, "-o", path.join(work, "chunk.gz"), enc], { stdio: "pipe" })
          const text = execFileSync("zcat", [path.join(work, "chunk.gz")]).toString("latin1")
          expect(text.startsWith("# cyrus backup: chunk start\r\n")).toBe(true)
          expect(text).toContain(" APPLY MESSAGE (%{default ")
          expect(text).toMatch(/\r\nSubject: /)
          s3.destroy()

          // the host is lost: partition and backups.db gone
          const originals = new Map(USERS.map((u) => [u, backupFilesOf(backup, u)!.data]))
          const sums = new Map(USERS.map((u) => [u, sha1(originals.get(u)!)]))
          for (const e of fs.readdirSync(backup.partitionDir)) fs.rmSync(path.join(backup.partitionDir, e), { recursive: true, force: true })
          fs.rmSync(backup.backupDbPath, { force: true })

          const pull = yield* ctl(["pull", "-A"])
          expect(pull.exitCode, pull.stderr).toBe(0)
          for (const u of USERS) {
            const rebuilt = backupFilesOf(backup, u)
            expect(rebuilt, u).toBeDefined()
            expect(sha1(rebuilt!.data), u).toBe(sums.get(u))
          }
          const verify = yield* runCtlBackups(backup, ["verify", "-A"])
          expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)

          for (const u of USERS) {
            const before = yield* snapshotUser(source.imapPort, u, USER_PASSWORD)
            const names = Object.keys(before.mailboxes).map((f) => adminName(u, f))
            const r = yield* runRestore(backup, ["-U", "-X", restoreTarget.syncAddress, "-u", u, ...names])
            expect(r.exitCode, `restore ${u}: ${r.stderr}`).toBe(0)
            const after = yield* snapshotUser(restoreTarget.imapPort, u, USER_PASSWORD)
            expect(after.mailboxes, u).toEqual(before.mailboxes)
          }

          // the next sync continues: nothing to append, and it sent little
          const sizes = () => new Map(USERS.map((u) => [u, fs.statSync(backupFilesOf(backup, u)!.data).size]))
          const pulled = sizes()
          const totals = Effect.map(backup.syslog, (ls) => ls.filter((l) => l.includes("session totals:")))
          const seenBefore = (yield* totals).length
          const again = yield* runSyncClient(source, ["-A"])
          expect(again.exitCode, again.stderr).toBe(0)
          yield* backup.awaitBackupsClosed()
          expect(sizes()).toEqual(pulled)
          // the session's totals line reaches the captured syslog a moment after it closes (seen late on a loaded machine)
          let sessions = yield* totals
          for (let waited = 0; sessions.length === seenBefore && seenBefore > 0 && waited < 10_000; waited += 100) {
            yield* Effect.sleep("100 millis")
            sessions = yield* totals
          }
          const inOf = (l: string | undefined) => Number(/ in=(\d+)/.exec(l ?? "")?.[1] ?? "NaN")
          const initial = sessions.find((l) => / apply=[1-9]/.test(l))
          const afterPull = sessions.at(-1)
          console.log(`object store e2e: the initial sync_client -A: ${initial ?? "(no syslog capture)"}`)
          console.log(`object store e2e: sync_client -A after pull: ${afterPull ?? "(no syslog capture)"}`)
          if (initial !== undefined && afterPull !== undefined) {
            expect(afterPull).toContain(" apply=0 ")
            expect(inOf(afterPull) * 20).toBeLessThan(inOf(initial))
          }

          // new mail goes up too
          yield* mutate(source, { messages: 3, seed: 9 })
          const third = yield* runSyncClient(source, ["-A"])
          expect(third.exitCode, third.stderr).toBe(0)
          const t3 = Date.now()
          for (;;) {
            pending = pendingOf((yield* ctl(["list", "-j", "-A"])).stdout)
            if (pending.every((n) => n === 0) || Date.now() - t3 > 60_000) break
            yield* Effect.sleep("100 millis")
          }
          expect(pending).toEqual(USERS.map(() => 0))
          const verifyO = yield* ctl(["verify", "-O", "-F", "-A"])
          expect(verifyO.exitCode, verifyO.stdout + verifyO.stderr).toBe(0)
        })
      ),
    600_000
  )

  it.live(
    "missing bucket, then wrong credentials: syncs go on, backupd logs the delay naming the endpoint (and the bucket), pending shows the lag; push uploads it once fixed",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const env = startCeph()
          // the bucket is created only after the first sync: until then it is missing
          const bucket = `os-e2e-cred-${Date.now().toString(36)}`
          yield* Effect.addFinalizer(() => Effect.promise(() => removeBucket(env, bucket).catch(() => undefined)))
          const files = yield* Effect.promise(() => storeFiles(env))
          const backup = yield* startBackupServer({
            backupdCmd: OUR_BACKUPD,
            extraConf: [
              "backupd_sasl_pwcheck_method: alwaystrue",
              `backup_objectstore_endpoint: ${env.endpoint}`,
              `backup_objectstore_bucket: ${bucket}`,
              `backup_objectstore_credentials: ${files.credentials}`,
              `backup_objectstore_recipients: ${files.recipientsFile}`
            ]
          })
          const ctl = (args: ReadonlyArray<string>) => runCtlBackups(backup, args, { program: OUR_CTL })
          const source = yield* startSource({ backupPort: backup.port, users: USERS })
          yield* populate(source, { messages: 6, seed: 7, sieve: false })
          const delayedLines = (what: string) =>
            Effect.gen(function*() {
              let found: ReadonlyArray<string> = []
              for (let i = 0; i < 100 && found.length < USERS.length; i++) {
                found = (yield* backup.syslog).filter((l) => l.includes("upload of") && l.includes("delayed") && l.includes(what))
                if (found.length < USERS.length) yield* Effect.sleep("100 millis")
              }
              return found
            })
          const pendingChunks = Effect.map(ctl(["list", "-j", "-A"]), (listed) => [...listed.stdout.matchAll(/"pending_chunks":\s*(\d+)/g)].map((m) => Number(m[1])))

          // 1. the bucket does not exist: the sync succeeds, the uploads wait, the log says which bucket where
          const first = yield* runSyncClient(source, ["-A"])
          expect(first.exitCode, first.stderr).toBe(0)
          yield* backup.awaitBackupsClosed()
          const noBucket = yield* delayedLines("does not exist")
          expect(noBucket.length, "backupd logged the delayed uploads (missing bucket)").toBeGreaterThanOrEqual(USERS.length)
          expect(noBucket[0]).toContain(env.endpoint)
          expect(noBucket[0]).toContain(`bucket ${bucket}`)
          const pendingFirst = yield* pendingChunks
          expect(pendingFirst.length).toBe(USERS.length)
          for (const n of pendingFirst) expect(n).toBeGreaterThan(0)
          const noBucketPush = yield* ctl(["push", "-A"])
          expect(noBucketPush.exitCode).toBe(78)
          expect(noBucketPush.stderr).toContain(bucket)

          // 2. the bucket appears but the secret is wrong: the next sync succeeds, the uploads still wait
          yield* Effect.acquireUseRelease(
            Effect.sync(() => rawClient(env)),
            (s3) => Effect.promise(() => s3.send(new CreateBucketCommand({ Bucket: bucket }))),
            (s3) => Effect.sync(() => s3.destroy())
          )
          fs.writeFileSync(files.credentials, `${env.accessKeyId}\n${"0".repeat(40)}\n`)
          yield* mutate(source, { messages: 2, seed: 8 })
          const sync = yield* runSyncClient(source, ["-A"])
          expect(sync.exitCode, sync.stderr).toBe(0)
          yield* backup.awaitBackupsClosed()
          const delayed = yield* delayedLines("backup_objectstore_credentials")
          expect(delayed.length, "backupd logged the delayed uploads (wrong credentials)").toBeGreaterThanOrEqual(USERS.length)
          expect(delayed[0]).toContain(env.endpoint)
          const pending = yield* pendingChunks
          expect(pending.length).toBe(USERS.length)
          for (const [i, n] of pending.entries()) expect(n).toBeGreaterThan(pendingFirst[i]!)
          const refused = yield* ctl(["push", "-A"])
          expect(refused.exitCode).toBe(77)
          expect(refused.stderr).toContain(env.endpoint)
          // fixed: push sends what backupd could not
          fs.writeFileSync(files.credentials, `${env.accessKeyId}\n${env.secretAccessKey}\n`)
          const push = yield* ctl(["push", "-A"])
          expect(push.exitCode, push.stderr).toBe(0)
          const after = yield* ctl(["list", "-j", "-A"])
          expect([...after.stdout.matchAll(/"pending_chunks":\s*(\d+)/g)].map((m) => Number(m[1]))).toEqual(USERS.map(() => 0))
        })
      ),
    600_000
  )

  it.live(
    "two hosts, one bucket (a prefix each): host A is lost, host C pulls A's prefix and takes over A's sync channel; B is untouched",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const env = startCeph()
          const bucket = yield* Effect.promise(() => createBucket(env, "os-e2e-two"))
          yield* Effect.addFinalizer(() => Effect.promise(() => removeBucket(env, bucket)))
          const files = yield* Effect.promise(() => storeFiles(env))
          const conf = (prefix: string) => [
            "backupd_sasl_pwcheck_method: alwaystrue",
            `backup_objectstore_endpoint: ${env.endpoint}`,
            `backup_objectstore_bucket: ${bucket}`,
            `backup_objectstore_prefix: ${prefix}`,
            `backup_objectstore_credentials: ${files.credentials}`,
            `backup_objectstore_recipients: ${files.recipientsFile}`,
            `backup_objectstore_identity: ${files.identityFile}`
          ]
          const usersA = ["ann"]
          const usersB = ["ben"]
          const restoreTarget = yield* startRestoreTarget({ users: usersA })
          const hostA = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, extraConf: conf("hostA") })
          const hostB = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, extraConf: conf("hostB") })
          const srcA = yield* startSource({ backupPort: hostA.port, users: usersA })
          const srcB = yield* startSource({ backupPort: hostB.port, users: usersB })
          yield* populate(srcA, { messages: 5, seed: 1, sieve: false })
          yield* populate(srcB, { messages: 5, seed: 2, sieve: false })
          for (const [src, host] of [[srcA, hostA], [srcB, hostB]] as const) {
            const r = yield* runSyncClient(src, ["-A"])
            expect(r.exitCode, r.stderr).toBe(0)
            yield* host.awaitBackupsClosed()
          }
          // make sure both hosts' uploads are complete (backupd does it; push finds nothing left)
          for (const host of [hostA, hostB]) {
            const p = yield* runCtlBackups(host, ["push", "-A"], { program: OUR_CTL })
            expect(p.exitCode, p.stderr).toBe(0)
          }
          const sumA = sha1(backupFilesOf(hostA, "ann")!.data)
          const sumB = sha1(backupFilesOf(hostB, "ben")!.data)
          // host A's disk is lost
          yield* hostA.stop
          const hostC = yield* startBackupServer({ backupdCmd: OUR_BACKUPD, restoreTarget, extraConf: conf("hostA") })
          const pull = yield* runCtlBackups(hostC, ["pull", "-A"], { program: OUR_CTL })
          expect(pull.exitCode, pull.stderr).toBe(0)
          expect(pull.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("\t")[0])).toEqual(usersA)
          expect(sha1(backupFilesOf(hostC, "ann")!.data)).toBe(sumA)
          expect(backupFilesOf(hostC, "ben")).toBeUndefined()
          // the sync channel moves to C and continues incrementally, then with new mail
          yield* srcA.retarget(hostC.port)
          const size = fs.statSync(backupFilesOf(hostC, "ann")!.data).size
          const cont = yield* runSyncClient(srcA, ["-A"])
          expect(cont.exitCode, cont.stderr).toBe(0)
          yield* hostC.awaitBackupsClosed()
          expect(fs.statSync(backupFilesOf(hostC, "ann")!.data).size).toBe(size)
          yield* mutate(srcA, { messages: 2, seed: 3 })
          const more = yield* runSyncClient(srcA, ["-A"])
          expect(more.exitCode, more.stderr).toBe(0)
          yield* hostC.awaitBackupsClosed()
          const verify = yield* runCtlBackups(hostC, ["verify", "-A"])
          expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
          const before = yield* snapshotUser(srcA.imapPort, "ann", USER_PASSWORD)
          const names = Object.keys(before.mailboxes).map((f) => adminName("ann", f))
          const r = yield* runRestore(hostC, ["-U", "-X", restoreTarget.syncAddress, "-u", "ann", ...names])
          expect(r.exitCode, r.stderr).toBe(0)
          expect((yield* snapshotUser(restoreTarget.imapPort, "ann", USER_PASSWORD)).mailboxes).toEqual(before.mailboxes)
          // C's uploads continue A's manifests; B's prefix is untouched
          const pushC = yield* runCtlBackups(hostC, ["push", "-j", "-A"], { program: OUR_CTL })
          expect(pushC.exitCode, pushC.stderr).toBe(0)
          expect(pushC.stdout).toMatch(/"pending_chunks": 0/)
          expect(sha1(backupFilesOf(hostB, "ben")!.data)).toBe(sumB)
          const listB = yield* runCtlBackups(hostB, ["list", "-j", "-A"], { program: OUR_CTL })
          expect(listB.stdout).toMatch(/"pending_chunks": 0/)
        })
      ),
    600_000
  )
})
