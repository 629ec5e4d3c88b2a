/**
 * The gzip framing of one chunk. We deflate with node:zlib (raw deflate, one sync-flushed
 * segment per APPLY) and frame the member ourselves, because only then can a member be
 * continued after a rolled-back APPLY and sealed after a crash: at every acknowledged point
 * the member is byte-aligned, so an empty final block plus the RFC 1952 trailer completes it.
 */
import zlib from "node:zlib"

/** What zlib's gzdopen(fd, "ab") writes: no name, mtime 0, OS = Unix. */
export const GZIP_HEADER: Buffer = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03])

/** First bytes of every chunk's uncompressed data (29 bytes). */
export const CHUNK_HEADER: Buffer = Buffer.from("# cyrus backup: chunk start\r\n", "latin1")

/** A final, empty fixed-Huffman deflate block (BFINAL=1, BTYPE=01, end-of-block), byte-aligned. */
const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00])

/** Bytes that close a member whose deflate data ends at a flush point. */
export const sealBytes = (crc32: number, length: number): Buffer => {
  const b = Buffer.alloc(10)
  FINAL_EMPTY_BLOCK.copy(b, 0)
  b.writeUInt32LE(crc32 >>> 0, 2)
  b.writeUInt32LE(length % 0x100000000, 6)
  return b
}

export const SEAL_LENGTH = 10
export const TRAILER_LENGTH = 8

export const crc32 = (data: Uint8Array, prev = 0): number => zlib.crc32(data, prev)

/**
 * Length of the gzip header at the start of `b`: a number, `"short"` if more bytes are
 * needed, or `"bad"` if this is not a gzip member.
 */
export const gzipHeaderLength = (b: Uint8Array): number | "short" | "bad" => {
  if (b.length < 10) return b.length >= 1 && b[0] !== 0x1f ? "bad" : "short"
  if (b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 0x08) return "bad"
  const flags = b[3]!
  let p = 10
  if (flags & 0x04) {
    if (b.length < p + 2) return "short"
    p += 2 + (b[p]! | (b[p + 1]! << 8))
  }
  for (const bit of [0x08, 0x10]) {
    if (flags & bit) {
      while (p < b.length && b[p] !== 0) p++
      if (p >= b.length) return "short"
      p++
    }
  }
  if (flags & 0x02) p += 2
  return b.length < p ? "short" : p
}
