/**
 * Putting one object whose size is known in advance, from a source that fills buffers, with
 * memory fixed by the part size: at most `buffers` (default `queueSize + 1`) part buffers
 * exist, allocated once and reused (one being filled, `queueSize` being sent). Objects up to one part go in a
 * single PutObject; larger ones in a multipart upload whose parts are sent `queueSize` at a
 * time and which is aborted (best effort) if anything fails or the fiber is interrupted.
 * Every request body is a buffer and goes with one checksum the store verifies (s3.ts): the
 * signed payload SHA-256 when the caller gives the bodies' hashes (`bodySha256`, clear layout),
 * else Content-MD5, which the client's middleware adds (and the SDK signs its own SHA-256).
 *
 * Why not `@aws-sdk/lib-storage`'s Upload: for a stream body it concatenates incoming blocks
 * into a fresh buffer per part and keeps a slice of the previous one alive; moving a 100 MB
 * chunk allocated about twice its size, and the garbage (collected only under V8's external
 * memory pressure) lifted the process RSS by 60–120 MB. Reused buffers keep it near
 * `(queueSize + 1) × partSize` (figures in docs/benchmarks.md).
 */
import type * as S3 from "@aws-sdk/client-s3"
import { Effect, Exit, Option, Queue, Stream } from "effect"
import type { ObjectStoreError } from "./errors.js"
import { request, type RequestContext } from "./s3.js"

/** Fills `buf` from the current position; resolves with the bytes put in (fewer only at the end). */
export type Filler = (buf: Buffer) => Promise<number>

/** A filler reading a web stream (the age ciphertext): blocks are copied into the part buffers. */
export const streamFiller = (stream: ReadableStream<Uint8Array>): Filler => {
  const reader = stream.getReader()
  let rest: Uint8Array | undefined
  let ended = false
  return async (buf) => {
    let n = 0
    while (n < buf.length) {
      if (rest === undefined || rest.byteLength === 0) {
        if (ended) break
        const r = await reader.read()
        if (r.done) {
          ended = true
          break
        }
        rest = r.value
      }
      const take = Math.min(rest.byteLength, buf.length - n)
      buf.set(rest.subarray(0, take), n)
      rest = rest.subarray(take)
      n += take
    }
    return n
  }
}

export interface PutParams {
  readonly Bucket: string
  readonly Key: string
  readonly ContentType: string
  readonly Metadata: Record<string, string>
  readonly ObjectLockMode?: "GOVERNANCE" | "COMPLIANCE"
  readonly ObjectLockRetainUntilDate?: Date
}

export interface PutObjectOptions {
  readonly sdk: typeof S3
  readonly client: S3.S3Client
  readonly context: Omit<RequestContext, "operation" | "key">
  readonly params: PutParams
  readonly size: number
  readonly fill: Filler
  readonly partSize: number
  readonly queueSize: number
  /** Part buffers allocated (≥ queueSize); default queueSize + 1, one being filled while the others are sent. */
  readonly buffers?: number
  /**
   * The SHA-256 (hex) of each request body, computed earlier (part number → hash; 1 for a
   * single PutObject): sent as `x-amz-content-sha256`, which SigV4 signs and the store checks
   * against the body it receives (400 XAmzContentSHA256Mismatch otherwise), so the SDK does not
   * hash the body again, and the client adds no Content-MD5 (s3.ts). Absent: Content-MD5, and
   * the SDK hashes each body as it signs it.
   */
  readonly bodySha256?: (partNumber: number) => string
}

/** A command carrying a precomputed payload hash for SigV4 (see `bodySha256`). */
const withPayloadHash = <C extends S3.PutObjectCommand | S3.UploadPartCommand>(command: C, sha256: string | undefined): C => {
  if (sha256 !== undefined) {
    ;(command.middlewareStack as S3.PutObjectCommand["middlewareStack"]).add(
      (next) => (args) => {
        const req = args.request as { headers?: Record<string, string> }
        if (req.headers !== undefined) req.headers["x-amz-content-sha256"] = sha256
        return next(args)
      },
      // high: before the client's Content-MD5 middleware (build, low), which then sees the hash
      { step: "build", priority: "high", name: "cyrusBackupdPayloadSha256" }
    )
  }
  return command
}

const short = (key: string, got: number, size: number) =>
  new Error(`the source of ${key} gave ${got} bytes, ${size} were announced`)

/** Creates the object (If-None-Match: *) or fails; the object exists only once this succeeds. */
export const putObjectFromSource = (o: PutObjectOptions): Effect.Effect<void, ObjectStoreError> => {
  const { sdk, client, params, size, fill } = o
  const ctx = (operation: string): RequestContext => ({ ...o.context, operation, key: params.Key })
  const fillAll = (buf: Buffer) =>
    request(ctx("ReadSource"), async () => {
      const n = await fill(buf)
      if (n !== buf.length) throw short(params.Key, n, size)
      return n
    })

  // the source must be exhausted exactly at `size` (this last read is also where a file
  // source re-checks its hash: a changed chunk fails here, before anything is committed)
  const atEnd = Effect.flatMap(request(ctx("ReadSource"), () => fill(Buffer.allocUnsafe(1))), (extra) =>
    extra === 0 ? Effect.void : request(ctx("ReadSource"), () => Promise.reject(short(params.Key, size + extra, size)))
  )

  if (size <= o.partSize) {
    return Effect.gen(function*() {
      const body = Buffer.allocUnsafe(size)
      yield* fillAll(body)
      yield* atEnd
      yield* request(ctx("PutObject"), (abortSignal) =>
        client.send(withPayloadHash(new sdk.PutObjectCommand({ ...params, Body: body, ContentLength: size, IfNoneMatch: "*" }), o.bodySha256?.(1)), { abortSignal })
      )
    })
  }

  const parts = Math.ceil(size / o.partSize)
  return Effect.gen(function*() {
    const created = yield* request(ctx("CreateMultipartUpload"), (abortSignal) =>
      client.send(new sdk.CreateMultipartUploadCommand(params), { abortSignal })
    )
    const uploadId = created.UploadId
    if (uploadId === undefined) return yield* Effect.die(new Error("CreateMultipartUpload returned no UploadId"))
    const abort = request(ctx("AbortMultipartUpload"), (abortSignal) =>
      client.send(new sdk.AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId }), { abortSignal })
    ).pipe(Effect.timeout("10 seconds"), Effect.ignore)

    const send = Effect.gen(function*() {
      const buffers = Math.max(o.queueSize, o.buffers ?? o.queueSize + 1)
      const pool = yield* Queue.bounded<Buffer>(buffers)
      for (let i = 0; i < buffers && i < parts; i++) yield* Queue.offer(pool, Buffer.allocUnsafe(o.partSize))
      let next = 1
      interface Part {
        readonly number: number
        readonly buf: Buffer
        readonly length: number
      }
      // the next part, read into a pooled buffer (waiting for one to come back); None = done
      const produce: Effect.Effect<Part, Option.Option<ObjectStoreError>> = Effect.suspend(() => {
        if (next > parts) return Effect.fail(Option.none())
        const number = next++
        const length = number < parts ? o.partSize : size - (parts - 1) * o.partSize
        return Effect.flatMap(Queue.take(pool), (buf) =>
          fillAll(buf.subarray(0, length)).pipe(
            Effect.onError(() => Queue.offer(pool, buf)),
            Effect.mapBoth({ onFailure: Option.some, onSuccess: () => ({ number, buf, length }) })
          )
        )
      })
      const etags = yield* Stream.repeatEffectOption(produce).pipe(
        Stream.mapEffect(
          (p) =>
            request(ctx("UploadPart"), (abortSignal) =>
              client.send(
                withPayloadHash(
                  new sdk.UploadPartCommand({
                    Bucket: params.Bucket,
                    Key: params.Key,
                    UploadId: uploadId,
                    PartNumber: p.number,
                    Body: p.buf.subarray(0, p.length),
                    ContentLength: p.length
                  }),
                  o.bodySha256?.(p.number)
                ),
                { abortSignal }
              )
            ).pipe(
              Effect.map((r) => ({ PartNumber: p.number, ETag: r.ETag })),
              Effect.ensuring(Queue.offer(pool, p.buf))
            ),
          { concurrency: o.queueSize }
        ),
        Stream.runCollect
      )
      yield* atEnd
      yield* request(ctx("CompleteMultipartUpload"), (abortSignal) =>
        client.send(
          new sdk.CompleteMultipartUploadCommand({
            Bucket: params.Bucket,
            Key: params.Key,
            UploadId: uploadId,
            IfNoneMatch: "*",
            MultipartUpload: { Parts: [...etags].sort((a, b) => a.PartNumber - b.PartNumber) }
          }),
          { abortSignal }
        )
      )
    })
    yield* Effect.onExit(send, (exit) => (Exit.isSuccess(exit) ? Effect.void : abort))
  })
}
