/**
 * The on-disk layout of a Cyrus 3.6 twoskip database (version 1): the 64-byte header and
 * the record encoding. All integers are big-endian; CRCs are zlib CRC-32.
 * See docs/backups-db.md for the full description.
 */
import { crc32 } from "node:zlib"
import { TwoskipCorrupt } from "./errors.js"

export const MAGIC = Buffer.from([0xa1, 0x02, 0x8b, 0x0d, ...Buffer.from("twoskip file", "latin1"), 0, 0, 0, 0])
export const VERSION = 1
export const HEADER_SIZE = 64
export const DUMMY_OFFSET = HEADER_SIZE
/** Highest skip level; the DUMMY record always has it. */
export const MAX_LEVEL = 31
/** Probability of climbing one more level when choosing a new record's level. */
export const LEVEL_PROBABILITY = 0.5
/** No checkpoint below this many bytes (Cyrus's value, typo included). */
export const MIN_REWRITE = 16834
/** Record heads are kept inside one block of this size so a head rewrite is atomic. */
export const BLOCK_SIZE = 512
/** Filler unit written before a record whose head would straddle a block. */
export const BLANK = Buffer.from(" BLANK\x07\xa0", "latin1")
export const FLAG_DIRTY = 1

export const TYPE_DUMMY = 0x3d // '='
export const TYPE_RECORD = 0x2b // '+'
export const TYPE_DELETE = 0x2d // '-'
export const TYPE_COMMIT = 0x24 // '$'

const KEYLEN_ESCAPE = 0xffff
const VALLEN_ESCAPE = 0xffffffff

export interface Header {
  version: number
  generation: number
  numRecords: number
  repackSize: number
  currentSize: number
  flags: number
}

/** One record as found in (or about to be written to) the file. */
export interface SkipRecord {
  /** Where the record starts; 0 for "no record" (end of list). */
  offset: number
  /** Total length including head, key, value and padding. */
  len: number
  type: number
  level: number
  keylen: number
  vallen: number
  /** level + 1 pointers: [0] and [1] are the two level-0 slots, [i+1] is level i. */
  next: number[]
  crcHead: number
  crcTail: number
  keyOffset: number
  valOffset: number
}

export const roundUp8 = (n: number): number => (n % 8 === 0 ? n : n + 8 - (n % 8))

export const crcOf = (bytes: Uint8Array): number => crc32(bytes) >>> 0

const TWO_32 = 0x1_0000_0000

// 64-bit fields as two 32-bit halves: much cheaper than BigInt on the hot path
const readU64 = (buf: Buffer, at: number, path: string): number => {
  const high = buf.readUInt32BE(at)
  if (high > 0x1fffff) {
    throw new TwoskipCorrupt({ path, offset: at, reason: "64-bit field out of range" })
  }
  return high * TWO_32 + buf.readUInt32BE(at + 4)
}

const writeU64 = (buf: Buffer, value: number, at: number): void => {
  buf.writeUInt32BE(Math.floor(value / TWO_32), at)
  buf.writeUInt32BE(value % TWO_32, at + 4)
}

export const encodeHeader = (h: Header): Buffer => {
  const buf = Buffer.alloc(HEADER_SIZE)
  MAGIC.copy(buf, 0)
  buf.writeUInt32BE(h.version, 20)
  writeU64(buf, h.generation, 24)
  writeU64(buf, h.numRecords, 32)
  writeU64(buf, h.repackSize, 40)
  writeU64(buf, h.currentSize, 48)
  buf.writeUInt32BE(h.flags >>> 0, 56)
  buf.writeUInt32BE(crcOf(buf.subarray(0, 60)), 60)
  return buf
}

export const decodeHeader = (buf: Buffer, fileSize: number, path: string): Header => {
  if (fileSize < HEADER_SIZE) {
    throw new TwoskipCorrupt({ path, offset: 0, reason: "file too short for a twoskip header" })
  }
  if (!buf.subarray(0, 20).equals(MAGIC)) {
    throw new TwoskipCorrupt({ path, offset: 0, reason: "bad twoskip magic" })
  }
  const version = buf.readUInt32BE(20)
  if (version > VERSION) {
    throw new TwoskipCorrupt({ path, offset: 20, reason: `unsupported twoskip version ${version}` })
  }
  if (crcOf(buf.subarray(0, 60)) !== buf.readUInt32BE(60)) {
    throw new TwoskipCorrupt({ path, offset: 60, reason: "header CRC mismatch" })
  }
  return {
    version,
    generation: readU64(buf, 24, path),
    numRecords: readU64(buf, 32, path),
    repackSize: readU64(buf, 40, path),
    currentSize: readU64(buf, 48, path),
    flags: buf.readUInt32BE(56)
  }
}

/** The empty record: what a 0 offset reads as. */
export const noRecord = (): SkipRecord => ({
  offset: 0,
  len: 0,
  type: 0,
  level: 0,
  keylen: 0,
  vallen: 0,
  next: [0],
  crcHead: 0,
  crcTail: 0,
  keyOffset: 0,
  valOffset: 0
})

/**
 * Parses the record at `offset` of `buf` (whose meaningful length is `size`) and checks its
 * head CRC. The tail CRC is only checked on demand (`checkTail`), as Cyrus does.
 */
export const decodeRecord = (buf: Buffer, size: number, offset: number, path: string): SkipRecord => {
  const bad = (reason: string) => new TwoskipCorrupt({ path, offset, reason })
  if (offset + 24 > size) throw bad("record head past end of file")
  const type = buf[offset]!
  const level = buf[offset + 1]!
  let keylen = buf.readUInt16BE(offset + 2)
  let vallen = buf.readUInt32BE(offset + 4)
  let at = offset + 8
  if (level > MAX_LEVEL) throw bad(`invalid level ${level}`)
  if (keylen === KEYLEN_ESCAPE) {
    if (at + 8 > size) throw bad("record head past end of file")
    keylen = readU64(buf, at, path)
    at += 8
  }
  if (vallen === VALLEN_ESCAPE) {
    if (at + 8 > size) throw bad("record head past end of file")
    vallen = readU64(buf, at, path)
    at += 8
  }
  const len = at - offset + 8 * (level + 1) + 8 + roundUp8(keylen + vallen)
  if (offset + len > size) throw bad("record past end of file")
  const next: number[] = []
  for (let i = 0; i <= level; i++) {
    next.push(readU64(buf, at, path))
    at += 8
  }
  const crcHead = buf.readUInt32BE(at)
  const crcTail = buf.readUInt32BE(at + 4)
  if (crcOf(buf.subarray(offset, at)) !== crcHead) throw bad("record head CRC mismatch")
  const keyOffset = at + 8
  return { offset, len, type, level, keylen, vallen, next, crcHead, crcTail, keyOffset, valOffset: keyOffset + keylen }
}

/** Checks the CRC of key + value + padding. */
export const checkTail = (buf: Buffer, rec: SkipRecord, path: string): void => {
  const tail = buf.subarray(rec.keyOffset, rec.keyOffset + roundUp8(rec.keylen + rec.vallen))
  if (crcOf(tail) !== rec.crcTail) {
    throw new TwoskipCorrupt({ path, offset: rec.offset, reason: "record tail CRC mismatch" })
  }
}

/**
 * Encodes a record head (type, level, lengths, pointers, both CRCs). `rec.crcTail` must
 * already hold the tail CRC; `rec.crcHead` is recomputed and stored back.
 */
export const encodeHead = (rec: SkipRecord): Buffer => {
  const escKey = rec.keylen >= KEYLEN_ESCAPE
  const escVal = rec.vallen >= VALLEN_ESCAPE
  const len = 8 + (escKey ? 8 : 0) + (escVal ? 8 : 0) + 8 * (rec.level + 1) + 8
  const buf = Buffer.alloc(len)
  buf[0] = rec.type
  buf[1] = rec.level
  buf.writeUInt16BE(escKey ? KEYLEN_ESCAPE : rec.keylen, 2)
  buf.writeUInt32BE(escVal ? VALLEN_ESCAPE : rec.vallen, 4)
  let at = 8
  if (escKey) {
    writeU64(buf, rec.keylen, at)
    at += 8
  }
  if (escVal) {
    writeU64(buf, rec.vallen, at)
    at += 8
  }
  for (let i = 0; i <= rec.level; i++) {
    writeU64(buf, rec.next[i] ?? 0, at)
    at += 8
  }
  rec.crcHead = crcOf(buf.subarray(0, at))
  buf.writeUInt32BE(rec.crcHead, at)
  buf.writeUInt32BE(rec.crcTail >>> 0, at + 4)
  return buf
}

/** Key + value + zero padding to a multiple of 8: the record's tail. */
export const encodeTail = (key: Uint8Array, value: Uint8Array): Buffer => {
  const len = key.length + value.length
  const buf = Buffer.alloc(roundUp8(len))
  buf.set(key, 0)
  buf.set(value, key.length)
  return buf
}
