/**
 * Writes one piece of a chunk: uncompressed parts (literal bytes and staged message files,
 * streamed, never whole in memory) through the chunk's raw-deflate compressor, ending with a
 * sync flush, to the data file at a given offset. Every uncompressed byte goes into the
 * chunk's CRC-32 / SHA-1 / length, every written byte into the whole-file SHA-1.
 *
 * One compressor lives as long as the open chunk (`ChunkDeflater`), so later APPLYs may refer
 * back to the bytes of earlier ones, as one long deflate stream does; each APPLY still ends in
 * `Z_SYNC_FLUSH`, so every acknowledged point is the byte-aligned end of complete blocks. After
 * a rolled-back APPLY (the file truncated to where it was) the compressor's history no longer
 * matches the file, so it is `reset`: the next APPLY starts a fresh deflate stream, which refers
 * to nothing before it and continues the member just as well (docs/storage.md).
 *
 * The cost is per byte, not per piece: staged files are read in large reads straight into the
 * compressor's input buffer (small messages are gathered, many to one buffer), the deflate
 * runs on the thread pool while the main thread hashes the next buffer, the compressor hands
 * back output in large pieces and they reach the file in one `writev` per megabyte.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import zlib from "node:zlib"
import { Effect } from "effect"
import type { LinePart } from "../format/dlistText.js"
import { BackupIoError, StagedFileMismatch } from "../errors.js"
import { crc32 } from "../format/gzipMember.js"
import { noteBufferBytes } from "../../util/bufferPacer.js"

/** Anything that hashes bytes as they pass (node:crypto Hash, a hash-wasm hasher). */
export interface ByteHash {
  update(data: Uint8Array): unknown
}

/** Running totals of the open chunk and of the file; mutated as bytes pass. */
export interface Accumulator {
  crc: number
  length: number
  readonly data: ByteHash
  readonly file: ByteHash
}

class Mismatch extends Error {
  constructor(readonly path: string, message: string) {
    super(message)
  }
}

/** Uncompressed bytes handed to the compressor at a time (and the largest read of a staged file). */
const INPUT_BATCH = 1024 * 1024
/** The compressor's output piece size (node's default, 16 KiB, costs a thread-pool round trip each). */
const OUTPUT_CHUNK = 256 * 1024
/** Compressed bytes gathered before they are written. */
const WRITE_BATCH = 1024 * 1024

const writeAll = (fd: number, buf: Uint8Array, position: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const step = (off: number) =>
      fs.write(fd, buf, off, buf.length - off, position + off, (err, n) => {
        if (err) return reject(err)
        if (off + n < buf.length) return step(off + n)
        resolve()
      })
    step(0)
  })

/** Writes `bufs` at `position` in one writev (continuing after a short write). */
const writeVec = (fd: number, bufs: Array<Buffer>, position: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const step = (rest: Array<Buffer>, pos: number) =>
      fs.writev(fd, rest, pos, (err, n) => {
        if (err) return reject(err)
        let left = n
        let i = 0
        while (i < rest.length && left >= rest[i]!.length) left -= rest[i++]!.length
        if (i === rest.length) return resolve()
        step([rest[i]!.subarray(left), ...rest.slice(i + 1)], pos + n)
      })
    step(bufs, position)
  })

// Staged files are read synchronously: they were just written and sit in the page cache, so a
// read is a copy (a few microseconds for a message, about 0.2 ms per MiB), cheaper than a
// thread-pool round trip and a promise per open, read and close; the deflate of the previous
// buffer still runs on the thread pool meanwhile.
const openRead = (path: string): number => fs.openSync(path, "r")
const readInto = (fd: number, buf: Buffer, offset: number, length: number, position: number): number =>
  fs.readSync(fd, buf, offset, length, position)
const closeFd = (fd: number): void => {
  try {
    fs.closeSync(fd)
  } catch {
    // a read-only descriptor: nothing to lose
  }
}

/** One deflate stream and what it has put out so far. */
interface Stream {
  readonly z: zlib.DeflateRaw
  out: Array<Buffer>
  outBytes: number
  error: Error | undefined
}

/**
 * At most this many compressors keep their history (about 0.5 MB of zlib state and output
 * buffer each) in a process, however many backups it has open: the least recently used idle
 * one is reset to make room. Resetting is always allowed at an APPLY boundary (the next APPLY
 * then starts a fresh deflate stream), so this bounds memory and costs a little ratio only.
 */
const MAX_LIVE_COMPRESSORS = 4
/** Compressors with a live stream, least recently used first. */
const live = new Set<ChunkDeflater>()

/**
 * Full-size input buffers, kept between APPLYs (at most four): a sync of thousands of messages
 * then reuses a few megabytes instead of allocating a new one per batch, which V8 would only
 * give back at its next collection.
 */
const idleBuffers: Array<Buffer> = []
const takeBuffer = (size: number): Buffer => (size === INPUT_BATCH ? idleBuffers.pop() : undefined) ?? Buffer.allocUnsafe(size)
const giveBack = (b: Buffer | undefined) => {
  if (b !== undefined && b.length === INPUT_BATCH && idleBuffers.length < 4 && !idleBuffers.includes(b)) idleBuffers.push(b)
}

/** How many compressors hold a live stream now (tests). */
export const liveCompressors = (): number => live.size

/**
 * The open chunk's compressor. `writeSegment` deflates one APPLY's parts and writes them;
 * `reset` forgets the history (a new chunk, or after a rollback); `close` frees it.
 */
export class ChunkDeflater {
  private stream: Stream | undefined
  private busy = false

  private current(): Stream {
    live.delete(this)
    live.add(this)
    if (this.stream !== undefined) return this.stream
    for (const other of live) {
      if (live.size <= MAX_LIVE_COMPRESSORS) break
      if (other !== this && !other.busy) other.reset()
    }
    const z = zlib.createDeflateRaw({ chunkSize: OUTPUT_CHUNK })
    const s: Stream = { z, out: [], outBytes: 0, error: undefined }
    z.on("data", (b: Buffer) => {
      s.out.push(b)
      s.outBytes += b.length
    })
    z.on("error", (e) => {
      s.error = e
    })
    this.stream = s
    return s
  }

  /** The next write starts a fresh deflate stream that refers to nothing before it. */
  reset(): void {
    const s = this.stream
    this.stream = undefined
    live.delete(this)
    if (s !== undefined) {
      s.z.removeAllListeners("data")
      s.z.on("error", () => {})
      s.z.close()
    }
  }

  close(): void {
    this.reset()
  }

  /**
   * Writes `raw` (uncompressed framing such as the gzip header, written as is) and then the
   * deflated `parts` at `position`; returns the number of bytes written. On failure the
   * caller truncates the file and must `reset` this compressor.
   */
  writeSegment(
    fd: number,
    path: string,
    position: number,
    raw: Uint8Array | null,
    parts: ReadonlyArray<LinePart>,
    acc: Accumulator
  ): Effect.Effect<number, StagedFileMismatch | BackupIoError> {
    return Effect.tryPromise({
      try: async () => {
        this.busy = true
        try {
          return await this.run(fd, position, raw, parts, acc)
        } finally {
          this.busy = false
        }
      },
      catch: (e) =>
        e instanceof Mismatch
          ? new StagedFileMismatch({ path: e.path, message: e.message })
          : new BackupIoError({ path, op: "write", message: (e as Error).message ?? String(e) })
    })
  }

  private async run(fd: number, position: number, raw: Uint8Array | null, parts: ReadonlyArray<LinePart>, acc: Accumulator): Promise<number> {
    const s = this.current()
    let pos = position
    if (raw !== null && raw.length > 0) {
      await writeAll(fd, raw, pos)
      acc.file.update(raw)
      pos += raw.length
    }
    const drainOutput = async (all: boolean) => {
      if (s.error !== undefined) throw s.error
      if (s.outBytes === 0 || (!all && s.outBytes < WRITE_BATCH)) return
      const bufs = s.out
      const n = s.outBytes
      s.out = []
      s.outBytes = 0
      await writeVec(fd, bufs, pos)
      for (const b of bufs) acc.file.update(b)
      // the compressor's output pieces are fresh buffers, dead from here on
      noteBufferBytes(n)
      pos += n
    }
    // The compressor works on one input buffer while the other is filled and hashed: two
    // buffers, of at most INPUT_BATCH, or of the whole APPLY when it is smaller.
    let total = 0
    for (const p of parts) total += p instanceof Uint8Array ? p.length : p.size + 1
    const batch = Math.min(INPUT_BATCH, Math.max(total, 4096))
    let spare: Buffer | undefined
    let inFlight: { done: Promise<void>; own: Buffer | undefined } | undefined
    const settle = async () => {
      if (inFlight === undefined) return
      const f = inFlight
      inFlight = undefined
      await f.done
      spare = f.own ?? spare
      await drainOutput(false)
    }
    /** Hands `b` to the compressor; `own` is the batch buffer behind it, reused once done. */
    const submit = async (b: Buffer, own: Buffer | undefined) => {
      await settle()
      inFlight = {
        own,
        done: new Promise<void>((resolve, reject) =>
          s.z.write(b, (err) => (err ? reject(err) : s.error !== undefined ? reject(s.error) : resolve()))
        )
      }
    }
    const feed = (b: Uint8Array) => {
      acc.crc = crc32(b, acc.crc)
      acc.length += b.length
      acc.data.update(b)
    }
    let buf: Buffer = takeBuffer(batch)
    let used = 0
    const submitBuffer = async () => {
      if (used === 0) return
      const full = buf
      const n = used
      await settle()
      buf = spare ?? takeBuffer(batch)
      spare = undefined
      used = 0
      await submit(full.subarray(0, n), full)
    }

    try {
      for (const p of parts) {
        if (p instanceof Uint8Array) {
          if (p.length === 0) continue
          feed(p)
          if (p.length > batch - used) {
            await submitBuffer()
            if (p.length > batch / 4) {
              await submit(Buffer.from(p.buffer, p.byteOffset, p.byteLength), undefined)
              continue
            }
          }
          buf.set(p, used)
          used += p.length
          continue
        }
        let file: number
        try {
          file = openRead(p.path)
        } catch (e) {
          throw new Mismatch(p.path, `staged file cannot be opened: ${(e as Error).message}`)
        }
        try {
          const h = createHash("sha1")
          let n = 0
          for (;;) {
            if (batch - used < Math.min(64 * 1024, batch / 4)) await submitBuffer()
            // one byte more than is left, so that a longer file shows itself
            const want = Math.min(batch - used, p.size - n + 1)
            const got = readInto(file, buf, used, want, n)
            if (got === 0) break
            if (n + got > p.size) throw new Mismatch(p.path, `staged file is longer than ${p.size} bytes`)
            const piece = buf.subarray(used, used + got)
            h.update(piece)
            feed(piece)
            used += got
            n += got
            // a short read of a regular file is its end
            if (got < want) break
          }
          if (n !== p.size) throw new Mismatch(p.path, `staged file has ${n} bytes, expected ${p.size}`)
          const sha = h.digest("hex")
          if (sha !== p.guid.toLowerCase()) throw new Mismatch(p.path, `staged file SHA-1 ${sha} does not match its GUID ${p.guid}`)
        } finally {
          closeFd(file)
        }
      }
      await submitBuffer()
      await settle()
      await new Promise<void>((resolve, reject) =>
        s.z.flush(zlib.constants.Z_SYNC_FLUSH, () => (s.error !== undefined ? reject(s.error) : resolve()))
      )
      await drainOutput(true)
    } catch (e) {
      // leave nothing in flight that could still touch the stream
      await inFlight?.done.catch(() => {})
      throw e
    } finally {
      if (inFlight === undefined) {
        giveBack(buf)
        giveBack(spare)
      }
    }
    return pos - position
  }
}

/** Writes bytes as they are (the seal) and adds them to the file hash. */
export const writeRaw = (fd: number, path: string, position: number, bytes: Uint8Array, file: ByteHash) =>
  Effect.tryPromise({
    try: async () => {
      await writeAll(fd, bytes, position)
      file.update(bytes)
    },
    catch: (e) => new BackupIoError({ path, op: "write", message: (e as Error).message ?? String(e) })
  })

export const syncData = (fd: number, path: string) =>
  Effect.async<void, BackupIoError>((resume) =>
    fs.fdatasync(fd, (err) => resume(err ? Effect.fail(new BackupIoError({ path, op: "fdatasync", message: err.message })) : Effect.void))
  )

export const truncateTo = (fd: number, path: string, length: number) =>
  Effect.async<void, BackupIoError>((resume) =>
    fs.ftruncate(fd, length, (err) => resume(err ? Effect.fail(new BackupIoError({ path, op: "ftruncate", message: err.message })) : Effect.void))
  )
