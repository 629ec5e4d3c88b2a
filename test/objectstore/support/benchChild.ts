/**
 * Child process of bench.test.ts (bundled, run with --expose-gc): uploads and downloads one
 * large member through the library, clear and encrypted, sampling this process's RSS every
 * 5 ms, then moves the same bytes with plain SDK calls (one PutObject of the whole buffer,
 * one streamed GetObject) for the store's own speed. Prints one JSON object.
 */
import fs from "node:fs"
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { Effect, Stream } from "effect"
import type { ChunkEntry } from "../../../src/objectstore/Manifest.js"
import { makeObjectStore } from "../../../src/objectstore/ObjectStore.js"
import type { ObjectStoreSettings } from "../../../src/objectstore/settings.js"
import type { ChunkMeta } from "../../../src/objectstore/source.js"

interface Args {
  readonly clear: ObjectStoreSettings
  readonly encrypted: ObjectStoreSettings
  readonly reader: ObjectStoreSettings
  readonly file: string
  readonly meta: ChunkMeta
  readonly warmFile: string
  readonly warmMeta: ChunkMeta
  readonly s3: { readonly endpoint: string; readonly accessKeyId: string; readonly secretAccessKey: string; readonly region: string; readonly bucket: string }
}

const args = JSON.parse(process.argv[2]!) as Args
const MB = 1 << 20
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined)

interface Figure {
  readonly seconds: number
  readonly mbPerSecond: number
  readonly rssBaselineMb: number
  readonly rssPeakMb: number
  readonly rssGrowthMb: number
  /** With `collectEveryMs`: peak of V8 heap used + external (Buffers) just after each GC, over the baseline. */
  readonly liveGrowthMb?: number
}

/**
 * Runs one step, sampling RSS every 5 ms. With `collectEveryMs`, a full GC runs that often as
 * well and the heap and external memory in use right after it are sampled: the memory the step
 * keeps alive (`liveGrowthMb`), apart from what V8 has not collected yet (freed ArrayBuffers are
 * only reclaimed once external memory has grown by V8's soft limit, 64 MB, since the last full
 * GC, whatever the code does with its own buffers). RSS itself does not shrink after a GC, so
 * only the live figure says what the step holds.
 */
const measure = async (bytes: number, run: () => Promise<unknown>, collectEveryMs?: number): Promise<Figure> => {
  // two full GCs apart: V8 frees ArrayBuffers' memory concurrently, after the GC that found them dead
  gc()
  await new Promise((resolve) => setTimeout(resolve, 50))
  gc()
  const base = process.memoryUsage.rss()
  const inUse = () => {
    const m = process.memoryUsage()
    return m.heapUsed + m.external
  }
  const liveBase = inUse()
  let livePeak = liveBase
  let peak = base
  let last = performance.now()
  let collected = false
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
    // read one tick after the GC, once the freed buffers' memory has been released
    if (collected) {
      livePeak = Math.max(livePeak, inUse())
      collected = false
    }
    if (collectEveryMs !== undefined && performance.now() - last >= collectEveryMs) {
      gc()
      collected = true
      last = performance.now()
    }
  }, 5)
  const t0 = performance.now()
  await run()
  const seconds = (performance.now() - t0) / 1000
  clearInterval(timer)
  peak = Math.max(peak, process.memoryUsage.rss())
  const r = (n: number) => Math.round(n * 10) / 10
  return {
    seconds: Math.round(seconds * 100) / 100, mbPerSecond: r(bytes / MB / seconds), rssBaselineMb: r(base / MB), rssPeakMb: r(peak / MB), rssGrowthMb: r((peak - base) / MB),
    ...(collectEveryMs === undefined ? {} : { liveGrowthMb: r((livePeak - liveBase) / MB) })
  }
}

const main = async () => {
  const out: Record<string, unknown> = { bytes: args.meta.size }
  for (const [name, settings, reader] of [
    ["clear", args.clear, args.clear],
    ["encrypted", args.encrypted, args.reader]
  ] as const) {
    const options = { partSize: Number(process.env.CYB_PART_MB ?? "8") * MB, queueSize: Number(process.env.CYB_QUEUE ?? "2") }
    const store = makeObjectStore(settings, options)
    const readStore = makeObjectStore(reader, options)
    // warm up: SDK and age imported, connections open, code paths compiled
    await Effect.runPromise(store.uploadChunk("warm", { path: args.warmFile }, args.warmMeta))
    let entry: ChunkEntry | undefined
    out[`${name}Upload`] = await measure(args.meta.size, async () => {
      entry = (await Effect.runPromise(store.uploadChunk("bench", { path: args.file }, args.meta))).entry
    })
    out[`${name}Download`] = await measure(args.meta.size, () =>
      Effect.runPromise(Stream.runForEach(readStore.downloadChunk(entry!), () => Effect.void))
    )
    // the same upload again under another user (so the object is new), collecting every 50 ms:
    // what the upload itself keeps alive
    out[`${name}UploadKept`] = await measure(args.meta.size, async () => {
      await Effect.runPromise(store.uploadChunk("bench-kept", { path: args.file }, args.meta))
    }, 50)
  }

  const s3 = new S3Client({
    endpoint: args.s3.endpoint,
    region: args.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: args.s3.accessKeyId, secretAccessKey: args.s3.secretAccessKey },
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })
  const body = fs.readFileSync(args.file)
  await s3.send(new PutObjectCommand({ Bucket: args.s3.bucket, Key: "plain/warm", Body: body.subarray(0, MB) }))
  out.plainPut = await measure(body.length, () => s3.send(new PutObjectCommand({ Bucket: args.s3.bucket, Key: "plain/object", Body: body })))
  out.plainGet = await measure(body.length, async () => {
    const o = await s3.send(new GetObjectCommand({ Bucket: args.s3.bucket, Key: "plain/object" }))
    for await (const _ of o.Body as AsyncIterable<Uint8Array>) void _
  })
  s3.destroy()
  process.stdout.write(JSON.stringify(out) + "\n")
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
