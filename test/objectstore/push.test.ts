/**
 * `ctl_backups push`, `list` (pending), `verify -O` and `pull` against a real Ceph radosgw:
 * a backup written by our store is pushed (pending goes from every chunk to none, a second push
 * sends nothing), verified in the store, and pulled onto a fresh host byte for byte with the
 * same index; the feature off, wrong credentials and a missing bucket give clear lines and
 * sysexits codes.
 */
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll } from "vitest"
import { pendingUploads } from "../../src/objectstore/index.js"
import { Partitions } from "../../src/partitions/index.js"
import { MEMBER_PART_SIZE } from "../../src/objectstore/settings.js"
import { atom, item, kvlist, list } from "../../src/protocol/dlist/value.js"
import { BackupsDb, openForAppend } from "../../src/store/index.js"
import { tableRows } from "../store/support.js"
import { cephContext, createBucket, credentialsFile, removeBucket, startCeph, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { makeServer, runOurs } from "../tools/support.js"
import { ageKeys, chunkMetas, goldenBackup, sha1File } from "./support.js"

const ceph = cephContext()
warnIfNoCeph("ctl_backups push/pull suite")

const storeConf = (env: S3Env, bucket: string, extra: ReadonlyArray<string> = []) => [
  `backup_objectstore_endpoint: ${env.endpoint}`,
  `backup_objectstore_bucket: ${bucket}`,
  `backup_objectstore_credentials: ${credentialsFile(env)}`,
  ...extra
]

/** The JSON objects ctl_backups -j printed (jansson's indented dumps, one after another). */
const json = (stdout: string) =>
  stdout
    .split(/(?<=^\})\n/m)
    .filter((t) => t.trim() !== "")
    .map((t) => JSON.parse(t) as Record<string, unknown>)

describe.skipIf(ceph.skip !== undefined)("ctl_backups and the object store", () => {
  let env: S3Env
  let bucket: string
  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-push")
  })
  afterAll(async () => {
    if (env !== undefined && bucket !== undefined) await removeBucket(env, bucket)
  })

  it("push uploads every sealed chunk once, list shows what is pending, verify -O checks, pull rebuilds byte for byte", async () => {
    const keys = await ageKeys(fs.mkdtempSync(path.join(makeServer("keys").dir, "k")))
    const conf = storeConf(env, bucket, ["backup_objectstore_prefix: push1", `backup_objectstore_recipients: ${keys.recipientsFile}`])
    const a = makeServer("push-a", conf)
    const data = await Effect.runPromise(goldenBackup(path.join(a.partition, "a"), "alice_os"))
    await a.record("alice", data)
    const metas = chunkMetas(data)
    expect(metas.length).toBeGreaterThan(1)
    const size = fs.statSync(data).size

    const before = await runOurs("ctl_backups", ["-C", a.conf, "list", "-j", "-A"])
    expect(before.code).toBe(0)
    expect(json(before.stdout)[0]).toMatchObject({ userid: "alice", pending_chunks: metas.length, pending_bytes: size })

    // the function metrics use: local state only, no lock
    expect(await Effect.runPromise(pendingUploads(data))).toEqual({ chunks: metas.length, bytes: size, sealedChunks: metas.length, manifestSeq: 0, lastUpload: undefined })

    const push = await runOurs("ctl_backups", ["-C", a.conf, "push", "-j", "-A"])
    expect(push.stderr).toBe("")
    expect(push.code).toBe(0)
    expect(json(push.stdout)[0]).toMatchObject({ userid: "alice", uploaded_chunks: metas.length, uploaded_bytes: size, manifest_seq: 1, pending_chunks: 0, pending_bytes: 0 })

    const after = await runOurs("ctl_backups", ["-C", a.conf, "list", "alice"])
    expect(after.stdout).toMatch(new RegExp(`\\talice\\t${data}\\t0\\t0\\n$`))

    expect(await Effect.runPromise(pendingUploads(data))).toMatchObject({ chunks: 0, bytes: 0, sealedChunks: metas.length, manifestSeq: 1 })

    const again = await runOurs("ctl_backups", ["-C", a.conf, "push", "-j", "alice"])
    expect(again.code).toBe(0)
    expect(json(again.stdout)[0]).toMatchObject({ uploaded_chunks: 0, reused_chunks: 0, manifest_seq: 1 })

    const quick = await runOurs("ctl_backups", ["-C", a.conf, "verify", "-O", "alice"])
    expect(quick.code).toBe(0)
    expect(quick.stdout).toBe(`alice\tquick\tchecked ${metas.length}\tbad 0\tpending 0\tok\n`)
    // full needs the identity (decrypt): without it, a clear error
    const noId = await runOurs("ctl_backups", ["-C", a.conf, "verify", "-O", "-F", "alice"])
    expect(noId.code).not.toBe(0)

    // a fresh host: same store options plus the identity, empty partition and backups.db
    const b = makeServer("push-b", [...conf, `backup_objectstore_identity: ${keys.identityFile}`])
    const pull = await runOurs("ctl_backups", ["-C", b.conf, "pull", "-A"])
    expect(pull.stderr).toBe("")
    expect(pull.code).toBe(0)
    const [user, rebuilt, chunks, bytes, sha1] = pull.stdout.trim().split("\t")
    expect([user, chunks, bytes, sha1]).toEqual(["alice", String(metas.length), String(size), sha1File(data)])
    expect(rebuilt!.startsWith(b.partition + "/")).toBe(true)
    expect(sha1File(rebuilt!)).toBe(sha1File(data))
    const q = "SELECT id, offset, length, file_sha1, data_sha1, ts_start, ts_end FROM chunk ORDER BY id"
    expect(tableRows(`${rebuilt}.index`, q)).toEqual(tableRows(`${data}.index`, q))
    // the manifest's end carried the writer's saved file hash: the rebuilt index has it as it was
    const chunkState = "SELECT * FROM backupd_chunk_state"
    expect(tableRows(`${rebuilt}.index`, chunkState)).toEqual(tableRows(`${data}.index`, chunkState))
    const listed = await runOurs("ctl_backups", ["-C", b.conf, "list", "-j", "alice"])
    expect(json(listed.stdout)[0]).toMatchObject({ userid: "alice", fname: rebuilt, pending_chunks: 0, pending_bytes: 0 })
    // the head manifest pulled is recorded with its object name (push extends its lock from then on)
    const headQ = "SELECT seq, kind, chunk_count, end_offset, object FROM backupd_object_head"
    const headB = tableRows(`${rebuilt}.index`, headQ)
    expect(headB).toEqual(tableRows(`${data}.index`, headQ))
    expect(String((headB[0] as { object: unknown }).object)).toMatch(/^users\/[0-9a-f]{32}\/manifests\/9999999999999998-f\.json\.age$/)
    const fullB = await runOurs("ctl_backups", ["-C", b.conf, "verify", "-O", "-F", "alice"])
    expect(fullB.stdout).toBe(`alice\tfull\tchecked ${metas.length}\tbad 0\tpending 0\tok\n`)
    expect(fullB.code).toBe(0)
    // pulling again leaves the backup alone
    const twice = await runOurs("ctl_backups", ["-C", b.conf, "pull", "alice"])
    expect(twice.stderr).toContain("already has a backup here")
    expect(twice.code).toBe(0)
  })

  it("an 8-bit user id (latin1 byte 0xE9) goes up and comes back: the same backups.db key, the file where our store opens it, byte for byte", async () => {
    const user = "\xe9lodie" // one char per byte, as backups.db and the protocol hold user ids
    const conf = storeConf(env, bucket, ["backup_objectstore_prefix: push8bit"])
    const a = makeServer("push-8bit-a", conf)
    const data = await Effect.runPromise(goldenBackup(path.join(a.partition, "a"), "elodie_os"))
    await a.record(user, data)
    const push = await runOurs("ctl_backups", ["-C", a.conf, "push", "-A"])
    expect(push.stderr).toBe("")
    expect(push.code).toBe(0)

    // a host whose partition is elsewhere: the file gets a new name from the user id (createDataFile)
    const b = makeServer("push-8bit-b", conf)
    const pull = await runOurs("ctl_backups", ["-C", b.conf, "pull", "-A"])
    expect(pull.stderr).toBe("")
    expect(pull.code).toBe(0)
    const found = await Effect.runPromise(
      Effect.flatMap(BackupsDb, (db) => db.list).pipe(Effect.provide(BackupsDb.layer({ path: b.dbPath }).pipe(Layer.provide(Partitions.layer(new Map())))))
    )
    expect(found.map((l) => Buffer.from(l.userid, "latin1").toString("hex"))).toEqual([Buffer.from(user, "latin1").toString("hex")])
    const rebuilt = found[0]!.dataPath
    expect(path.basename(rebuilt).startsWith(`${user}_`)).toBe(true)
    // the path is opened as the store opens every data file path (backupd's next session finds it there)
    expect(sha1File(rebuilt)).toBe(sha1File(data))
    const q = "SELECT id, offset, length, file_sha1, data_sha1 FROM chunk ORDER BY id"
    expect(tableRows(`${rebuilt}.index`, q)).toEqual(tableRows(`${data}.index`, q))
    // only the file and its index in the user's directory: the name createDataFile reserved is not left behind
    expect(fs.readdirSync(path.dirname(rebuilt)).length).toBe(2)
    const listed = await runOurs("ctl_backups", ["-C", b.conf, "list", "-j", "-A"])
    expect(listed.code).toBe(0)
    expect(json(listed.stdout)[0]).toMatchObject({ pending_chunks: 0, pending_bytes: 0 })
    // and by name
    const again = await runOurs("ctl_backups", ["-C", b.conf, "pull", user])
    expect(again.stderr).toContain("already has a backup here")
    expect(again.code).toBe(0)
  })

  it("member digests: push names and sends each sealed member from what its writer recorded; a member that differs from them is refused and not uploaded", async () => {
    // what backupd's writers do with object storage on in the clear layout: a member over one
    // part (multipart) and one within it (a single PUT)
    const a = makeServer("push-digests", storeConf(env, bucket, ["backup_objectstore_prefix: digests1"]))
    const data = path.join(a.partition, "d", "dana")
    fs.mkdirSync(path.dirname(data), { recursive: true })
    const staged = path.join(a.dir, "staged")
    fs.writeFileSync(staged, Buffer.concat([Buffer.from("Subject: big\r\n\r\n"), randomBytes(MEMBER_PART_SIZE + 3 * 1024 * 1024)]))
    const body = fs.readFileSync(staged)
    const guid = createHash("sha1").update(body).digest("hex")
    const message = item("MESSAGE", list([{ _tag: "File", partition: "default", guid, size: body.length, path: staged, sha1: guid }]))
    const sub = item("SUB", kvlist([["USERID", atom("dana")], ["MBOXNAME", atom("user.dana")]]))
    for (const lines of [[message], [sub]]) {
      await Effect.runPromise(
        Effect.scoped(
          Effect.flatMap(openForAppend(data, { create: true, durable: false, memberDigests: { partSize: MEMBER_PART_SIZE } }), (w) => w.appendAll(lines, 1700000000))
        )
      )
    }
    await a.record("dana", data)
    const metas = chunkMetas(data)
    const file = fs.readFileSync(data)
    const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
    const digests = tableRows(`${data}.index`, "SELECT chunk_id, sha256, part_sha256 FROM backupd_member_digest ORDER BY chunk_id") as Array<{ chunk_id: number; sha256: string; part_sha256: string }>
    expect(digests.map((d) => [d.chunk_id, d.sha256, d.part_sha256.split(" ").filter((h) => h !== "").length])).toEqual(
      metas.map((m) => [m.id, sha256(file.subarray(m.offset, m.offset + m.size)), m.size > MEMBER_PART_SIZE ? 2 : 0])
    )

    // a copy whose recorded first part does not match the file (what a member changed on disk after its seal looks like)
    const b = makeServer("push-digests-bad", storeConf(env, bucket, ["backup_objectstore_prefix: digests2"]))
    const copy = path.join(b.partition, "d", "dana")
    fs.mkdirSync(path.dirname(copy), { recursive: true })
    fs.copyFileSync(data, copy)
    fs.copyFileSync(`${data}.index`, `${copy}.index`)
    await b.record("dana", copy)
    const wrong = [sha256(Buffer.from("not this part")), ...digests[0]!.part_sha256.split(" ").slice(1)].join(" ")
    execFileSync("sqlite3", [`${copy}.index`, `UPDATE backupd_member_digest SET part_sha256 = '${wrong}' WHERE chunk_id = ${digests[0]!.chunk_id};`])
    const bad = await runOurs("ctl_backups", ["-C", b.conf, "push", "-A"])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toContain(`chunk ${digests[0]!.chunk_id} is not the member written at its seal`)
    const pending = await runOurs("ctl_backups", ["-C", b.conf, "list", "-j", "dana"])
    expect(json(pending.stdout)[0]).toMatchObject({ pending_chunks: 2, pending_bytes: file.length })

    // the true digests: uploaded under the names they give, and the store's copies check out in full
    const push = await runOurs("ctl_backups", ["-C", a.conf, "push", "-j", "-A"])
    expect(push.stderr).toBe("")
    expect(json(push.stdout)[0]).toMatchObject({ userid: "dana", uploaded_chunks: 2, uploaded_bytes: file.length, pending_chunks: 0 })
    expect(tableRows(`${data}.index`, "SELECT object FROM backupd_object ORDER BY chunk_id")).toEqual(digests.map((d) => ({ object: `users/dana/chunks/${d.sha256}.gz` })))
    const full = await runOurs("ctl_backups", ["-C", a.conf, "verify", "-O", "-F", "dana"])
    expect(full.stdout).toBe("dana\tfull\tchecked 2\tbad 0\tpending 0\tok\n")
  })

  it("feature off: push says so and exits 0; wrong credentials: 77 naming the endpoint; missing bucket: 78", async () => {
    const off = makeServer("push-off")
    const r = await runOurs("ctl_backups", ["-C", off.conf, "push", "-A"])
    expect(r).toMatchObject({ code: 0, stdout: "" })
    expect(r.stderr).toContain("object storage is off")

    const wrong = makeServer("push-wrong", [
      `backup_objectstore_endpoint: ${env.endpoint}`,
      `backup_objectstore_bucket: ${bucket}`,
      `backup_objectstore_credentials: ${credentialsFile(env, "0".repeat(40))}`
    ])
    const w = await runOurs("ctl_backups", ["-C", wrong.conf, "push", "-A"])
    expect(w.code).toBe(77)
    expect(w.stderr).toContain(env.endpoint)
    expect(w.stderr).toContain("backup_objectstore_credentials")

    const missing = makeServer("push-missing", storeConf(env, "no-such-bucket-here"))
    const m = await runOurs("ctl_backups", ["-C", missing.conf, "push", "-A"])
    expect(m.code).toBe(78)
    expect(m.stderr).toContain("no-such-bucket-here")
  })

  it("compaction: unchanged leading chunks keep their objects, the rest are dropped; Object Lock refuses their deletion, reported and kept", async () => {
    const locked = await createBucket(env, "os-pushlock", { objectLock: true })
    try {
      const s = makeServer("push-compact", [
        ...storeConf(env, locked, ["backup_objectstore_prefix: c1", "backup_objectstore_lock_days: 1"]),
        "backup_retention: 1s"
      ])
      const data = await Effect.runPromise(goldenBackup(path.join(s.partition, "a"), "carol_os"))
      await s.record("carol", data)
      const push = await runOurs("ctl_backups", ["-C", s.conf, "push", "-j", "carol"])
      expect(push.code, push.stderr).toBe(0)
      const members = () => {
        const bytes = fs.readFileSync(data)
        return chunkMetas(data).map((m) => createHash("sha256").update(bytes.subarray(m.offset, m.offset + m.size)).digest("hex"))
      }
      const before = members()
      const compact = await runOurs("ctl_backups", ["-C", s.conf, "-F", "compact", "carol"])
      expect(compact.code, compact.stderr).toBe(0)
      const after = members()
      // the chunks compaction wrote carry their writer's digests (clear layout); the leading ones it kept byte for byte have none
      const lead = after.findIndex((h, i) => h !== before[i])
      const rewritten = after.slice(lead < 0 ? after.length : lead)
      expect(rewritten.length).toBeGreaterThan(0)
      expect(tableRows(`${data}.index`, "SELECT sha256 FROM backupd_member_digest ORDER BY chunk_id").map((r) => r.sha256)).toEqual(rewritten)
      // members compaction kept byte for byte are the same objects; the others are dropped
      const sameLead = before.filter((h) => after.includes(h)).length
      expect(after.length).toBeGreaterThan(0)
      const listed = await runOurs("ctl_backups", ["-C", s.conf, "list", "-j", "carol"])
      expect(json(listed.stdout)[0]).toMatchObject({ pending_chunks: 0, pending_bytes: 0 })
      const v = await runOurs("ctl_backups", ["-C", s.conf, "verify", "-O", "carol"])
      expect(v.stdout).toBe(`carol\tquick\tchecked ${after.length}\tbad 0\tpending 0\tok\n`)
      // past backup_retention the dropped objects are due, but the store's lock refuses
      await new Promise((r) => setTimeout(r, 1500))
      const later = await runOurs("ctl_backups", ["-C", s.conf, "push", "-j", "carol"])
      expect(later.code, later.stderr).toBe(0)
      const dropped = before.length - sameLead
      console.log(`compaction: ${before.length} chunks before, ${after.length} after, ${sameLead} kept byte for byte, ${dropped} objects dropped`)
      expect(dropped).toBeGreaterThan(0)
      // the dropped chunk objects, and the first manifest (superseded, past retention) too
      expect(json(later.stdout)[0]).toMatchObject({ kept_locked: dropped + 1, deleted_objects: 0 })
      expect(later.stderr.match(/kept users\/carol\/chunks\/[0-9a-f]{64}\.gz: .*Object Lock until/g)).toHaveLength(dropped)
      expect(later.stderr.match(/kept users\/carol\/manifests\/\d{16}-f\.json: .*Object Lock until/g)).toHaveLength(1)
      // still remembered: the next push reports them again
      const again = await runOurs("ctl_backups", ["-C", s.conf, "push", "-j", "carol"])
      expect(json(again.stdout)[0]).toMatchObject({ kept_locked: dropped + 1 })
    } finally {
      await removeBucket(env, locked).catch(() => undefined)
    }
  })
})
