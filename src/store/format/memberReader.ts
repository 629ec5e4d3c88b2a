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
/** A member's compressed bytes are read in pieces of this size ... */
const MEMBER_READ_SIZE = 1024 * 1024
/** ... and inflated into pieces of this size (node's default, 16 KiB, costs a thread-pool round trip each). */
const INFLATE_CHUNK = 256 * 1024

/**
 * Waits until the bytes before `end` are in the file: for a file still being written (a pull
 * indexes the data file while it downloads), so that a read never meets its growing end.
 */
export type ReadGate = (end: number) => Promise<void>

const readAt = (fd: number, buf: Buffer, position: number, gate?: ReadGate): Promise<number> => {
  const read = () =>
    new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n)))
    )
  return gate === undefined ? read() : gate(position + buf.length).then(read)
}

/** The size of the file behind the descriptor (fstat). */
export const fileSize = (fd: number, path: string) =>
  Effect.async<number, BackupIoError>((resume) =>
    fs.fstat(fd, (err, st) => resume(err ? Effect.fail(new BackupIoError({ path, op: "fstat", message: err.message })) : Effect.succeed(st.size)))
  )

/** The bytes of [start, end) (end = EOF when omitted), in pieces of at most `size` (64 KiB). */
export async function* readRange(fd: number, start: number, end?: number, size: number = READ_SIZE, gate?: ReadGate): AsyncGenerator<Buffer> {
  let pos = start
  for (;;) {
    const want = end === undefined ? size : Math.min(size, end - pos)
    if (want <= 0) return
    const buf = Buffer.allocUnsafe(want)
    const n = await readAt(fd, buf, pos, gate)
    if (n === 0) return
    pos += n
    yield n === want ? buf : buf.subarray(0, n)
  }
}

/**
 * Feeds the bytes of [start, end) to `update` through one reused 1 MiB buffer (each piece is
 * only valid during its call); returns how many bytes there were (fewer than asked at EOF).
 */
export const feedRange = async (fd: number, start: number, end: number, update: (piece: Buffer) => void): Promise<number> => {
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(MEMBER_READ_SIZE, end - start)))
  let pos = start
  while (pos < end) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, 0, Math.min(buf.length, end - pos), pos, (err, got) => (err ? reject(err) : resolve(got)))
    )
    if (n === 0) break
    update(buf.subarray(0, n))
    pos += n
  }
  return pos - start
}

/** Reads exactly up to `length` bytes at `position` (fewer at EOF). */
export const readExact = async (fd: number, position: number, length: number, gate?: ReadGate): Promise<Buffer> => {
  const parts: Array<Buffer> = []
  for await (const p of readRange(fd, position, position + length, READ_SIZE, gate)) parts.push(p)
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
export async function* inflateMember(fd: number, offset: number, limit?: number, gate?: ReadGate): AsyncGenerator<Buffer, MemberEnd> {
  const head = await readExact(fd, offset, Math.min(READ_SIZE, limit === undefined ? READ_SIZE : limit - offset), gate)
  const hlen = gzipHeaderLength(head)
  if (typeof hlen !== "number") throw new MemberFormatError(`no gzip member at offset ${offset}`)
  const bodyStart = offset + hlen
  const src = Readable.from(readRange(fd, bodyStart, limit, MEMBER_READ_SIZE, gate), { objectMode: false, highWaterMark: MEMBER_READ_SIZE })
  // room for a few output pieces, so that the thread pool inflates the next ones while the
  // consumer hashes and parses this one (with node's 16 KiB it waits for every read)
  // (node passes the options on to the stream; its types list only zlib's)
  const options = { chunkSize: INFLATE_CHUNK, readableHighWaterMark: 4 * INFLATE_CHUNK }
  const inflate = zlib.createInflateRaw(options)
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
  const trailer = await readExact(fd, consumed, TRAILER_LENGTH, gate)
  if (trailer.length < TRAILER_LENGTH) return { complete: true, end: consumed + trailer.length }
  return { complete: true, end: consumed + TRAILER_LENGTH, crc32: trailer.readUInt32LE(0), isize: trailer.readUInt32LE(4) }
}
