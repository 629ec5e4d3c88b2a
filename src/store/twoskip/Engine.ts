/**
 * The twoskip skip-list algorithms, run synchronously over an in-memory image of the file.
 *
 * Every change is applied to the image and also queued as an I/O step (write / sync /
 * truncate) in the same order Cyrus performs it; the Effect layer (`db.ts`) replays the
 * queue onto the real file after each operation. Keeping the algorithms free of I/O makes
 * them easy to test, including "crash after step N" simulations.
 *
 * Corruption is reported by throwing `TwoskipCorrupt`; `db.ts` turns that into a failure.
 */
import {
  BLANK,
  BLOCK_SIZE,
  checkTail,
  DUMMY_OFFSET,
  decodeRecord,
  encodeHead,
  encodeHeader,
  encodeTail,
  FLAG_DIRTY,
  crcOf,
  type Header,
  HEADER_SIZE,
  LEVEL_PROBABILITY,
  MAX_LEVEL,
  noRecord,
  type SkipRecord,
  TYPE_COMMIT,
  TYPE_DELETE,
  TYPE_DUMMY,
  TYPE_RECORD,
  VERSION
} from "./format.js"
import { TwoskipCorrupt } from "./errors.js"

export type IoStep =
  | { readonly _tag: "Write"; readonly offset: number; readonly data: Buffer }
  | { readonly _tag: "Sync" }
  | { readonly _tag: "Truncate"; readonly size: number }

/** The file's bytes as this process currently knows them, plus the queue of pending I/O. */
export class Image {
  private steps: IoStep[] = []
  constructor(
    public buf: Buffer,
    public size: number
  ) {}

  static empty(): Image {
    return new Image(Buffer.alloc(4096), 0)
  }

  write(offset: number, data: Buffer): void {
    const need = offset + data.length
    if (need > this.buf.length) {
      const grown = Buffer.alloc(Math.max(need, this.buf.length * 2))
      this.buf.copy(grown, 0, 0, this.size)
      this.buf = grown
    }
    data.copy(this.buf, offset)
    if (need > this.size) this.size = need
    this.steps.push({ _tag: "Write", offset, data })
  }

  sync(): void {
    this.steps.push({ _tag: "Sync" })
  }

  truncate(size: number): void {
    if (size < this.size) this.buf.fill(0, size, this.size)
    this.size = size
    this.steps.push({ _tag: "Truncate", size })
  }

  /** Takes the queued steps, leaving the queue empty. */
  drain(): IoStep[] {
    const out = this.steps
    this.steps = []
    return out
  }
}

/** Where a key is, or would be, in the skip list. */
interface Location {
  exact: boolean
  /** The matching record when exact, else the record just before the key at level 0. */
  record: SkipRecord
  /** Per level: the record whose pointer leads to (or past) the key. */
  back: number[]
  /** Per level: where that pointer currently leads. */
  fwd: number[]
}

export type RandomSource = () => number

export const compareBytes = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b)

/** Level for a new record: 1, plus one for each successful coin flip, capped at MAX_LEVEL. */
export const randomLevel = (random: RandomSource): number => {
  let level = 1
  while (random() < LEVEL_PROBABILITY) {
    level++
    if (level === MAX_LEVEL) break
  }
  return level
}

export class Engine {
  /** Logical end of the file: current_size when clean, grows during a transaction. */
  end: number

  constructor(
    readonly path: string,
    readonly image: Image,
    public header: Header,
    readonly random: RandomSource
  ) {
    this.end = header.currentSize
  }

  /** A brand-new database: header + DUMMY, exactly as Cyrus writes it (no COMMIT). */
  static create(path: string, random: RandomSource): Engine {
    const image = Image.empty()
    const header: Header = { version: VERSION, generation: 1, numRecords: 0, repackSize: 0, currentSize: 0, flags: 0 }
    const engine = new Engine(path, image, header, random)
    engine.end = DUMMY_OFFSET
    const dummy = noRecord()
    dummy.type = TYPE_DUMMY
    dummy.level = MAX_LEVEL
    dummy.next = new Array<number>(MAX_LEVEL + 1).fill(0)
    engine.writeRecord(dummy, Buffer.alloc(0), Buffer.alloc(0))
    header.repackSize = engine.end
    header.currentSize = engine.end
    engine.commitHeader()
    return engine
  }

  // ---------------------------------------------------------------- low level

  private corrupt(offset: number, reason: string): TwoskipCorrupt {
    return new TwoskipCorrupt({ path: this.path, offset, reason })
  }

  isDirty(): boolean {
    return (this.header.flags & FLAG_DIRTY) !== 0
  }

  /** Clean = no transaction was left open and nothing lies past the committed size. */
  isClean(): boolean {
    return this.header.currentSize === this.image.size && !this.isDirty()
  }

  private writeHeader(): void {
    this.image.write(0, encodeHeader(this.header))
  }

  private commitHeader(): void {
    this.writeHeader()
    this.image.sync()
  }

  readRecord(offset: number): SkipRecord {
    if (offset === 0) return noRecord()
    return decodeRecord(this.image.buf, this.image.size, offset, this.path)
  }

  /** Reads a record, stepping over one DELETE (a DELETE always points at a live record). */
  private readSkipDelete(offset: number): SkipRecord {
    const rec = this.readRecord(offset)
    return rec.type === TYPE_DELETE ? this.readRecord(rec.next[0]!) : rec
  }

  keyOf(rec: SkipRecord): Buffer {
    return this.image.buf.subarray(rec.keyOffset, rec.keyOffset + rec.keylen)
  }

  valueOf(rec: SkipRecord): Buffer {
    return this.image.buf.subarray(rec.valOffset, rec.valOffset + rec.vallen)
  }

  /** The next record at `level`; level 0 picks between its two slots. */
  private getLoc(rec: SkipRecord, level: number): number {
    if (level > 0) return rec.next[level + 1] ?? 0
    const a = rec.next[0] ?? 0
    const b = rec.next[1] ?? 0
    // a slot pointing at or past the end belongs to an unfinished transaction
    if (a >= this.end) return b
    if (b >= this.end) return a
    return a > b ? a : b
  }

  private setLoc(rec: SkipRecord, level: number, offset: number): void {
    if (level > 0) {
      rec.next[level + 1] = offset
      return
    }
    const size = this.header.currentSize
    // reuse a slot already written by this transaction, else replace the older one
    if (rec.next[0]! >= size) rec.next[0] = offset
    else if (rec.next[1]! >= size) rec.next[1] = offset
    else if (rec.next[1]! > rec.next[0]!) rec.next[0] = offset
    else rec.next[1] = offset
  }

  private rewriteRecord(rec: SkipRecord): void {
    this.image.write(rec.offset, encodeHead(rec))
  }

  /** Appends a record at the end (after BLANK filler if its head would straddle a block). */
  private writeRecord(rec: SkipRecord, key: Uint8Array, value: Uint8Array): void {
    rec.keylen = key.length
    rec.vallen = value.length
    const tail = encodeTail(key, value)
    rec.crcTail = crcOf(tail)
    const head = encodeHead(rec)
    const ioLen = head.length
    if (ioLen <= BLOCK_SIZE - 8) {
      while ((this.end + 8) % BLOCK_SIZE > (this.end - 8 + ioLen) % BLOCK_SIZE) {
        this.image.write(this.end, BLANK)
        this.end += 8
      }
    }
    rec.offset = this.end
    rec.keyOffset = this.end + head.length
    rec.valOffset = rec.keyOffset + rec.keylen
    rec.len = head.length + tail.length
    this.image.write(this.end, Buffer.concat([head, tail]))
    this.end += rec.len
  }

  /** Appends a record inside a transaction, marking the file dirty (and syncing) first. */
  private appendRecord(rec: SkipRecord, key: Uint8Array, value: Uint8Array): void {
    if (!this.isDirty()) {
      this.header.flags |= FLAG_DIRTY
      this.commitHeader()
    }
    this.writeRecord(rec, key, value)
  }

  // ---------------------------------------------------------------- search

  private locate(key: Uint8Array): Location {
    const back = new Array<number>(MAX_LEVEL + 1).fill(0)
    const fwd = new Array<number>(MAX_LEVEL + 1).fill(0)
    let record = this.readRecord(DUMMY_OFFSET)
    let level = record.level
    back[level] = record.offset
    if (key.length === 0) {
      for (let i = 0; i < record.level; i++) {
        back[i] = record.offset
        fwd[i] = this.getLoc(record, i)
      }
      return { exact: false, record, back, fwd }
    }
    let cmp = -1
    let lastOffset = 0
    let candidate = noRecord()
    while (level > 0) {
      const offset = this.getLoc(record, level - 1)
      back[level - 1] = record.offset
      fwd[level - 1] = offset
      if (offset !== lastOffset) {
        lastOffset = offset
        candidate = this.readSkipDelete(offset)
        if (candidate.offset !== 0) {
          if (candidate.level < level) throw this.corrupt(candidate.offset, "record level below its list")
          cmp = compareBytes(this.keyOf(candidate), key)
          if (cmp < 0) {
            record = candidate
            continue
          }
        }
      }
      level--
    }
    if (cmp === 0) {
      for (let i = 0; i < candidate.level; i++) fwd[i] = this.getLoc(candidate, i)
      checkTail(this.image.buf, candidate, this.path)
      return { exact: true, record: candidate, back, fwd }
    }
    return { exact: false, record, back, fwd }
  }

  fetch(key: Uint8Array): Buffer | undefined {
    const loc = this.locate(key)
    return loc.exact ? Buffer.from(this.valueOf(loc.record)) : undefined
  }

  /** All live (key, value) pairs whose key starts with `prefix`, in key order (copies). */
  entries(prefix: Uint8Array): Array<readonly [Buffer, Buffer]> {
    const out: Array<readonly [Buffer, Buffer]> = []
    const loc = this.locate(prefix)
    let rec = loc.record
    if (!loc.exact) {
      rec = this.readSkipDelete(this.getLoc(rec, 0))
      if (rec.offset !== 0) checkTail(this.image.buf, rec, this.path)
    }
    while (rec.offset !== 0) {
      const key = this.keyOf(rec)
      if (key.length < prefix.length || compareBytes(key.subarray(0, prefix.length), prefix) !== 0) break
      out.push([Buffer.from(key), Buffer.from(this.valueOf(rec))])
      rec = this.readSkipDelete(this.getLoc(rec, 0))
      if (rec.offset !== 0) checkTail(this.image.buf, rec, this.path)
    }
    return out
  }

  // ---------------------------------------------------------------- writes

  /** Re-points the predecessors recorded in `loc` at `loc.fwd`, for levels below `maxLevel`. */
  private stitch(loc: Location, maxLevel: number): void {
    let level = 0
    while (level < maxLevel) {
      const rec = this.readRecord(loc.back[level]!)
      if (rec.level <= level) throw this.corrupt(rec.offset, "predecessor level too low")
      const top = Math.min(rec.level, maxLevel)
      for (let i = level; i < top; i++) this.setLoc(rec, i, loc.fwd[i]!)
      this.rewriteRecord(rec)
      level = rec.level
    }
  }

  private storeHere(loc: Location, key: Uint8Array, value: Uint8Array): void {
    let level = 0
    if (loc.exact) {
      level = loc.record.level
      this.header.numRecords--
    }
    const rec = noRecord()
    rec.type = TYPE_RECORD
    rec.level = randomLevel(this.random)
    rec.next = new Array<number>(rec.level + 1).fill(0)
    // a new record's level-0 pointer goes in slot 1; slot 0 stays 0
    for (let i = 0; i < rec.level; i++) rec.next[i + 1] = loc.fwd[i]!
    if (rec.level > level) level = rec.level
    this.appendRecord(rec, key, value)
    for (let i = 0; i < rec.level; i++) loc.fwd[i] = rec.offset
    this.stitch(loc, level)
    this.header.numRecords++
  }

  private deleteHere(loc: Location): void {
    this.header.numRecords--
    const following = this.readSkipDelete(loc.fwd[0]!)
    const rec = noRecord()
    rec.type = TYPE_DELETE
    rec.level = 0
    rec.next = [following.offset]
    this.appendRecord(rec, Buffer.alloc(0), Buffer.alloc(0))
    loc.fwd[0] = rec.offset
    this.stitch(loc, loc.record.level)
  }

  /**
   * Stores `value` under `key`. With `overwrite` false an existing key is left alone and
   * "exists" is returned. An unchanged value writes nothing (as Cyrus).
   */
  store(key: Uint8Array, value: Uint8Array, overwrite: boolean): "stored" | "unchanged" | "exists" {
    const loc = this.locate(key)
    if (loc.exact) {
      if (!overwrite) return "exists"
      if (compareBytes(value, this.valueOf(loc.record)) === 0) return "unchanged"
    }
    this.storeHere(loc, key, value)
    return "stored"
  }

  /** Deletes `key`; false when it was not there. */
  delete(key: Uint8Array): boolean {
    const loc = this.locate(key)
    if (!loc.exact) return false
    this.deleteHere(loc)
    return true
  }

  // ---------------------------------------------------------------- transactions

  /** Ends a write transaction: COMMIT record, sync, clean header, sync. No-op when nothing changed. */
  commit(): void {
    if (!this.isDirty()) return
    const rec = noRecord()
    rec.type = TYPE_COMMIT
    rec.next = [this.header.currentSize]
    this.appendRecord(rec, Buffer.alloc(0), Buffer.alloc(0))
    this.image.sync()
    this.header.currentSize = this.end
    this.header.flags &= ~FLAG_DIRTY
    this.commitHeader()
  }

  /** Drops everything after the last commit (runs recovery over the file). */
  abort(): void {
    this.end = this.header.currentSize
    this.recover()
  }

  /**
   * Repairs a file left by an unfinished transaction: level-0 slots pointing past the
   * committed size are zeroed, higher levels are re-linked from a level-0 walk, the tail
   * is truncated and the record count recomputed. Returns how many pointers were fixed.
   */
  recover(): number {
    if (this.isClean()) return 0
    if (this.header.currentSize <= HEADER_SIZE) throw this.corrupt(48, "current size inside the header")
    this.end = this.header.currentSize
    if (!this.isDirty()) {
      this.header.flags |= FLAG_DIRTY
      this.commitHeader()
    }
    let fixed = 0
    let prev = this.readRecord(DUMMY_OFFSET)
    const prevAt = new Array<number>(MAX_LEVEL + 1).fill(0)
    const nextAt = new Array<number>(MAX_LEVEL + 1).fill(0)
    for (let i = 2; i <= MAX_LEVEL; i++) {
      prevAt[i] = prev.offset
      nextAt[i] = prev.next[i] ?? 0
    }
    const clearFutureSlots = (rec: SkipRecord) => {
      for (let i = 0; i < 2; i++) {
        if (rec.next[i]! >= this.end) {
          rec.next[i] = 0
          this.rewriteRecord(rec)
          fixed++
        }
      }
    }
    clearFutureSlots(prev)
    let count = 0
    let nextOffset = this.getLoc(prev, 0)
    while (nextOffset !== 0) {
      const rec = this.readRecord(nextOffset)
      if (rec.type === TYPE_DELETE) {
        nextOffset = rec.next[0]!
        continue
      }
      if (compareBytes(this.keyOf(rec), this.keyOf(prev)) <= 0) throw this.corrupt(rec.offset, "records out of order")
      for (let i = 2; i <= rec.level; i++) {
        if (nextAt[i] !== rec.offset) {
          const fix = this.readRecord(prevAt[i]!)
          fix.next[i] = rec.offset
          this.rewriteRecord(fix)
          fixed++
        }
        prevAt[i] = rec.offset
        nextAt[i] = rec.next[i]!
      }
      clearFutureSlots(rec)
      count++
      nextOffset = this.getLoc(rec, 0)
      prev = rec
    }
    for (let i = 2; i <= MAX_LEVEL; i++) {
      if (nextAt[i] !== 0) {
        const fix = this.readRecord(prevAt[i]!)
        fix.next[i] = 0
        this.rewriteRecord(fix)
        fixed++
      }
    }
    this.image.truncate(this.header.currentSize)
    this.image.sync()
    this.header.flags &= ~FLAG_DIRTY
    this.header.numRecords = count
    this.commitHeader()
    return fixed
  }

  /** Full consistency walk (order, linkage at every level, record count); throws on failure. */
  checkConsistent(): void {
    let prev = this.readRecord(DUMMY_OFFSET)
    const fwd: number[] = []
    for (let i = 0; i < MAX_LEVEL; i++) fwd.push(this.getLoc(prev, i))
    let count = 0
    while (fwd[0] !== 0) {
      const rec = this.readRecord(fwd[0]!)
      if (rec.type === TYPE_DELETE) {
        fwd[0] = rec.next[0]!
        continue
      }
      if (rec.type !== TYPE_RECORD) throw this.corrupt(rec.offset, "unexpected record type in list")
      if (compareBytes(this.keyOf(rec), this.keyOf(prev)) <= 0) throw this.corrupt(rec.offset, "records out of order")
      checkTail(this.image.buf, rec, this.path)
      for (let i = 0; i < rec.level; i++) {
        if (fwd[i] !== rec.offset) throw this.corrupt(rec.offset, `broken linkage at level ${i}`)
        fwd[i] = this.getLoc(rec, i)
      }
      count++
      prev = rec
    }
    for (let i = 0; i < MAX_LEVEL; i++) {
      if (fwd[i] !== 0) throw this.corrupt(fwd[i]!, `broken tail at level ${i}`)
    }
    if (count !== this.header.numRecords) {
      throw this.corrupt(32, `record count ${count} but header says ${this.header.numRecords}`)
    }
  }

  /** Whether a commit just made the file worth rewriting (Cyrus's checkpoint trigger). */
  wantsCheckpoint(minRewrite: number): boolean {
    return this.header.currentSize > minRewrite && this.header.currentSize > 2 * this.header.repackSize
  }
}
