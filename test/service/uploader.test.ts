/**
 * backupd's background upload (src/service/Uploader.ts) against a real Ceph: closing a backup
 * queues its upload; a session that opens the same backup while it is being uploaded gets it
 * (no "mailbox locked"), and keeps its lock through the upload — the uploader's read-only
 * descriptor is not closed while the lock is held (checked from another process with
 * fcntl); what the session adds is uploaded after it closes; finish() waits for the queue.
 */
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Scope } from "effect"
import { afterAll, beforeAll } from "vitest"
import { Config } from "../../src/config/index.js"
import { pendingUploads } from "../../src/objectstore/index.js"
import { item, list, type File } from "../../src/protocol/dlist/value.js"
import { openForAppend, type UserBackupsShape } from "../../src/store/index.js"
import { startUploader } from "../../src/service/Uploader.js"
import type { ServiceLog } from "../../src/telemetry/ServiceLog.js"
import { cephContext, createBucket, credentialsFile, removeBucket, startCeph, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { tempDir } from "../support/cyrus.js"

const ceph = cephContext()
warnIfNoCeph("backupd uploader suite")

const stage = (dir: string, bytes: number): File => {
  const body = Buffer.concat([Buffer.from("Subject: x\r\n\r\n"), randomBytes(bytes)])
  const guid = createHash("sha1").update(body).digest("hex")
  const p = path.join(dir, guid)
  fs.writeFileSync(p, body)
  return { _tag: "File", partition: "default", guid, size: body.length, path: p, sha1: guid }
}

/** Whether another process can take a write lock on the file now (fcntl, as Cyrus's tools do). */
const lockableElsewhere = (file: string): boolean => {
  const out = execFileSync("python3", [
    "-c",
    "import fcntl,sys\nf=open(sys.argv[1],'r+')\ntry:\n  fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB); print('free')\nexcept OSError: print('held')",
    file
  ]).toString().trim()
  return out === "free"
}

/** Descriptors of this process open on `file`. */
const descriptorsOf = (file: string): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file
    } catch {
      return false
    }
  }).length

describe.skipIf(ceph.skip !== undefined)("backupd's background upload", () => {
  let env: S3Env
  let bucket: string
  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-uploader")
  })
  afterAll(async () => {
    if (env !== undefined && bucket !== undefined) await removeBucket(env, bucket)
  })

  it.live("a session reopening the backup during its upload gets it and keeps its lock; what it adds goes up after", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-uploader")
      const conf = path.join(dir, "imapd.conf")
      fs.writeFileSync(
        conf,
        [
          `configdirectory: ${dir}`,
          `backuppartition-default: ${dir}`,
          `backup_objectstore_endpoint: ${env.endpoint}`,
          `backup_objectstore_bucket: ${bucket}`,
          `backup_objectstore_credentials: ${credentialsFile(env)}`,
          ""
        ].join("\n")
      )
      const config = yield* Config.load({ path: conf, service: "backupd" }).pipe(Effect.provide(NodeFileSystem.layer))
      const data = path.join(dir, "dora_abc")
      const inner: UserBackupsShape = { open: () => Effect.map(openForAppend(data, { create: true, durable: false }), Option.some) }
      const lines: Array<string> = []
      const log: ServiceLog = { write: (_, l) => lines.push(l), error: (l) => lines.push(l), warning: (l) => lines.push(l), notice: (l) => lines.push(l), info: (l) => lines.push(l), debug: () => {} }
      const up = yield* startUploader(config, inner, log)
      const session = (bytes: number) =>
        Effect.scoped(
          Effect.gen(function*() {
            const w = yield* Effect.flatMap(up.backups.open("dora", { create: true }), Effect.orDieWith(() => "no backup"))
            yield* w.append(item("MESSAGE", list([stage(dir, bytes)])))
          })
        )
      // first session: a chunk big enough that its upload takes a while
      yield* session(24 << 20)
      expect(up.busy()).toBe(1)
      // the uploader has started when it has a descriptor of the data file (locked or read-only)
      for (let i = 0; i < 400 && descriptorsOf(data) === 0; i++) yield* Effect.sleep("5 millis")
      expect(descriptorsOf(data), "the upload started").toBeGreaterThan(0)
      // a second session opens it while the upload runs (or waits out its short lock window), and holds it
      const scope = yield* Scope.make()
      const w = yield* Effect.flatMap(Scope.extend(up.backups.open("dora", { create: true }), scope), Effect.orDieWith(() => "no backup"))
      yield* w.append(item("MESSAGE", list([stage(dir, 1000)])))
      // wait for the first upload to end (the record may wait for the session: then it is redone)
      for (let i = 0; i < 600 && !lines.some((l) => l.includes("object store: dora:")); i++) yield* Effect.sleep("50 millis")
      expect(lines.some((l) => l.includes("object store: dora:")), lines.join("\n")).toBe(true)
      expect(lockableElsewhere(data), "the session's lock survived the upload").toBe(false)
      yield* Scope.close(scope, Exit.void)
      yield* up.finish("60 seconds")
      expect(lockableElsewhere(data)).toBe(true)
      const pending = yield* pendingUploads(data)
      expect(pending).toMatchObject({ chunks: 0, bytes: 0, sealedChunks: 2 })
      expect(lines.filter((l) => l.includes("delayed"))).toEqual([])
    }), 120_000)

  it.live("an unreachable store: the session is not delayed, and finish() gives up within its bound, leaving the upload to push", () =>
    Effect.gen(function*() {
      const dir = tempDir("os-uploader-down")
      const conf = path.join(dir, "imapd.conf")
      fs.writeFileSync(
        conf,
        [
          `configdirectory: ${dir}`,
          `backuppartition-default: ${dir}`,
          "backup_objectstore_endpoint: http://127.0.0.1:9", // discard port: nothing listens
          `backup_objectstore_bucket: ${bucket}`,
          `backup_objectstore_credentials: ${credentialsFile(env)}`,
          ""
        ].join("\n")
      )
      const config = yield* Config.load({ path: conf, service: "backupd" }).pipe(Effect.provide(NodeFileSystem.layer))
      const data = path.join(dir, "erik_abc")
      const inner: UserBackupsShape = { open: () => Effect.map(openForAppend(data, { create: true, durable: false }), Option.some) }
      const lines: Array<string> = []
      const log: ServiceLog = { write: (_, l) => lines.push(l), error: (l) => lines.push(l), warning: (l) => lines.push(l), notice: (l) => lines.push(l), info: (l) => lines.push(l), debug: () => {} }
      const up = yield* startUploader(config, inner, log)
      const started = Date.now()
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* Effect.flatMap(up.backups.open("erik", { create: true }), Effect.orDieWith(() => "no backup"))
          yield* w.append(item("MESSAGE", list([stage(dir, 1000)])))
        })
      )
      const sessionMs = Date.now() - started
      yield* Effect.sleep("300 millis")
      expect(up.busy()).toBe(1) // retrying against the dead endpoint
      const t = Date.now()
      yield* up.finish("1 second")
      const finishMs = Date.now() - t
      expect(finishMs).toBeLessThan(5000)
      expect(lines.some((l) => l.includes("1 uploads left to ctl_backups push")), lines.join("\n")).toBe(true)
      expect((yield* pendingUploads(data)).chunks).toBe(1)
      console.log(`uploader, store unreachable: session ${sessionMs} ms, finish gave up after ${finishMs} ms`)
    }), 60_000)
})

