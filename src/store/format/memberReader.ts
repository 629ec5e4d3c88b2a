/**
 * Reading the data file through the locked descriptor: byte ranges, and one gzip member
 * inflated as a stream. Never closes the descriptor (closing any descriptor of the file
 * would drop our fcntl lock), so no fs.ReadStream: it closes its fd when destroyed.
 */
import fs from "node:fs"
import { Readable } from "node:stream"
import zlib from "node:zlib"
import { Effect } from "effect"
import { BackupIoError } from "../errors.js"
import { gzipHeaderLength, TRAILER_LENGTH } from "./gzipMember.js"

const READ_SIZE = 64 * 1024

const readAt = (fd: number, buf: Buffer, position: number): Promise<number> =>
  new Promise((resolve, reject) =>
    fs.read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n)))
  )

/** The size of the file behind the descriptor (fstat). */
export const fileSize = (fd: number, path: string) =>
  Effect.async<number, BackupIoError>((resume) =>
    fs.fstat(fd, (err, st) => resume(err ? Effect.fail(new BackupIoError({ path, op: "fstat", message: err.message })) : Effect.succeed(st.size)))
  )

/** The bytes of [start, end) (end = EOF when omitted), in pieces of at most 64 KiB. */
export async function* readRange(fd: number, start: number, end?: number): AsyncGenerator<Buffer> {
  let pos = start
  for (;;) {
    const want = end === undefined ? READ_SIZE : Math.min(READ_SIZE, end - pos)
    if (want <= 0) return
    const buf = Buffer.allocUnsafe(want)
    const n = await readAt(fd, buf, pos)
    if (n === 0) return
    pos += n
    yield n === want ? buf : buf.subarray(0, n)
  }
}

/** Reads exactly up to `length` bytes at `position` (fewer at EOF). */
export const readExact = async (fd: number, position: number, length: number): Promise<Buffer> => {
  const parts: Array<Buffer> = []
  for await (const p of readRange(fd, position, position + length)) parts.push(p)
  return Buffer.concat(parts)
}

/** How a member ended. */
export interface MemberEnd {
  /** The deflate stream reached its final block (otherwise the file ended first). */
  readonly complete: boolean
  /** Offset just after the member's trailer (complete) or of the end of the data read. */
  readonly end: number
  /** Trailer fields, when complete and present. */
  readonly crc32?: number
  readonly isize?: number
}

export class MemberFormatError extends Error {}

/**
 * Inflates the gzip member starting at `offset` (reading no further than `limit`), yielding
 * its uncompressed bytes; returns how it ended. Stops early without harm if the consumer
 * stops iterating.
 */
export async function* inflateMember(fd: number, offset: number, limit?: number): AsyncGenerator<Buffer, MemberEnd> {
  const head = await readExact(fd, offset, Math.min(READ_SIZE, limit === undefined ? READ_SIZE : limit - offset))
  const hlen = gzipHeaderLength(head)
  if (typeof hlen !== "number") throw new MemberFormatError(`no gzip member at offset ${offset}`)
  const bodyStart = offset + hlen
  const src = Readable.from(readRange(fd, bodyStart, limit), { objectMode: false })
  const inflate = zlib.createInflateRaw()
  src.on("error", (e) => inflate.destroy(e))
  src.pipe(inflate)
  let complete = true
  try {
    try {
      for await (const chunk of inflate) yield chunk as Buffer
    } catch (e) {
      if ((e as { code?: string }).code === "Z_BUF_ERROR") complete = false
      else throw new MemberFormatError(`damaged gzip member at offset ${offset}: ${(e as Error).message}`)
    }
  } finally {
    src.unpipe(inflate)
    src.destroy()
    inflate.destroy()
  }
  const consumed = bodyStart + inflate.bytesWritten
  if (!complete) return { complete: false, end: consumed }
  const trailer = await readExact(fd, consumed, TRAILER_LENGTH)
  if (trailer.length < TRAILER_LENGTH) return { complete: true, end: consumed + trailer.length }
  return { complete: true, end: consumed + TRAILER_LENGTH, crc32: trailer.readUInt32LE(0), isize: trailer.readUInt32LE(4) }
}
