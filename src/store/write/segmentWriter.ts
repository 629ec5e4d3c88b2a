/**
 * Writes one piece of a chunk: uncompressed parts (literal bytes and staged message files,
 * streamed, never whole in memory) through a fresh raw-deflate stream that ends with a sync
 * flush, to the data file at a given offset. Every uncompressed byte goes into the chunk's
 * CRC-32 / SHA-1 / length, every written byte into the whole-file SHA-1.
 *
 * A fresh compressor per APPLY costs a little ratio (like Cyrus's full flush after every
 * line) but makes each APPLY an independent, byte-aligned run of deflate blocks: dropping
 * one (truncate) leaves a member that can simply be continued or sealed.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import { Readable, Writable } from "node:stream"
import { pipeline } from "node:stream/promises"
import zlib from "node:zlib"
import { Effect } from "effect"
import type { LinePart } from "../format/dlistText.js"
import { BackupIoError, StagedFileMismatch } from "../errors.js"
import { crc32 } from "../format/gzipMember.js"
import type { Sha1 } from "../format/sha1State.js"

/** Running totals of the open chunk and of the file; mutated as bytes pass. */
export interface Accumulator {
  crc: number
  length: number
  readonly data: Sha1
  readonly file: Sha1
}

class Mismatch extends Error {
  constructor(readonly path: string, message: string) {
    super(message)
  }
}

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

async function* uncompressed(parts: ReadonlyArray<LinePart>, acc: Accumulator): AsyncGenerator<Uint8Array> {
  const feed = (b: Uint8Array) => {
    acc.crc = crc32(b, acc.crc)
    acc.length += b.length
    acc.data.update(b)
  }
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      if (p.length === 0) continue
      feed(p)
      yield p
      continue
    }
    const h = createHash("sha1")
    let n = 0
    for await (const chunk of fs.createReadStream(p.path, { highWaterMark: 64 * 1024 })) {
      const b = chunk as Buffer
      n += b.length
      if (n > p.size) throw new Mismatch(p.path, `staged file is longer than ${p.size} bytes`)
      h.update(b)
      feed(b)
      yield b
    }
    if (n !== p.size) throw new Mismatch(p.path, `staged file has ${n} bytes, expected ${p.size}`)
    const got = h.digest("hex")
    if (got !== p.guid.toLowerCase()) throw new Mismatch(p.path, `staged file SHA-1 ${got} does not match its GUID ${p.guid}`)
  }
}

/**
 * Writes `raw` (uncompressed framing such as the gzip header, written as is) and then the
 * deflated `parts` at `position`; returns the number of bytes written.
 */
export const writeSegment = (
  fd: number,
  path: string,
  position: number,
  raw: Uint8Array | null,
  parts: ReadonlyArray<LinePart>,
  acc: Accumulator
): Effect.Effect<number, StagedFileMismatch | BackupIoError> =>
  Effect.tryPromise({
    try: async () => {
      let pos = position
      if (raw !== null && raw.length > 0) {
        await writeAll(fd, raw, pos)
        acc.file.update(raw)
        pos += raw.length
      }
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          writeAll(fd, chunk, pos).then(
            () => {
              acc.file.update(chunk)
              pos += chunk.length
              cb()
            },
            (e) => cb(e as Error)
          )
        }
      })
      await pipeline(
        Readable.from(uncompressed(parts, acc)),
        zlib.createDeflateRaw({ finishFlush: zlib.constants.Z_SYNC_FLUSH }),
        sink
      )
      return pos - position
    },
    catch: (e) =>
      e instanceof Mismatch
        ? new StagedFileMismatch({ path: e.path, message: e.message })
        : new BackupIoError({ path, op: "write", message: (e as Error).message ?? String(e) })
  })

/** Writes bytes as they are (the seal) and adds them to the file hash. */
export const writeRaw = (fd: number, path: string, position: number, bytes: Uint8Array, file: Sha1) =>
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
