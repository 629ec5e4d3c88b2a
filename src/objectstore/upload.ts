/**
 * Putting one object whose size is known in advance, from a source that fills buffers, with
 * memory fixed by the part size: at most `buffers` (default `queueSize + 1`) part buffers
 * exist, allocated once and reused (one being filled, `queueSize` being sent). Objects up to one part go in a
 * single PutObject; larger ones in a multipart upload whose parts are sent `queueSize` at a
 * time and which is aborted (best effort) if anything fails or the fiber is interrupted.
 * Every request body goes with one checksum the store verifies (s3.ts): the signed payload
 * SHA-256 when the caller gives the bodies' hashes (`bodySha256`, clear layout), else
 * Content-MD5, which the client's middleware adds to a buffer body (and the SDK signs its own
 * SHA-256). With the hashes known and a `range` reader, no buffer is filled at all: each body is
 * a stream of its byte range, read as it is sent (`putStreamed`), so parts in flight cost only
 * the streams' read-ahead.
 *
 * Why not `@aws-sdk/lib-storage`'s Upload: for a stream body it concatenates incoming blocks
 * into a fresh buffer per part and keeps a slice of the previous one alive; moving a 100 MB
 * chunk allocated about twice its size, and the garbage (collected only under V8's external
 * memory pressure) lifted the process RSS by 60–120 MB. Reused buffers keep it near
 * `(queueSize + 1) × partSize` (figures in docs/benchmarks.md).
 */
import type { Readable } from "node:stream"
import type * as S3 from "@aws-sdk/client-s3"
import { Effect, Exit, Option, Queue, Stream } from "effect"
import type { ObjectStoreError } from "./errors.js"
import { request, type RequestContext } from "./s3.js"

/** Fills `buf` from the current position; resolves with the bytes put in (fewer only at the end). */
export type Filler = (buf: Buffer) => Promise<number>

/**
 * A fresh stream of `length` source bytes from `offset` (offsets relative to the object's first
 * byte). It must fail (emit `error`) if the source ends early: the request is then aborted.
 */
export type RangeReader = (offset: number, length: number) => Readable

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
  /** Where the bytes come from when they go through part buffers (always, without `bodySha256`). */
  readonly fill: Filler
  /**
   * With `bodySha256`: each body is sent as a stream of its byte range instead, read as it is
   * sent, so no part buffer exists and parts in flight cost only the streams' read-ahead. The
   * store's check of the signed SHA-256 is what proves the bytes are the ones hashed.
   */
  readonly range?: RangeReader
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

/**
 * One request whose body is a stream: the stream failing (a short source) aborts the request
 * and fails it with the stream's error, instead of leaving the store waiting for the rest.
 */
const sendStreamed = <A>(signal: AbortSignal, body: Readable, send: (body: Readable, signal: AbortSignal) => Promise<A>): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const ac = new AbortController()
    const onAbort = () => ac.abort(signal.reason)
    if (signal.aborted) onAbort()
    else signal.addEventListener("abort", onAbort, { once: true })
    body.once("error", (e) => {
      reject(e)
      ac.abort(e)
    })
    send(body, ac.signal).then(resolve, reject).finally(() => {
      signal.removeEventListener("abort", onAbort)
      body.destroy()
    })
  })

/** The clear layout's path: every body a stream of its range, signed with its known SHA-256. */
const putStreamed = (
  o: PutObjectOptions,
  range: RangeReader,
  hashOf: (partNumber: number) => string,
  ctx: (operation: string) => RequestContext
): Effect.Effect<void, ObjectStoreError> => {
  const { sdk, client, params, size } = o
  if (size <= o.partSize) {
    return request(ctx("PutObject"), (signal) =>
      sendStreamed(signal, range(0, size), (Body, abortSignal) =>
        client.send(withPayloadHash(new sdk.PutObjectCommand({ ...params, Body, ContentLength: size, IfNoneMatch: "*" }), hashOf(1)), { abortSignal })
      )
    ).pipe(Effect.asVoid)
  }
  const parts = Math.ceil(size / o.partSize)
  return multipart(o, ctx, (uploadId) =>
    Effect.forEach(
      Array.from({ length: parts }, (_, i) => i + 1),
      (number) => {
        const offset = (number - 1) * o.partSize
        const length = Math.min(o.partSize, size - offset)
        return request(ctx("UploadPart"), (signal) =>
          sendStreamed(signal, range(offset, length), (Body, abortSignal) =>
            client.send(
              withPayloadHash(
                new sdk.UploadPartCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId, PartNumber: number, Body, ContentLength: length }),
                hashOf(number)
              ),
              { abortSignal }
            )
          )
        ).pipe(Effect.map((r) => ({ PartNumber: number, ETag: r.ETag })))
      },
      { concurrency: o.queueSize }
    )
  )
}

/** Creates the object (If-None-Match: *) or fails; the object exists only once this succeeds. */
export const putObjectFromSource = (o: PutObjectOptions): Effect.Effect<void, ObjectStoreError> => {
  const { sdk, client, params, size, fill } = o
  const ctx = (operation: string): RequestContext => ({ ...o.context, operation, key: params.Key })
  const range = o.range
  const hashOf = o.bodySha256
  if (range !== undefined && hashOf !== undefined) return putStreamed(o, range, hashOf, ctx)
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
  return multipart(o, ctx, (uploadId) =>
    Effect.gen(function*() {
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
      return etags
    })
  )
}

interface CompletedPart {
  readonly PartNumber: number
  readonly ETag: string | undefined
}

/**
 * A multipart upload around `sendParts`: created, completed with If-None-Match once every part
 * is confirmed, aborted (best effort) on any failure or interruption.
 */
const multipart = (
  o: PutObjectOptions,
  ctx: (operation: string) => RequestContext,
  sendParts: (uploadId: string) => Effect.Effect<Iterable<CompletedPart>, ObjectStoreError>
): Effect.Effect<void, ObjectStoreError> => {
  const { sdk, client, params } = o
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
      const etags = yield* sendParts(uploadId)
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
