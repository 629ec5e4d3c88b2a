/**
 * Reading one sealed chunk (a gzip member) out of a data file, in bounded blocks.
 *
 * POSIX record locks belong to the process and are dropped when ANY descriptor of the file is
 * closed (docs/storage.md, "Locking"). A process that may hold a data file's lock (backupd,
 * the tools) must therefore pass the descriptor it locked (`{ fd }`) and never let us open the
 * path: closing our own descriptor would silently release its lock. `{ path }` opens and
 * closes a descriptor of its own and is only for processes that hold no lock on that file.
 */
import fs from "node:fs"
import { Readable } from "node:stream"
import { Effect } from "effect"
import { noteBufferBytes } from "../util/bufferPacer.js"
import type { MemberDigests } from "../store/index.js"
import { ObjectStoreSourceError } from "./errors.js"

export type ChunkSource = { readonly fd: number; readonly path?: string } | { readonly path: string; readonly fd?: undefined }

/** Where the member is and what the index says about it. */
export interface ChunkMeta {
  /** Chunk id in the index. */
  readonly id: number
  /** Offset of the member in the data file. */
  readonly offset: number
  /** Bytes of the member: next chunk's offset (or the sealed end of the file) minus `offset`. */
  readonly size: number
  /** The index row's `length`, `data_sha1`, `file_sha1`, `ts_start`, `ts_end`. */
  readonly length: number
  readonly dataSha1: string
  readonly fileSha1: string
  readonly tsStart: number
  readonly tsEnd: number
  /**
   * The member's SHA-256s as the writer recorded them at the seal (store's member digests),
   * when the index has them for exactly this member: an upload of the clear layout then needs
   * no pass over the file first.
   */
  readonly digests?: Pick<MemberDigests, "partSize" | "sha256" | "parts"> | undefined
}

const BLOCK = 1 << 20

/** Read size of a range stream: a request body's read-ahead is one such block. */
const RANGE_BLOCK = 256 * 1024

const label = (s: ChunkSource) => s.path ?? `fd ${s.fd}`

const sourceError = (s: ChunkSource, message: string) => new ObjectStoreSourceError({ path: label(s), message: `${label(s)}: ${message}` })

const readAt = (fd: number, buf: Buffer, length: number, position: number) =>
  new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))))

/** A descriptor for the source, closed at scope end only if we opened it. */
export const openSource = (s: ChunkSource) =>
  s.fd !== undefined
    ? Effect.succeed(s.fd)
    : Effect.acquireRelease(
        Effect.tryPromise({
          try: () => new Promise<number>((resolve, reject) => fs.open(s.path, "r", (err, fd) => (err ? reject(err) : resolve(fd)))),
          catch: (e) => sourceError(s, `cannot open: ${(e as Error).message}`)
        }),
        (fd) => Effect.sync(() => fs.closeSync(fd))
      )

/** Reads exactly `length` bytes at `position` (short file = error). */
export const readExactAt = (s: ChunkSource, fd: number, length: number, position: number) =>
  Effect.tryPromise({
    try: async () => {
      const buf = Buffer.alloc(length)
      let got = 0
      while (got < length) {
        const n = await readAt(fd, buf.subarray(got), length - got, position + got)
        if (n === 0) throw new Error(`file ends at ${position + got}, before ${position + length}`)
        got += n
      }
      return buf
    },
    catch: (e) => sourceError(s, `read failed: ${(e as Error).message}`)
  })

/**
 * Checks that [offset, offset+size) looks like one sealed member of `length` uncompressed
 * bytes: gzip magic at the start, the trailer's ISIZE (length mod 2^32) at the end. An open
 * (unsealed) chunk has no trailer and is refused: only sealed chunks are uploaded.
 */
export const checkSealedMember = (s: ChunkSource, fd: number, meta: ChunkMeta) =>
  Effect.gen(function*() {
    if (meta.size < 18) return yield* Effect.fail(sourceError(s, `chunk ${meta.id}: ${meta.size} bytes cannot be a gzip member`))
    const head = yield* readExactAt(s, fd, 3, meta.offset)
    if (head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 0x08) {
      return yield* Effect.fail(sourceError(s, `chunk ${meta.id}: no gzip member at offset ${meta.offset}`))
    }
    const tail = yield* readExactAt(s, fd, 4, meta.offset + meta.size - 4)
    const isize = tail.readUInt32LE(0)
    if (isize !== meta.length % 2 ** 32) {
      return yield* Effect.fail(
        sourceError(s, `chunk ${meta.id}: member at ${meta.offset} (${meta.size} bytes) does not end in a trailer for ${meta.length} bytes: not sealed, or wrong size`)
      )
    }
  })

/** Feeds every block of the member to `onBlock` (one pass, one reused buffer). */
export const scanMember = (s: ChunkSource, fd: number, meta: ChunkMeta, onBlock: (b: Uint8Array) => void) =>
  Effect.tryPromise({
    try: async () => {
      const buf = Buffer.allocUnsafe(Math.min(BLOCK, meta.size))
      for (let done = 0; done < meta.size;) {
        const want = Math.min(buf.length, meta.size - done)
        const n = await readAt(fd, buf, want, meta.offset + done)
        if (n === 0) throw new Error(`file ends at ${meta.offset + done}, inside chunk ${meta.id}`)
        onBlock(buf.subarray(0, n))
        done += n
      }
    },
    catch: (e) => sourceError(s, `read failed: ${(e as Error).message}`)
  })

/**
 * The member as a filler for upload.ts: reads straight into the caller's part buffers.
 * `onBlock` sees every block; `atEnd` runs when more is asked for after the last byte, and
 * may throw to fail the upload before it commits.
 */
export const memberFiller = (fd: number, meta: ChunkMeta, onBlock: (b: Uint8Array) => void, atEnd: () => void) => {
  let done = 0
  let ended = false
  return async (buf: Buffer): Promise<number> => {
    let n = 0
    while (n < buf.length && done < meta.size) {
      const want = Math.min(buf.length - n, meta.size - done)
      const got = await readAt(fd, buf.subarray(n, n + want), want, meta.offset + done)
      if (got === 0) throw new Error(`file ends at ${meta.offset + done}, inside chunk ${meta.id}`)
      onBlock(buf.subarray(n, n + got))
      n += got
      done += got
    }
    if (n < buf.length && !ended) {
      ended = true
      atEnd()
    }
    return n
  }
}

/**
 * The member as a pull-based web stream (one block read per pull: back-pressure reaches the
 * file). `onBlock` sees every block; `atEnd` runs before the stream closes and may throw to
 * fail it — so a consumer that commits only after the end (an S3 upload) commits nothing.
 * Blocks of exactly the multipart part size let lib-storage send them without copying.
 */
export const memberStream = (
  fd: number,
  meta: ChunkMeta,
  onBlock: (b: Uint8Array) => void,
  atEnd: () => void,
  blockSize: number = BLOCK
): ReadableStream<Uint8Array> => {
  let done = 0
  return new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        if (done >= meta.size) {
          atEnd()
          controller.close()
          return
        }
        const want = Math.min(blockSize, meta.size - done)
        const buf = Buffer.allocUnsafe(want)
        let n = 0
        while (n < want) {
          const got = await readAt(fd, buf.subarray(n), want - n, meta.offset + done + n)
          if (got === 0) throw new Error(`file ends at ${meta.offset + done + n}, inside chunk ${meta.id}`)
          n += got
        }
        const block = buf
        onBlock(block)
        done += n
        controller.enqueue(block)
      }
    },
    { highWaterMark: 0 }
  )
}

/**
 * The member's bytes as streams of byte ranges (offsets within the member), for request bodies
 * sent as they are read (upload.ts, `RangeReader`). Each stream reads on demand, one block at a
 * time (back-pressure reaches the file), and fails if the file ends inside its range.
 */
export const memberRange = (fd: number, meta: ChunkMeta) => (offset: number, length: number): Readable => {
  let done = 0
  return new Readable({
    highWaterMark: RANGE_BLOCK,
    read() {
      if (done >= length) {
        this.push(null)
        return
      }
      const want = Math.min(RANGE_BLOCK, length - done)
      const buf = Buffer.allocUnsafe(want)
      const at = meta.offset + offset + done
      fs.read(fd, buf, 0, want, at, (err, n) => {
        if (err !== null) return this.destroy(err)
        if (n === 0) return this.destroy(new Error(`file ends at ${at}, inside chunk ${meta.id}`))
        done += n
        noteBufferBytes(n)
        this.push(n === want ? buf : buf.subarray(0, n))
      })
    }
  })
}
