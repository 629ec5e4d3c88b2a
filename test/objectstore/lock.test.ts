/**
 * Object Lock and deletion on the real Ceph: new objects get the configured retention, the
 * store refuses to delete a locked object and the library reports it (keeping it for a later
 * run), objects past retention and lock are deleted with every version, retention can be
 * pushed forward, and superseded manifests are pruned only outside backup_retention.
 */
import path from "node:path"
import { GetObjectRetentionCommand, HeadObjectCommand, ListObjectVersionsCommand } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll } from "vitest"
import { makeObjectStore } from "../../src/objectstore/ObjectStore.js"
import { cephContext, createBucket, rawClient, removeBucket, startCeph, storeSettings, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { bigMember, chunkMetas, goldenBackup, tempDir } from "./support.js"

const ceph = cephContext()
warnIfNoCeph("object store lock suite")

const versionsOf = async (env: S3Env, bucket: string, key: string) => {
  const s3 = rawClient(env)
  const v = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }))
  s3.destroy()
  return [...(v.Versions ?? []), ...(v.DeleteMarkers ?? [])].filter((x) => x.Key === key).length
}

const LONG_AGO = "2020-01-01T00:00:00.000Z"

describe.skipIf(ceph.skip !== undefined)("Object Lock on Ceph", () => {
  let env: S3Env
  let locked: string
  let plain: string
  beforeAll(async () => {
    env = startCeph()
    locked = await createBucket(env, "os-lock", { objectLock: true })
    plain = await createBucket(env, "os-nolock")
  })
  afterAll(async () => {
    if (env === undefined) return
    if (locked !== undefined) await removeBucket(env, locked)
    if (plain !== undefined) await removeBucket(env, plain)
  })

  it.live("new objects are locked; a delete is refused by the store and reported; the object stays", () =>
    Effect.gen(function*() {
      const data = yield* goldenBackup(tempDir("os-lk"))
      const [m] = chunkMetas(data)
      const store = makeObjectStore(storeSettings(env, locked, { prefix: "c/", lockSeconds: 3600, lockMode: "COMPLIANCE", retentionSeconds: 0 }))
      expect(yield* store.status).toMatchObject({ objectLock: true, versioning: "Enabled", lockSeconds: 3600 })
      const t0 = Date.now()
      const up = yield* store.uploadChunk("alice", { path: data }, m!)
      expect(up.entry.versionId).toBeDefined()
      const until = Date.parse(up.retainUntil!)
      expect(until).toBeGreaterThan(t0 + 3590_000)
      expect(until).toBeLessThan(Date.now() + 3610_000)
      const s3 = rawClient(env)
      const r = yield* Effect.promise(() => s3.send(new GetObjectRetentionCommand({ Bucket: locked, Key: `c/${up.entry.object}` })))
      expect(r.Retention?.Mode).toBe("COMPLIANCE")

      const report = yield* store.deleteExpired([{ object: up.entry.object, droppedAt: LONG_AGO }, { object: "users/alice/chunks/none.gz", droppedAt: new Date().toISOString() }])
      expect(report.deleted).toEqual([])
      expect(report.notDue).toEqual([])
      expect(report.locked).toHaveLength(1)
      expect(report.locked[0]!.object).toBe(up.entry.object)
      expect(report.locked[0]!.retainUntil).toBe(up.retainUntil)
      expect(report.locked[0]!.message).toContain(`object store ${env.endpoint}, bucket ${locked}`)
      expect(report.locked[0]!.message).toContain("Object Lock until")
      // with retention 0 the second one is due at once; it was never there
      expect(report.missing).toEqual(["users/alice/chunks/none.gz"])
      expect(report.remaining).toEqual([{ object: up.entry.object, droppedAt: LONG_AGO }])
      const h = yield* Effect.promise(() => s3.send(new HeadObjectCommand({ Bucket: locked, Key: `c/${up.entry.object}` })))
      expect(h.ContentLength).toBe(up.entry.stored)
      expect(yield* store.verifyObject(up.entry, "full")).toMatchObject({ ok: true })
      s3.destroy()
    }))

  it.live("past retention and lock, every version is deleted; not yet due ones are kept", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir("os-exp"), "m.gz")
      const meta = yield* Effect.promise(() => bigMember(file, 4096))
      const store = makeObjectStore(storeSettings(env, locked, { prefix: "e/", lockSeconds: 2, lockMode: "GOVERNANCE", retentionSeconds: 3600 }))
      const up = yield* store.uploadChunk("bob", { path: file }, meta)
      yield* Effect.sleep("2500 millis")
      const notYet = yield* store.deleteExpired([{ object: up.entry.object, droppedAt: new Date().toISOString() }])
      expect(notYet).toMatchObject({ deleted: [], notDue: [up.entry.object] })
      const done = yield* store.deleteExpired([{ object: up.entry.object, droppedAt: LONG_AGO }])
      expect(done).toMatchObject({ deleted: [up.entry.object], locked: [], remaining: [] })
      expect(yield* Effect.promise(() => versionsOf(env, locked, `e/${up.entry.object}`))).toBe(0)
    }))

  it.live("retention is pushed forward when less than half of lock_days is left", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir("os-ext"), "m.gz")
      const meta = yield* Effect.promise(() => bigMember(file, 2048))
      const short = makeObjectStore(storeSettings(env, locked, { prefix: "x/", lockSeconds: 60, lockMode: "GOVERNANCE" }))
      const up = yield* short.uploadChunk("carol", { path: file }, meta)
      const long = makeObjectStore(storeSettings(env, locked, { prefix: "x/", lockSeconds: 7200, lockMode: "GOVERNANCE" }))
      expect(yield* long.extendLocks([up.entry])).toBe(1)
      expect(yield* long.extendLocks([up.entry])).toBe(0)
      const s3 = rawClient(env)
      const r = yield* Effect.promise(() => s3.send(new GetObjectRetentionCommand({ Bucket: locked, Key: `x/${up.entry.object}`, VersionId: up.entry.versionId })))
      s3.destroy()
      expect(r.Retention!.RetainUntilDate!.getTime()).toBeGreaterThan(Date.now() + 7000_000)
    }))

  it.live("manifests: only those no restore within backup_retention can need are pruned", () =>
    Effect.gen(function*() {
      const data = yield* goldenBackup(tempDir("os-prune"))
      const store = makeObjectStore(storeSettings(env, plain, { prefix: "p/", retentionSeconds: 0 }))
      const entries = []
      for (const m of chunkMetas(data)) entries.push((yield* store.uploadChunk("dave", { path: data }, m)).entry)
      const m1 = yield* store.putManifest({ user: "dave", dataFile: data, chunks: entries.slice(0, 1) })
      const m2 = yield* store.putManifest({ user: "dave", dataFile: data, chunks: entries.slice(0, 2), previous: m1.head })
      const m3 = yield* store.putManifest({ user: "dave", dataFile: data, chunks: entries.slice(0, 2), previous: m2.head, full: true })
      const m4 = yield* store.putManifest({ user: "dave", dataFile: data, chunks: entries, previous: m3.head })
      expect([m1, m2, m3, m4].map((m) => m.head.kind)).toEqual(["full", "append", "full", "append"])
      const report = yield* store.pruneManifests("dave")
      expect(report.deleted).toEqual([m2.object, m1.object])
      expect((yield* store.latestManifest("dave"))!.chunks).toEqual(entries)
      // with a week of retention nothing written just now may go
      const careful = makeObjectStore(storeSettings(env, plain, { prefix: "p/", retentionSeconds: 7 * 86400 }))
      expect((yield* careful.pruneManifests("dave")).deleted).toEqual([])
    }))
})
