/**
 * The object-store library against a real Ceph radosgw (test/support/ceph.ts): conditional
 * create, a checksum the store verifies on every body (Content-MD5 or the signed payload
 * SHA-256) and the store refusing a mismatch, multipart round trips,
 * manifests and rebuilding a data file byte for byte, verification, and the errors for
 * wrong credentials, a missing bucket and an unreachable store.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Stream } from "effect"
import { afterAll, beforeAll, vi } from "vitest"
import { manifestEnd, planUpload } from "../../src/objectstore/backupUpload.js"
import type { ResolvedManifest } from "../../src/objectstore/Manifest.js"
import { makeObjectStore, type ObjectStoreShape } from "../../src/objectstore/ObjectStore.js"
import { loadSdk, makeClient } from "../../src/objectstore/s3.js"
import { putObjectFromSource } from "../../src/objectstore/upload.js"
import { digestOfSavedState, openBackup, receiveBackup, reindexFile } from "../../src/store/index.js"
import { tableRows } from "../store/support.js"
import { cephContext, createBucket, credentialsFile, rawClient, removeBucket, startCeph, storeSettings, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { bigMember, chunkMetas, goldenBackup, QUICK_RETRY, sha1File, tempDir } from "./support.js"

const ceph = cephContext()

/** Every chunk of a data file up, in order: their manifest entries. */
const uploadAll = (store: ReturnType<typeof makeObjectStore>, user: string, data: string, metas: ReturnType<typeof chunkMetas>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.openSync(data, "r")),
    (fd) => Effect.forEach(metas, (m) => Effect.map(store.uploadChunk(user, { fd, path: data }, m), (u) => u.entry)),
    (fd) => Effect.sync(() => fs.closeSync(fd))
  )
warnIfNoCeph("object store suite")

/**
 * Runs `action` once, as soon as `fs.read` has returned `size` bytes in all (the naming pass of
 * a member of that size), so the upload that follows reads a file that changed after naming.
 */
/** A pull's core: the manifest's chunks received in one pass (restoreInto into receiveBackup) at `target`. */
const receiveFrom = (store: ObjectStoreShape, m: ResolvedManifest, target: string, size: number, end?: ResolvedManifest["end"]) =>
  Effect.scoped(
    Effect.gen(function*() {
      const r = yield* receiveBackup({ target, work: `${target}.pull`, size, end })
      expect(yield* store.restoreInto(m, r)).toBe(size)
      return yield* r.complete
    })
  )

const afterNaming = (size: number, action: () => void) => {
  const real = fs.read
  let read = 0
  let done = false
  const spy = vi.spyOn(fs, "read").mockImplementation(((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: Error | null, n: number, b: Buffer) => void) =>
    real(fd, buf, off, len, pos, (e, n, b) => {
      read += n
      if (!done && read >= size) {
        done = true
        action()
      }
      cb(e, n, b)
    })) as unknown as typeof fs.read)
  return { done: () => done, restore: () => spy.mockRestore() }
}

describe.skipIf(ceph.skip !== undefined)("object store on Ceph", () => {
  let env: S3Env
  let bucket: string
  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-store")
  })
  afterAll(async () => {
    if (env !== undefined && bucket !== undefined) await removeBucket(env, bucket)
  })

  it("If-None-Match: * makes the second PUT of a key fail (412) and leaves the first", async () => {
    const s3 = rawClient(env)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "inm/one", Body: Buffer.from("first"), IfNoneMatch: "*" }))
    const second = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "inm/one", Body: Buffer.from("second"), IfNoneMatch: "*" })).then(
      () => "accepted",
      (e: { $metadata?: { httpStatusCode?: number }; name?: string }) => `${e.$metadata?.httpStatusCode} ${e.name}`
    )
    expect(second).toBe("412 PreconditionFailed")
    const now = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "inm/one" }))).Body!.transformToString()
    expect(now).toBe("first")
    s3.destroy()
  })

  it("every PUT and UploadPart our client sends carries a checksum the store verifies: Content-MD5 of the body, or a signed x-amz-content-sha256 of it", async () => {
    // the store checks Content-MD5 (the tests below: and the signed payload SHA-256)
    const s3 = rawClient(env)
    const wrong = createHash("md5").update("something else").digest("base64")
    const bad = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "md5/bad", Body: Buffer.from("payload"), ContentMD5: wrong })).then(
      () => "accepted",
      (e: { $metadata?: { httpStatusCode?: number }; name?: string }) => `${e.$metadata?.httpStatusCode} ${e.name}`
    )
    expect(bad).toBe("400 BadDigest")
    s3.destroy()

    const sdk = await loadSdk()
    const client = makeClient(sdk, storeSettings(env, bucket), { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey }, { connectionTimeoutMs: 5000, requestTimeoutMs: 60000 })
    interface Seen {
      readonly key: string
      readonly part: boolean
      readonly md5: string | undefined
      readonly sha256: string | undefined
      readonly signed: ReadonlyArray<string>
      readonly bodyMd5: string
      readonly bodySha256: string
    }
    const seen: Array<Seen> = []
    // deserialize runs after finalizeRequest: the request as signed and sent
    client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { path?: string; query?: Record<string, string>; headers: Record<string, string>; body?: unknown }
        if (req.body instanceof Uint8Array) {
          const signed = /SignedHeaders=([^,]*)/.exec(req.headers["authorization"] ?? "")?.[1]?.split(";") ?? []
          seen.push({
            key: req.path ?? "",
            part: "partNumber" in (req.query ?? {}),
            md5: req.headers["content-md5"],
            sha256: req.headers["x-amz-content-sha256"],
            signed,
            bodyMd5: createHash("md5").update(req.body).digest("base64"),
            bodySha256: createHash("sha256").update(req.body).digest("hex")
          })
        }
        return next(args)
      },
      { step: "deserialize", name: "testSpy" }
    )
    const body = Buffer.alloc(12 << 20, 7)
    const part = (n: number) => body.subarray((n - 1) * (5 << 20), Math.min(body.length, n * (5 << 20)))
    const hashOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
    // as the clear layout uploads (bodies' hashes given) and as the encrypted one does (none given)
    const upload = (key: string, size: number, bodySha256?: (n: number) => string) => {
      let at = 0
      return Effect.runPromise(
        putObjectFromSource({
          sdk: sdk.s3,
          client,
          context: { endpoint: env.endpoint, bucket },
          params: { Bucket: bucket, Key: key, ContentType: "application/octet-stream", Metadata: {} },
          size,
          fill: async (buf) => {
            const n = body.copy(buf, 0, at, Math.min(size, at + buf.length))
            at += n
            return n
          },
          partSize: 5 << 20,
          queueSize: 2,
          ...(bodySha256 === undefined ? {} : { bodySha256 })
        })
      )
    }
    await upload("sum/multipart-hashed", body.length, (n) => hashOf(part(n)))
    await upload("sum/single-hashed", 1000, () => hashOf(body.subarray(0, 1000)))
    await upload("sum/multipart", body.length)
    await upload("sum/single", 1000)
    await client.send(new sdk.s3.PutObjectCommand({ Bucket: bucket, Key: "sum/plain", Body: Buffer.from("one shot") }))
    client.destroy()
    expect(seen.filter((s) => s.part)).toHaveLength(6)
    expect(seen).toHaveLength(9)
    const hex = /^[0-9a-f]{64}$/
    for (const s of seen) {
      const md5Ok = s.md5 === s.bodyMd5
      const sha256Ok = s.sha256 !== undefined && hex.test(s.sha256) && s.sha256 === s.bodySha256 && s.signed.includes("x-amz-content-sha256")
      expect({ key: s.key, verified: md5Ok || sha256Ok }).toEqual({ key: s.key, verified: true })
      // a Content-MD5 that is sent is the body's
      if (s.md5 !== undefined) expect(s.md5).toBe(s.bodyMd5)
    }
    // bodies whose signed SHA-256 the caller gave are not hashed a second time (no Content-MD5);
    // the others carry Content-MD5 (and the SDK's own signed SHA-256)
    for (const s of seen) expect({ key: s.key, md5: s.md5 !== undefined }).toEqual({ key: s.key, md5: !s.key.includes("-hashed") })
  })

  it("the store checks the signed payload SHA-256: a body that is not the one hashed is refused (single PUT and a part), nothing is created", async () => {
    const sdk = await loadSdk()
    const client = makeClient(sdk, storeSettings(env, bucket), { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey }, { connectionTimeoutMs: 5000, requestTimeoutMs: 60000 })
    const body = Buffer.alloc(12 << 20, 9)
    const hashOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
    const put = (key: string, size: number, bodySha256: (n: number) => string) => {
      let at = 0
      return Effect.runPromise(
        Effect.either(
          putObjectFromSource({
            sdk: sdk.s3,
            client,
            context: { endpoint: env.endpoint, bucket },
            params: { Bucket: bucket, Key: key, ContentType: "application/octet-stream", Metadata: {} },
            size,
            fill: async (buf) => {
              const n = body.copy(buf, 0, at, Math.min(size, at + buf.length))
              at += n
              return n
            },
            partSize: 5 << 20,
            queueSize: 2,
            bodySha256
          })
        )
      )
    }
    const part = (n: number) => body.subarray((n - 1) * (5 << 20), Math.min(body.length, n * (5 << 20)))
    // the hashes of the bytes sent: accepted
    expect(Either.isRight(await put("sha/multipart-ok", body.length, (n) => hashOf(part(n))))).toBe(true)
    // part 2 announced with the hash of other bytes (as if the file had changed after hashing)
    const bad = await put("sha/multipart-bad", body.length, (n) => (n === 2 ? hashOf(Buffer.from("other bytes")) : hashOf(part(n))))
    expect(Either.getLeft(bad).pipe((o) => (o._tag === "Some" ? o.value : undefined))).toMatchObject({ _tag: "ObjectStoreRequestFailed", status: 400, code: "XAmzContentSHA256Mismatch" })
    const single = await put("sha/single-bad", 1000, () => hashOf(Buffer.from("other bytes")))
    expect(Either.getLeft(single).pipe((o) => (o._tag === "Some" ? o.value : undefined))).toMatchObject({ _tag: "ObjectStoreRequestFailed", status: 400, code: "XAmzContentSHA256Mismatch" })
    const s3 = rawClient(env)
    for (const key of ["sha/multipart-bad", "sha/single-bad"]) {
      const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
        () => "exists",
        (e: { $metadata?: { httpStatusCode?: number } }) => String(e.$metadata?.httpStatusCode)
      )
      expect(h).toBe("404")
    }
    s3.destroy()
    client.destroy()
  })

  it.live("multipart round trip of a 20 MB member: ETag of 3 parts, bytes back unchanged, checksums verified", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-mp")
      const file = path.join(dir, "member.gz")
      const meta = yield* Effect.promise(() => bigMember(file, 20 << 20))
      expect(meta.size).toBeGreaterThan(16 << 20)
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "mp/" }))
      const up = yield* store.uploadChunk("carol", { path: file }, meta)
      expect(up.reused).toBe(false)
      expect(up.entry.etag).toMatch(/-3"$/)
      expect(up.entry.stored).toBe(meta.size)
      expect(up.entry.object).toBe(`users/carol/chunks/${up.entry.sha256}.gz`)
      const back = Buffer.concat(yield* Stream.runCollect(store.downloadChunk(up.entry)).pipe(Effect.map((c) => [...c])))
      expect(back.equals(fs.readFileSync(file))).toBe(true)
      const v = yield* store.verifyObject(up.entry, "full")
      expect(v).toMatchObject({ ok: true, problems: [] })
      // a second upload of the same chunk finds it (the content id names it) and sends nothing
      const again = yield* store.uploadChunk("carol", { path: file }, meta)
      expect(again).toMatchObject({ reused: true, entry: up.entry })
    }))

  it.live("a real backup: chunks and manifests up, the data file rebuilt byte for byte, reindexed alike", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-rt")
      const data = yield* goldenBackup(dir)
      const metas = chunkMetas(data)
      expect(metas.length).toBeGreaterThan(1)
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "rt/" }))
      const entries = yield* uploadAll(store, "alice", data, metas)
      // first the leading chunks (a full manifest), then the rest (an append)
      const first = yield* store.putManifest({ user: "alice", dataFile: data, chunks: entries.slice(0, 2) })
      expect(first.head).toMatchObject({ seq: 1, kind: "full", chainLength: 1, chunkCount: 2 })
      const second = yield* store.putManifest({ user: "alice", dataFile: data, chunks: entries, previous: first.head })
      expect(second.head).toMatchObject({ seq: 2, kind: "append", chainLength: 2, chunkCount: entries.length, end: fs.statSync(data).size })
      const unchanged = yield* store.putManifest({ user: "alice", dataFile: data, chunks: entries, previous: second.head })
      expect(unchanged.written).toBe(false)

      expect(yield* store.listUserDirs).toEqual(["alice"])
      expect(yield* store.latestSeq("alice")).toBe(2)
      const resolved = (yield* store.latestManifest("alice"))!
      expect(resolved).toMatchObject({ user: "alice", dataFile: data, host: "cyb-test" })
      expect(resolved.chunks).toEqual(entries)
      const older = (yield* store.latestManifest("alice", { atOrBefore: 1 }))!
      expect(older.chunks).toEqual(entries.slice(0, 2))

      const target = path.join(dir, "rebuilt")
      const restored = yield* store.restoreDataFile(resolved, target)
      expect(restored).toEqual({ bytes: fs.statSync(data).size, sha1: sha1File(data) })
      expect(sha1File(target)).toBe(sha1File(data))
      expect(fs.existsSync(`${target}.pull`)).toBe(false)
      const again = yield* Effect.either(store.restoreDataFile(resolved, target))
      expect(Either.isLeft(again) && again.left.message).toContain("exists; not overwriting it")

      // the index, our backupd_chunk_state included, comes back from the data file alone
      yield* reindexFile(target)
      const q = "SELECT id, offset, length, file_sha1, data_sha1, ts_start, ts_end FROM chunk ORDER BY id"
      expect(tableRows(`${target}.index`, q)).toEqual(tableRows(`${data}.index`, q))
      const state = "SELECT chunk_id, sealed, end_offset, length, crc32, last_ts FROM backupd_chunk_state"
      expect(tableRows(`${target}.index`, state)).toEqual(tableRows(`${data}.index`, state))

      for (const e of entries) expect(yield* store.verifyObject(e, "full")).toMatchObject({ ok: true })
    }))

  it.live("a backup received in one pass (download, write and index together) has the index a reindex of the file builds, every table and both saved hash states", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-recv")
      const data = yield* goldenBackup(dir, "dave_os")
      const metas = chunkMetas(data)
      expect(metas.length).toBeGreaterThan(1)
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "recv/" }))
      const entries = yield* uploadAll(store, "dave", data, metas)
      yield* store.putManifest({ user: "dave", dataFile: data, chunks: entries })
      const resolved = (yield* store.latestManifest("dave"))!
      const size = fs.statSync(data).size
      const reference = path.join(dir, "reference")
      yield* store.restoreDataFile(resolved, reference)
      yield* reindexFile(reference)
      const tables = (tableRows(`${reference}.index`, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") as Array<{ name: string }>).map((r) => r.name)
      expect(tables).toContain("backupd_chunk_state")
      const dump = (index: string) => Object.fromEntries(tables.map((t) => [t, tableRows(index, `SELECT * FROM ${t} ORDER BY rowid`)]))
      expect(dump(`${reference}.index`)["backupd_chunk_state"]).toHaveLength(1)
      {
        const target = path.join(dir, "received")
        const got = yield* receiveFrom(store, resolved, target, size)
        expect(got).toMatchObject({ bytes: size, sha1: sha1File(data), chunks: metas.length, problems: [], rejected: [] })
        expect(sha1File(target)).toBe(sha1File(data))
        expect(dump(`${target}.index`)).toEqual(dump(`${reference}.index`))
        expect(fs.readdirSync(dir).filter((f) => f.includes(".pull"))).toEqual([])
      }

      // a chunk that fails its SHA-256 at the end of its download: nothing in place, no work files left
      const bad = { ...resolved, chunks: resolved.chunks.map((c, i) => (i === resolved.chunks.length - 1 ? { ...c, sha256: "0".repeat(64) } : c)) }
      const target = path.join(dir, "broken")
      const failed = yield* Effect.either(receiveFrom(store, bad, target, size))
      expect(Either.isLeft(failed) && failed.left.message).toContain("SHA-256")
      expect(fs.readdirSync(dir).filter((f) => f.startsWith("broken"))).toEqual([])
      // and one closed before it is complete leaves nothing either
      yield* Effect.scoped(Effect.flatMap(receiveBackup({ target, work: `${target}.pull`, size }), (r) => Effect.promise(() => r.write(fs.readFileSync(data).subarray(0, 1000)))))
      expect(fs.readdirSync(dir).filter((f) => f.startsWith("broken"))).toEqual([])
    }))

  it.live("the manifest's end: the file's SHA-1 (and its saved state) where the chunks end; a pull checks it after the last chunk, uses the state only when both digests agree, and names a tampered last object", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-end")
      const data = yield* goldenBackup(dir, "erin_os")
      const metas = chunkMetas(data)
      expect(metas.length).toBeGreaterThan(1)
      const size = fs.statSync(data).size
      const savedState = String((tableRows(`${data}.index`, "SELECT file_sha1_state FROM backupd_chunk_state")[0] as { file_sha1_state: unknown }).file_sha1_state)
      const plan = yield* Effect.scoped(Effect.flatMap(openBackup(data), (b) => planUpload(b.sql, `${data}.index`, "erin", data, size)))
      // every chunk sealed: the state row's end, with its state; one chunk fewer: the next chunk's file_sha1
      const end = yield* manifestEnd(plan, plan.chunks.length)
      expect(end).toEqual({ offset: size, fileSha1: sha1File(data), fileState: savedState })
      const last = metas[metas.length - 1]!
      expect(yield* manifestEnd(plan, metas.length - 1)).toEqual({ offset: last.offset, fileSha1: last.fileSha1 })

      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "end/" }))
      const entries = yield* uploadAll(store, "erin", data, metas)
      const wrongEnd = yield* Effect.either(store.putManifest({ user: "erin", dataFile: data, chunks: entries, end: { ...end!, offset: size - 1 } }))
      expect(Either.isLeft(wrongEnd) && wrongEnd.left.message).toContain(`manifest end at ${size - 1}, its chunks end at ${size}`)
      yield* store.putManifest({ user: "erin", dataFile: data, chunks: entries, end })
      const resolved = (yield* store.latestManifest("erin"))!
      expect(resolved.end).toEqual(end)

      const reference = path.join(dir, "reference")
      yield* store.restoreDataFile(resolved, reference)
      yield* reindexFile(reference)
      const chunkState = "SELECT * FROM backupd_chunk_state"
      // hash-wasm's saved state carries bytes beyond the hashed ones, so a writer's state and a
      // reindex's differ as bytes while standing for the same hash: which one an index has tells
      // whether it was given the manifest's or hashed the file itself
      const rowOf = (index: string) => tableRows(index, chunkState)[0] as Record<string, unknown>
      const { file_sha1_state: writerState, ...writerRest } = rowOf(`${data}.index`)
      const { file_sha1_state: rehashedState, ...rehashedRest } = rowOf(`${reference}.index`)
      expect(rehashedRest).toEqual(writerRest)
      expect(writerState).toBe(savedState)
      expect(rehashedState).not.toBe(savedState)
      const pull = (name: string, m: typeof resolved, endGiven: typeof end) => Effect.either(receiveFrom(store, m, path.join(dir, name), size, endGiven))
      // the state given goes into the index as it is; one that does not stand for fileSha1 is not trusted: the index hashes the file itself
      const otherState = savedState.slice(0, 10) + (savedState[10] === "0" ? "1" : "0") + savedState.slice(11)
      for (const [name, given] of [["given", end], ["untrusted", { ...end!, fileState: otherState }]] as const) {
        const got = yield* pull(name, resolved, given)
        expect(Either.isRight(got) && got.right).toMatchObject({ bytes: size, sha1: sha1File(data), problems: [], rejected: [] })
        const { file_sha1_state: state, ...rest } = rowOf(`${path.join(dir, name)}.index`)
        expect(rest).toEqual(writerRest)
        expect(yield* digestOfSavedState(String(state))).toBe(sha1File(data))
        if (name === "given") expect(state).toBe(savedState)
        else expect([savedState, otherState]).not.toContain(state)
      }

      const lastObject = entries[entries.length - 1]!.object
      const lastKey = `end/${lastObject}`
      // a wrong end.fileSha1: the last chunk is named, nothing left behind
      const badEnd = { ...resolved, end: { ...end!, fileSha1: "0".repeat(40) } }
      const noEnd = yield* pull("bad-end", badEnd, badEnd.end)
      expect(Either.isLeft(noEnd) && noEnd.left.message).toContain(`prefix end/: ${lastObject}: file_sha1 after chunk ${last.id} is ${sha1File(data)}, the manifest says ${"0".repeat(40)} (the file's end)`)
      expect(fs.readdirSync(dir).filter((f) => f.startsWith("bad-end"))).toEqual([])

      // the last object replaced behind the library's back, same size: its SHA-256 is not computed, the end's SHA-1 catches it
      const bytes = fs.readFileSync(data).subarray(last.offset, last.offset + last.size)
      bytes[bytes.length - 20] ^= 0xff
      const s3 = rawClient(env)
      yield* Effect.promise(() => s3.send(new PutObjectCommand({ Bucket: bucket, Key: lastKey, Body: bytes })))
      s3.destroy()
      const tampered = yield* pull("tampered", resolved, resolved.end)
      expect(Either.isLeft(tampered) && tampered.left.message).toMatch(new RegExp(`prefix end/: ${lastObject}: file_sha1 after chunk ${last.id} is [0-9a-f]{40}, the manifest says ${sha1File(data)} \\(the file's end\\)`))
      expect(fs.readdirSync(dir).filter((f) => f.startsWith("tampered"))).toEqual([])
      // without end (an older manifest), the same object fails its SHA-256
      const { end: _dropped, ...older } = resolved
      const old = yield* pull("older", older, undefined)
      expect(Either.isLeft(old) && old.left.message).toContain(`${lastKey}: SHA-256`)
    }))

  it.live("verify reports an object that differs from its manifest entry", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-vf")
      const data = yield* goldenBackup(dir, "bob_os")
      const [m] = chunkMetas(data)
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "vf/" }))
      const { entry } = yield* store.uploadChunk("bob", { path: data }, m!)
      // behind the library's back (this bucket is unversioned): same size, other bytes
      const s3 = rawClient(env)
      const bytes = fs.readFileSync(data).subarray(m!.offset, m!.offset + m!.size)
      bytes[bytes.length - 20] ^= 0xff
      yield* Effect.promise(() => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `vf/${entry.object}`, Body: bytes })))
      s3.destroy()
      const quick = yield* store.verifyObject(entry, "quick")
      expect(quick.ok).toBe(false)
      expect(quick.problems.join()).toContain("ETag")
      const fullCheck = yield* store.verifyObject({ ...entry, etag: quick.problems.length > 0 ? (yield* headEtag(env, bucket, `vf/${entry.object}`)) : entry.etag }, "full")
      expect(fullCheck.ok).toBe(false)
      expect(fullCheck.problems.join()).toContain("SHA-256")
      const gone = yield* store.verifyObject({ ...entry, object: entry.object.replace(/[0-9a-f]{8}\.gz$/, "00000000.gz") }, "quick")
      expect(gone).toMatchObject({ ok: false, problems: ["missing from the store"] })
    }))

  /** No object at `key`, and no multipart upload left behind. */
  const nothingStored = (store: ObjectStoreShape, key: string) =>
    Effect.gen(function*() {
      const s3 = rawClient(env)
      const h = yield* Effect.promise(() =>
        s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
          () => "exists",
          (e: { $metadata?: { httpStatusCode?: number } }) => String(e.$metadata?.httpStatusCode)
        )
      )
      s3.destroy()
      expect(h).toBe("404")
      expect(yield* store.abortIncompleteUploads(0)).toBe(0)
    })

  it.live("a member that changes after it was named is refused by the store (its parts are signed with the named bytes' SHA-256): no object, no upload left", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-chg")
      const file = path.join(dir, "member.gz")
      const meta = yield* Effect.promise(() => bigMember(file, 12 << 20))
      const named = createHash("sha256").update(fs.readFileSync(file)).digest("hex")
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "chg/" }), { retry: QUICK_RETRY })
      yield* store.status
      // once the naming pass has read the whole member, 8 bytes inside part 2 change on disk
      const changed = afterNaming(meta.size, () => {
        const w = fs.openSync(file, "r+")
        fs.writeSync(w, Buffer.from("changed!"), 0, 8, 10 << 20)
        fs.closeSync(w)
      })
      const r = yield* Effect.either(store.uploadChunk("u", { path: file }, meta)).pipe(Effect.ensuring(Effect.sync(changed.restore)))
      expect(changed.done()).toBe(true)
      expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "ObjectStoreSourceError", message: expect.stringContaining("changed while it was uploaded") })
      yield* nothingStored(store, `chg/users/u/chunks/${named}.gz`)
    }))

  it.live("a member cut short after it was named fails its upload at once (the part streams end early; nothing waits for the missing bytes): no object, no upload left", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-cut")
      const file = path.join(dir, "member.gz")
      const meta = yield* Effect.promise(() => bigMember(file, 12 << 20))
      const named = createHash("sha256").update(fs.readFileSync(file)).digest("hex")
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "cut/" }), { retry: QUICK_RETRY, requestTimeoutMs: 60_000 })
      yield* store.status
      // once the naming pass has read the whole member, the file loses its last 3 MiB
      const cut = afterNaming(meta.size, () => fs.truncateSync(file, meta.size - (3 << 20)))
      const started = Date.now()
      const r = yield* Effect.either(store.uploadChunk("u", { path: file }, meta)).pipe(Effect.ensuring(Effect.sync(cut.restore)))
      expect(cut.done()).toBe(true)
      expect(Date.now() - started).toBeLessThan(30_000)
      expect(Either.isLeft(r) && r.left.message).toContain("file ends at")
      yield* nothingStored(store, `cut/users/u/chunks/${named}.gz`)
    }))

  it.live("a chunk that is not sealed is refused before anything is sent", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-uns")
      const data = yield* goldenBackup(dir, "dave_os")
      const [m] = chunkMetas(data)
      const store = makeObjectStore(storeSettings(env, bucket, { prefix: "uns/" }))
      const r = yield* Effect.either(store.uploadChunk("dave", { path: data }, { ...m!, size: m!.size - 8 }))
      expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "ObjectStoreSourceError", message: expect.stringContaining("not sealed") })
    }))

  it.live("wrong credentials: access denied, naming the endpoint and the bucket", () =>
    Effect.gen(function*() {
      const store = makeObjectStore(storeSettings(env, bucket, { credentialsFile: credentialsFile(env, "0".repeat(40)) }), { retry: QUICK_RETRY })
      const r = yield* Effect.either(store.status)
      expect(Either.isLeft(r) && r.left._tag).toBe("ObjectStoreAccessDenied")
      const message = Either.isLeft(r) ? r.left.message : ""
      expect(message).toContain(`object store ${env.endpoint}, bucket ${bucket}`)
      expect(message).toContain("backup_objectstore_credentials")
      const bogusKey = makeObjectStore(storeSettings(env, bucket, { credentialsFile: credentialsFile({ ...env, accessKeyId: "NOSUCHKEY0000000000" }) }), { retry: QUICK_RETRY })
      const r2 = yield* Effect.either(bogusKey.listUserDirs)
      expect(Either.isLeft(r2) && r2.left.message).toContain(env.endpoint)
    }))

  it.live("a missing bucket: a clear error", () =>
    Effect.gen(function*() {
      const store = makeObjectStore(storeSettings(env, "no-such-bucket-here"), { retry: QUICK_RETRY })
      const r = yield* Effect.either(store.status)
      expect(Either.isLeft(r) && r.left).toMatchObject({
        _tag: "ObjectStoreNoSuchBucket",
        message: `object store ${env.endpoint}, bucket no-such-bucket-here: the bucket does not exist (create it, or fix backup_objectstore_bucket)`
      })
    }))

  it.live("an unreachable store: retried, then an error naming it", () =>
    Effect.gen(function*() {
      const store = makeObjectStore(storeSettings(env, bucket, { endpoint: "http://127.0.0.1:9" }), { retry: QUICK_RETRY, connectionTimeoutMs: 1000 })
      const r = yield* Effect.either(store.status)
      expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "ObjectStoreUnreachable", message: expect.stringContaining("object store http://127.0.0.1:9, bucket") })
    }))

  it.live("a credentials file readable by others is refused before any request", () =>
    Effect.gen(function*() {
      const f = credentialsFile(env)
      fs.chmodSync(f, 0o644)
      const r = yield* Effect.either(makeObjectStore(storeSettings(env, bucket, { credentialsFile: f })).status)
      expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "ObjectStoreConfigError", message: expect.stringContaining("readable by group or others") })
    }))
})

const headEtag = (env: S3Env, bucket: string, key: string) =>
  Effect.promise(async () => {
    const s3 = rawClient(env)
    const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    s3.destroy()
    return h.ETag!
  })
