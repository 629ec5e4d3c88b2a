/**
 * A radosgw killed (SIGKILL) in the middle of a multipart upload and started again: while it
 * is down no object exists under the key (a partial upload is never taken for complete), the
 * library's retry schedule carries the upload through once the gateway is back, and the
 * multipart upload the kill left behind is found and aborted afterwards.
 *
 * The gateway killed is a second radosgw of the shared cluster (scripts/ceph.sh gateway), so
 * other test files using the run's main gateway are not disturbed.
 */
import fs from "node:fs"
import path from "node:path"
import { HeadObjectCommand, ListMultipartUploadsCommand } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Stream } from "effect"
import { afterAll, beforeAll } from "vitest"
import { makeObjectStore } from "../../src/objectstore/ObjectStore.js"
import { cephContext, createBucket, killGateway, rawClient, removeBucket, startCeph, startGateway, storeSettings, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { bigMember, tempDir } from "./support.js"

const ceph = cephContext()
warnIfNoCeph("object store fault suite")

const FAULT_PORT = ceph.port + 1

describe.skipIf(ceph.skip !== undefined)("radosgw killed during a multipart upload", () => {
  let env: S3Env
  let bucket: string
  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-fault")
  })
  afterAll(async () => {
    if (env === undefined) return
    killGateway("fault")
    if (bucket !== undefined) await removeBucket(env, bucket)
  })

  it.live("no partial object while it is down; the retry completes after the restart; the leftover upload is aborted", () =>
    Effect.gen(function*() {
      const endpoint = startGateway("fault", FAULT_PORT)
      const file = path.join(tempDir("os-fault"), "member.gz")
      const meta = yield* Effect.promise(() => bigMember(file, 48 << 20))
      const store = makeObjectStore(storeSettings(env, bucket, { endpoint }), {
        partSize: 5 << 20,
        queueSize: 1,
        retry: { base: "300 millis", maxDelay: "2 seconds", retries: 20 },
        connectionTimeoutMs: 1000
      })
      yield* store.status
      const s3 = rawClient(env) // through the main gateway, which stays up
      const uploads = () => Effect.promise(() => s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).pipe(Effect.map((u) => u.Uploads ?? []))

      const fiber = yield* Effect.fork(store.uploadChunk("erin", { path: file }, meta))
      // wait until the multipart upload has begun, then kill the gateway under it
      yield* Effect.gen(function*() {
        for (let i = 0; i < 400; i++) {
          if ((yield* uploads()).length > 0) return
          yield* Effect.sleep("20 millis")
        }
        throw new Error("no multipart upload was ever seen")
      })
      const key = (yield* uploads())[0]!.Key!
      killGateway("fault")

      const head = Effect.promise(() =>
        s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
          (h) => `present, ${h.ContentLength} bytes`,
          (e: { $metadata?: { httpStatusCode?: number } }) => `absent (${e.$metadata?.httpStatusCode})`
        )
      )
      expect(yield* head).toBe("absent (404)")
      yield* Effect.sleep("1500 millis")
      expect(fiber.unsafePoll()).toBeNull() // still retrying, not failed
      expect(yield* head).toBe("absent (404)")

      startGateway("fault", FAULT_PORT)
      const up = yield* Fiber.join(fiber).pipe(Effect.timeout(Duration.seconds(90)))
      expect(up.reused).toBe(false)
      expect(up.entry.stored).toBe(meta.size)
      expect(up.entry.etag).toMatch(/-10"$/)
      expect(yield* head).toBe(`present, ${meta.size} bytes`)
      const back = Buffer.concat([...(yield* Stream.runCollect(store.downloadChunk(up.entry)))])
      expect(back.equals(fs.readFileSync(file))).toBe(true)

      // the killed attempt's multipart upload could not be aborted while the gateway was down
      const left = yield* uploads()
      expect(left.length).toBeGreaterThanOrEqual(1)
      expect(yield* store.abortIncompleteUploads(0)).toBe(left.length)
      expect(yield* uploads()).toEqual([])
      s3.destroy()
    }))
})
