/**
 * Encrypted layout on the real Ceph: a backup written by our store goes up age-encrypted to
 * write-only recipients; the bucket's names and metadata hold no user id or mailbox name;
 * Debian's `age -d -i key` plus `zcat` read a chunk, and `cat` of the decrypted chunks is the
 * data file; a host with only the identity lists the user, resolves the manifest and
 * rebuilds the file byte for byte; mismatched keys are refused with clear errors.
 */
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import zlib from "node:zlib"
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { afterAll, beforeAll } from "vitest"
import type { ChunkEntry } from "../../src/objectstore/Manifest.js"
import { makeObjectStore } from "../../src/objectstore/ObjectStore.js"
import { cephContext, createBucket, rawClient, removeBucket, startCeph, storeSettings, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { ageKeys, chunkMetas, goldenBackup, haveAgeCli, sha1File, tempDir, type AgeKeys } from "./support.js"

const ceph = cephContext()
warnIfNoCeph("object store encryption suite")
if (ceph.skip === undefined && !haveAgeCli) console.warn("\n!!! SKIPPING the age CLI checks: /usr/bin/age missing (apt-get install age)\n")

describe.skipIf(ceph.skip !== undefined)("encrypted objects on Ceph", () => {
  let env: S3Env
  let bucket: string
  let keys: AgeKeys
  let dir: string
  let data: string
  let entries: Array<ChunkEntry>
  const PREFIX = "host-a/"

  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-enc")
    dir = tempDir("os-enc")
    keys = await ageKeys(dir)
    data = await Effect.runPromise(goldenBackup(dir))
    // the writing host has the recipients only
    const writer = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX, recipientsFile: keys.recipientsFile }))
    entries = []
    for (const m of chunkMetas(data)) entries.push((await Effect.runPromise(writer.uploadChunk("alice", { path: data }, m))).entry)
    // the end as push gives it without a sealed chunk state (docs/storage.md, "Manifests")
    await Effect.runPromise(writer.putManifest({ user: "alice", dataFile: data, chunks: entries, end: { offset: fs.statSync(data).size, fileSha1: sha1File(data) } }))
  })
  afterAll(async () => {
    if (env !== undefined && bucket !== undefined) await removeBucket(env, bucket)
  })

  const allKeys = async () => {
    const s3 = rawClient(env)
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: PREFIX }))
    s3.destroy()
    return (out.Contents ?? []).map((o) => o.Key!)
  }

  const fetchObject = async (key: string, file: string) => {
    const s3 = rawClient(env)
    const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    fs.writeFileSync(file, await o.Body!.transformToByteArray())
    s3.destroy()
  }

  it("names and metadata carry no user id or mailbox name; objects are age files", async () => {
    const names = await allKeys()
    expect(names.length).toBe(entries.length + 2) // chunks, one manifest, the marker
    for (const n of names) {
      expect(n).not.toMatch(/alice|inbox|user\./i)
      expect(n).toMatch(/^host-a\/(cyrus-backupd\.json|users\/[0-9a-f]{32}\/(chunks\/[0-9a-f]{64}\.gz\.age|manifests\/[0-9]{16}-f\.json\.age))$/)
    }
    const s3 = rawClient(env)
    for (const n of names.filter((x) => x.endsWith(".age"))) {
      const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: n }))
      expect(h.Metadata ?? {}).toEqual({})
      const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: n, Range: "bytes=0-21" }))
      expect(await o.Body!.transformToString()).toBe("age-encryption.org/v1\n")
    }
    s3.destroy()
  })

  it.live("the writing host cannot read its own manifests (write-only keys)", () =>
    Effect.gen(function*() {
      const writer = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX, recipientsFile: keys.recipientsFile }))
      const [userDir] = yield* writer.listUserDirs
      const r = yield* Effect.either(writer.latestManifest(userDir!))
      expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "ObjectStoreConfigError", message: expect.stringContaining("backup_objectstore_identity: not set") })
      // it can still tell the sequence number (from the name), which is all it needs to write the next
      expect(yield* writer.latestSeq(userDir!)).toBe(1)
    }))

  it.skipIf(!haveAgeCli)("standard tools: age -d -i, zcat and cat give the chunks and the data file", async () => {
    const work = tempDir("os-age")
    const members: Array<string> = []
    for (const e of entries) {
      const enc = path.join(work, `${e.id}.gz.age`)
      const dec = path.join(work, `${e.id}.gz`)
      await fetchObject(`${PREFIX}${e.object}`, enc)
      execFileSync("age", ["-d", "-i", keys.identityFile, "-o", dec, enc])
      const text = execFileSync("zcat", [dec])
      const local = zlib.gunzipSync(fs.readFileSync(data).subarray(e.offset, e.offset + e.size))
      expect(text.equals(local)).toBe(true)
      expect(text.subarray(0, 29).toString("latin1")).toBe("# cyrus backup: chunk start\r\n")
      members.push(dec)
    }
    const rebuilt = path.join(work, "alice.rebuilt")
    execFileSync("sh", ["-c", `cat ${members.join(" ")} > ${rebuilt}`])
    expect(sha1File(rebuilt)).toBe(sha1File(data))
    // the manifest is an age file too: JSON naming the user and the file
    const manifestKey = (await allKeys()).find((k) => k.includes("/manifests/"))!
    await fetchObject(manifestKey, path.join(work, "manifest.age"))
    const json = JSON.parse(execFileSync("age", ["-d", "-i", keys.identityFile, path.join(work, "manifest.age")], { encoding: "utf8" }))
    expect(json).toMatchObject({ format: "cyrus-backupd-manifest", user: "alice", seq: 1, kind: "full", dataFile: data })
    expect(json.chunks.map((c: ChunkEntry) => c.object)).toEqual(entries.map((e) => e.object))
    // docs/restore.md step 4: sha1sum of the reassembled file is the manifest's end.fileSha1
    expect(execFileSync("sha1sum", [rebuilt], { encoding: "utf8" }).split(" ")[0]).toBe(json.end.fileSha1)
  })

  it.live("a fresh host with only the identity lists the user, resolves the manifest and rebuilds the file", () =>
    Effect.gen(function*() {
      const reader = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX, identityFile: keys.identityFile }))
      const dirs = yield* reader.listUserDirs
      expect(dirs).toHaveLength(1)
      expect(reader.userOfDir(dirs[0]!)).toBeUndefined()
      expect(yield* reader.userDir("alice")).toBe(dirs[0])
      const resolved = (yield* reader.latestManifest(dirs[0]!))!
      expect(resolved.user).toBe("alice")
      expect(resolved.chunks).toEqual(entries)
      const target = path.join(tempDir("os-pull"), "alice_pulled")
      const out = yield* reader.restoreDataFile(resolved, target)
      expect(out.sha1).toBe(sha1File(data))
      expect(sha1File(target)).toBe(sha1File(data))
      for (const e of entries) expect(yield* reader.verifyObject(e, "full")).toMatchObject({ ok: true, problems: [] })
    }))

  it.live("mismatched keys and layouts are refused, naming what to fix", () =>
    Effect.gen(function*() {
      const other = yield* Effect.promise(() => ageKeys(tempDir("os-other")))
      const wrongIdentity = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX, identityFile: other.identityFile }))
      const a = yield* Effect.either(wrongIdentity.listUserDirs)
      expect(Either.isLeft(a) && a.left).toMatchObject({ _tag: "ObjectStoreLayoutError", message: expect.stringContaining("none of the identities") })
      const wrongRecipients = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX, recipientsFile: other.recipientsFile }))
      const b = yield* Effect.either(wrongRecipients.status)
      expect(Either.isLeft(b) && b.left.message).toContain("named for another recipient")
      const clear = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX }))
      const c = yield* Effect.either(clear.status)
      expect(Either.isLeft(c) && c.left.message).toContain("are encrypted, but neither backup_objectstore_recipients nor backup_objectstore_identity is set")
      // a second recipient after the naming one is fine: it only adds a reader
      const both = path.join(tempDir("os-both"), "recipients")
      fs.writeFileSync(both, `${keys.recipient}\n${other.recipient}\n`)
      const twoReaders = makeObjectStore(storeSettings(env, bucket, { prefix: PREFIX, recipientsFile: both }))
      expect((yield* twoReaders.status).encrypted).toBe(true)
    }))
})
