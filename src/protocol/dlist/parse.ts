/**
 * The dlist parser, as Cyrus 3.6.1's `dlist_parse` reads dlists (docs/architecture.md, "dlist").
 *
 * Structure: a synchronous state machine with an explicit stack scans the reader's buffer
 * in place and only hands control back to Effect when it needs more bytes or meets a
 * `%{…}` file literal, which is streamed to a FileSink (fileSinks.ts: a staging file, or
 * nowhere, only hashed) and never held in memory. A token cut by a chunk boundary is re-scanned from its start once more bytes
 * are buffered (atom and quoted scans resume where they stopped).
 *
 * Deliberate differences from Cyrus (which are all on invalid input):
 * - limits give a DlistParseError instead of killing the process: nesting (`maxDepth`),
 *   atoms (`maxAtom`; Cyrus has none), literals (`maxLiteral`; Cyrus: int32);
 * - a literal above `maxLiteral` and a file literal with a bad GUID are consumed before
 *   failing, so the stream stays in step (Cyrus leaves their bytes on the wire);
 * - a byte 0xFF where Cyrus's whitespace skipper reads it (after a key, after `(`/`%(`, after
 *   a container child) fails; Cyrus confuses it with EOF, failing in most of those places.
 * Kept on purpose: atoms, quoted strings, keys, flags and partitions end at a NUL byte
 * (Cyrus stores them as C strings); only literal values (Buf) keep NULs.
 */
import type { FileSystem } from "@effect/platform"
import { createHash, type Hash } from "node:crypto"
import { Effect } from "effect"
import { ByteReader, type ByteSourceError, EOF, UnexpectedEof, WHITESPACE, byteClass, latin1 } from "../ByteReader.js"
import { DlistParseError, StagingFailed } from "./errors.js"
import { discardSink, fileSinkOf, skipSink, type FileHandling, type FileSink, type FileWriter } from "./fileSinks.js"
import type { Dlist, File, Item } from "./value.js"

export interface ParseOptions {
  /** Deepest container nesting accepted. Default 64 (sync data nests 4 deep). */
  readonly maxDepth?: number
  /** Longest quoted string (unescaped bytes). Default 131072, Cyrus's `maxquoted`. */
  readonly maxQuoted?: number
  /** Longest atom. Default 131072 (Cyrus has no limit). */
  readonly maxAtom?: number
  /**
   * Longest literal held in memory (Buf values and literal keys). Default 64 MiB: literals
   * carry annotation values and sieve scripts, which are small; messages always come as
   * file literals and are streamed.
   */
  readonly maxLiteral?: number
  /** Cyrus's `literalminus` option: `{n+}` with n > 4096 is refused. Default false. */
  readonly literalMinus?: boolean
  /** Where file literals go (a FileSink, or a FileHandling naming one). Default: Discard. */
  readonly files?: FileHandling | FileSink
}

/** A parsed item and the byte that followed it (consumed; `EOF` at end of input). */
export interface ParsedItem {
  readonly item: Item
  readonly terminator: number
}

/** A parsed unkeyed value and the byte that followed it (consumed; `EOF` at end of input). */
export interface ParsedValue {
  readonly value: Dlist
  readonly terminator: number
}

export const DEFAULT_MAX_DEPTH = 64
export const DEFAULT_MAX_QUOTED = 131072
export const DEFAULT_MAX_ATOM = 131072
export const DEFAULT_MAX_LITERAL = 64 * 1024 * 1024

// ---- byte classes ------------------------------------------------------------------------

/** Where an atom ends (Cyrus's `getxstring`): whitespace, `(`, `)`, `"`. */
const ATOM_STOP = byteClass(0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, "()\"")
const HEX40 = /^[0-9a-fA-F]{40}$/

const CH_LPAREN = 0x28
const CH_RPAREN = 0x29
const CH_PERCENT = 0x25
const CH_LBRACE = 0x7b
const CH_RBRACE = 0x7d
const CH_BACKSLASH = 0x5c
const CH_DQUOTE = 0x22
const CH_SP = 0x20
const CH_CR = 0x0d
const CH_LF = 0x0a
const CH_PLUS = 0x2b
const CH_0 = 0x30
const CH_9 = 0x39
const INT32_MAX = 2147483647
const UINT32_MAX = 4294967295

const truncateAtNul = (s: string): string => {
  const z = s.indexOf("\0")
  return z < 0 ? s : s.slice(0, z)
}

// ---- the state machine -------------------------------------------------------------------

const enum Mode {
  Key,
  AfterKey,
  Value,
  ContainerNext,
  FilePartition,
  FilePartitionSpace,
  FileGuid,
  FileGuidSpace,
  FileSize,
  Terminator
}

interface ListFrame {
  readonly list: true
  readonly items: Array<Dlist>
}
interface KvFrame {
  readonly list: false
  readonly items: Array<readonly [string, Dlist]>
  key: string
}
type Frame = ListFrame | KvFrame

/** Why the state machine stopped. */
type Step =
  | { readonly _tag: "Need"; readonly bytes: number }
  | { readonly _tag: "File"; readonly partition: string; readonly guid: string; readonly size: number }
  | { readonly _tag: "SkipThenFail"; readonly bytes: number; readonly reason: string }
  | { readonly _tag: "Fail"; readonly reason: string }
  | { readonly _tag: "Done"; readonly terminator: number }

/** Internal marker: the current token is not complete in the buffer. */
const NEED = Symbol("need")
type Need = typeof NEED

class Failure {
  constructor(readonly step: Step) {}
}

interface Limits {
  readonly maxDepth: number
  readonly maxQuoted: number
  readonly maxAtom: number
  readonly maxLiteral: number
  readonly literalMinus: boolean
}

class Machine {
  private mode: Mode
  private readonly stack: Array<Frame> = []
  private topKey = ""
  private topValue: Dlist | undefined
  /** Resume point of an unfinished atom/quoted scan, relative to the buffer offset. */
  private resume = 0
  private resumeEscapes = 0
  private partition = ""
  /** Bytes to buffer before the token that returned NEED can be re-scanned usefully. */
  private needBytes = 1
  private guid = ""

  constructor(
    private readonly reader: ByteReader,
    private readonly limits: Limits,
    withKey: boolean
  ) {
    this.mode = withKey ? Mode.Key : Mode.Value
  }

  get key(): string {
    return this.topKey
  }
  get value(): Dlist {
    return this.topValue!
  }

  /** Run until more input, a file literal, the end or a failure. */
  step(): Step {
    try {
      return this.run()
    } catch (e) {
      if (e instanceof Failure) return e.step
      throw e
    }
  }

  private fail(reason: string): never {
    throw new Failure({ _tag: "Fail", reason })
  }

  private need(bytes: number): Step {
    return { _tag: "Need", bytes }
  }

  private run(): Step {
    const r = this.reader
    for (;;) {
      switch (this.mode) {
        case Mode.Key: {
          const key = this.astring(false)
          if (key === NEED) return this.need(this.needBytes)
          const top = this.stack[this.stack.length - 1]
          if (top === undefined) this.topKey = key
          else (top as KvFrame).key = key
          this.mode = Mode.AfterKey
          break
        }
        case Mode.AfterKey: {
          const b = this.skipSpace()
          if (b === NEED) return this.need(1)
          if (b === EOF) this.fail("unexpected EOF")
          if (b === 0xff) this.fail("unexpected byte 0xFF")
          this.mode = Mode.Value
          break
        }
        case Mode.ContainerNext: {
          const b = this.skipSpace()
          if (b === NEED) return this.need(1)
          if (b === EOF) this.fail("unexpected EOF")
          if (b === 0xff) this.fail("unexpected byte 0xFF")
          const top = this.stack[this.stack.length - 1]!
          if (b === CH_RPAREN) {
            r.consume(1)
            this.stack.pop()
            this.complete(
              top.list ? { _tag: "List", items: top.items } : { _tag: "KvList", items: top.items }
            )
          } else {
            this.mode = top.list ? Mode.Value : Mode.Key
          }
          break
        }
        case Mode.Value: {
          const s = this.value1()
          if (s !== undefined) return s
          break
        }
        case Mode.FilePartition: {
          const p = this.astring(false)
          if (p === NEED) return this.need(this.needBytes)
          this.partition = truncateAtNul(p)
          this.mode = Mode.FilePartitionSpace
          break
        }
        case Mode.FilePartitionSpace:
        case Mode.FileGuidSpace: {
          if (r.buffered === 0) {
            if (r.sourceEnded) this.fail("unexpected EOF")
            return this.need(1)
          }
          if (r.bytes[r.offset] !== CH_SP) this.fail("bad file literal")
          r.consume(1)
          this.mode = this.mode === Mode.FilePartitionSpace ? Mode.FileGuid : Mode.FileSize
          break
        }
        case Mode.FileGuid: {
          const g = this.astring(false)
          if (g === NEED) return this.need(this.needBytes)
          this.guid = truncateAtNul(g)
          this.mode = Mode.FileGuidSpace
          break
        }
        case Mode.FileSize: {
          const s = this.fileSize()
          if (s === NEED) return this.need(r.buffered + 1)
          return s
        }
        case Mode.Terminator: {
          if (r.buffered > 0) {
            const t = r.bytes[r.offset]!
            r.consume(1)
            return { _tag: "Done", terminator: t }
          }
          if (r.sourceEnded) return { _tag: "Done", terminator: EOF }
          return this.need(1)
        }
      }
    }
  }

  /** A finished value: attach it to its container, or finish the top level. */
  complete(v: Dlist): void {
    const top = this.stack[this.stack.length - 1]
    if (top === undefined) {
      this.topValue = v
      this.mode = Mode.Terminator
    } else {
      if (top.list) top.items.push(v)
      else top.items.push([top.key, v])
      this.mode = Mode.ContainerNext
    }
  }

  private push(frame: Frame): void {
    if (this.stack.length >= this.limits.maxDepth) this.fail("nesting too deep")
    this.stack.push(frame)
    this.mode = Mode.ContainerNext
  }

  /** Skip whitespace (any C isspace byte, CR and LF included); the next byte, unconsumed. */
  private skipSpace(): number | Need {
    const r = this.reader
    const b = r.bytes
    const lim = r.limit
    let i = r.offset
    while (i < lim && WHITESPACE[b[i]!] === 1) i++
    r.consume(i - r.offset)
    if (i < lim) return b[i]!
    return r.sourceEnded ? EOF : NEED
  }

  /** The value at the buffer's head; returns a Step to stop the machine, else undefined. */
  private value1(): Step | undefined {
    const r = this.reader
    if (r.buffered === 0) {
      if (r.sourceEnded) this.fail("unexpected EOF")
      return this.need(1)
    }
    const b = r.bytes
    const c = b[r.offset]!
    switch (c) {
      case CH_LPAREN:
        r.consume(1)
        this.push({ list: true, items: [] })
        return undefined
      case CH_PERCENT: {
        if (r.buffered < 2) {
          if (r.sourceEnded) this.fail("unexpected EOF")
          return this.need(2)
        }
        const d = b[r.offset + 1]!
        if (d === CH_LPAREN) {
          r.consume(2)
          this.push({ list: false, items: [], key: "" })
        } else if (d === CH_LBRACE) {
          r.consume(2)
          this.mode = Mode.FilePartition
        } else {
          this.fail("bad % form")
        }
        return undefined
      }
      case CH_LBRACE: {
        const lit = this.literal(true)
        if (lit === NEED) return this.need(this.needBytes)
        if (typeof lit !== "string") return lit
        this.complete({ _tag: "Buf", value: lit })
        return undefined
      }
      case CH_BACKSLASH: {
        const a = this.atom()
        if (a === NEED) return this.need(r.buffered + 1)
        this.complete({ _tag: "Flag", value: truncateAtNul(a) })
        return undefined
      }
      case CH_DQUOTE: {
        const q = this.quoted()
        if (q === NEED) return this.need(r.buffered + 1)
        this.complete({ _tag: "Atom", value: truncateAtNul(q) })
        return undefined
      }
      case CH_SP:
      case CH_RPAREN:
      case CH_CR:
      case CH_LF:
        return this.fail("unexpected byte")
      default: {
        const a = this.atom()
        if (a === NEED) return this.need(r.buffered + 1)
        this.complete(a === "NIL" ? { _tag: "Nil" } : { _tag: "Atom", value: truncateAtNul(a) })
        return undefined
      }
    }
  }

  /** An astring (keys, file partition and GUID): atom, quoted or literal (no NUL). */
  private astring(binary: boolean): string | Need {
    const r = this.reader
    if (r.buffered === 0) {
      if (r.sourceEnded) this.fail("unexpected EOF")
      this.needBytes = 1
      return NEED
    }
    const c = r.bytes[r.offset]!
    switch (c) {
      case CH_SP:
      case CH_LPAREN:
      case CH_RPAREN:
      case CH_CR:
      case CH_LF:
        return this.fail("unexpected byte")
      case CH_DQUOTE: {
        const q = this.quoted()
        return q === NEED ? NEED : truncateAtNul(q)
      }
      case CH_LBRACE: {
        const lit = this.literal(binary)
        if (lit === NEED) return NEED
        if (typeof lit !== "string") throw new Failure(lit)
        return lit
      }
      default: {
        const a = this.atom()
        return a === NEED ? NEED : truncateAtNul(a)
      }
    }
  }

  /** An atom from the buffer's head, up to whitespace, `(`, `)`, `"` or EOF (not consumed). */
  private atom(): string | Need {
    const r = this.reader
    const b = r.bytes
    const start = r.offset
    const lim = r.limit
    let i = start + this.resume
    while (i < lim && ATOM_STOP[b[i]!] === 0) i++
    const len = i - start
    if (len > this.limits.maxAtom) this.fail("atom too long")
    if (i === lim && !r.sourceEnded) {
      this.resume = len
      this.needBytes = r.buffered + 1
      return NEED
    }
    this.resume = 0
    const s = latin1(b, start, i)
    r.consume(len)
    return s
  }

  /** A quoted string at the buffer's head; backslash quotes the next byte. */
  private quoted(): string | Need {
    const r = this.reader
    const b = r.bytes
    const start = r.offset
    const lim = r.limit
    let i = start + (this.resume === 0 ? 1 : this.resume)
    let escapes = this.resumeEscapes
    for (;;) {
      if (i >= lim) break
      const c = b[i]!
      if (c === CH_BACKSLASH) {
        if (i + 1 >= lim) break
        escapes++
        i += 2
      } else if (c === CH_DQUOTE) {
        break
      } else if (c === CH_CR || c === CH_LF) {
        this.fail("bad quoted string")
      } else {
        i++
      }
      if (i - start - 1 - escapes > this.limits.maxQuoted) this.fail("quoted string too long")
    }
    if (i >= lim || b[i] !== CH_DQUOTE) {
      if (r.sourceEnded) this.fail("unexpected EOF")
      this.resume = i - start
      this.resumeEscapes = escapes
      this.needBytes = r.buffered + 1
      return NEED
    }
    this.resume = 0
    this.resumeEscapes = 0
    let s: string
    if (escapes === 0) {
      s = latin1(b, start + 1, i)
    } else {
      const parts: Array<number> = []
      for (let j = start + 1; j < i; j++) {
        const c = b[j]!
        if (c === CH_BACKSLASH) j++
        parts.push(b[j]!)
      }
      s = Buffer.from(parts).toString("latin1")
    }
    r.consume(i - start + 1)
    return s
  }


  /**
   * A literal `{n}` / `{n+}` CRLF n-bytes at the buffer's head. Returns the bytes, NEED
   * (with `needBytes` set), or a Step that skips an oversized literal then fails.
   */
  private literal(binary: boolean): string | Need | Step {
    const r = this.reader
    const b = r.bytes
    const start = r.offset
    const lim = r.limit
    let i = start + 1
    let n = 0
    let digits = 0
    const cut = (): Need => {
      if (r.sourceEnded) this.fail("unexpected EOF")
      this.needBytes = i - start + 1
      return NEED
    }
    while (i < lim && b[i]! >= CH_0 && b[i]! <= CH_9) {
      n = n * 10 + (b[i]! - CH_0)
      if (n > INT32_MAX) this.fail("literal too large")
      digits++
      i++
    }
    if (i >= lim) return cut()
    if (digits === 0) this.fail("bad literal")
    if (b[i] === CH_PLUS) {
      if (this.limits.literalMinus && n > 4096) this.fail("literal too large for LITERAL-")
      i++
      if (i >= lim) return cut()
    }
    if (b[i] !== CH_RBRACE) this.fail("bad literal")
    i++
    if (i >= lim) return cut()
    if (b[i] !== CH_CR) this.fail("bad literal")
    i++
    if (i >= lim) return cut()
    if (b[i] !== CH_LF) this.fail("bad literal")
    i++
    const header = i - start
    if (n > this.limits.maxLiteral) {
      r.consume(header)
      return { _tag: "SkipThenFail", bytes: n, reason: "literal too large" }
    }
    if (lim - i < n) {
      if (r.sourceEnded) this.fail("unexpected EOF")
      this.needBytes = header + n
      return NEED
    }
    const s = latin1(b, i, i + n)
    r.consume(header + n)
    if (!binary && s.includes("\0")) this.fail("NUL in literal")
    return s
  }

  /** `<digits>}` [CR] LF of a file literal; then hands the body to the driver. */
  private fileSize(): Step | Need {
    const r = this.reader
    const b = r.bytes
    const start = r.offset
    const lim = r.limit
    let i = start
    let n = 0
    while (i < lim && b[i]! >= CH_0 && b[i]! <= CH_9) {
      n = n * 10 + (b[i]! - CH_0)
      if (n > UINT32_MAX) this.fail("file too large")
      i++
    }
    const cut = (): Need => {
      if (r.sourceEnded) this.fail("unexpected EOF")
      return NEED
    }
    if (i >= lim) return cut()
    if (i === start || b[i] !== CH_RBRACE) this.fail("bad file literal")
    i++
    if (i >= lim) return cut()
    if (b[i] === CH_CR) {
      i++
      if (i >= lim) return cut()
    }
    if (b[i] !== CH_LF) this.fail("bad file literal")
    i++
    r.consume(i - start)
    if (!HEX40.test(this.guid)) {
      return { _tag: "SkipThenFail", bytes: n, reason: "bad GUID" }
    }
    return { _tag: "File", partition: this.partition, guid: this.guid.toLowerCase(), size: n }
  }
}

// ---- the Effect driver -------------------------------------------------------------------

const limitsOf = (o: ParseOptions | undefined): Limits => ({
  maxDepth: o?.maxDepth ?? DEFAULT_MAX_DEPTH,
  maxQuoted: o?.maxQuoted ?? DEFAULT_MAX_QUOTED,
  maxAtom: o?.maxAtom ?? DEFAULT_MAX_ATOM,
  maxLiteral: o?.maxLiteral ?? DEFAULT_MAX_LITERAL,
  literalMinus: o?.literalMinus ?? false
})

const failAt = (reader: ByteReader, reason: string, cause?: unknown) =>
  Effect.fail(new DlistParseError({ reason, position: reader.position, ...(cause === undefined ? {} : { cause }) }))

const ignoreChunk = () => {}

/**
 * Read a file literal's body into `sink` (or just hash it), hashing it on the way: one plain
 * loop over the buffered bytes, an Effect step only where the reader must be refilled.
 */
const takeFile = (
  reader: ByteReader,
  sink: FileSink,
  partition: string,
  guid: string,
  size: number,
  staged: Array<string>
): Effect.Effect<File & { readonly stagingError?: { readonly path: string; readonly cause: unknown } }, DlistParseError | ByteSourceError> =>
  Effect.suspend(() => {
    const offset = reader.position
    const hash: Hash = createHash("sha1")
    const target = sink.pathOf(guid)
    if (target === "" && sink.hashes === false) {
      // nothing kept, nothing hashed: only the bytes consumed
      return reader.readIntoSync(size, ignoreChunk).pipe(
        Effect.catchIf((x): x is UnexpectedEof => x instanceof UnexpectedEof, () => failAt(reader, "unexpected EOF")),
        Effect.map(() => ({ _tag: "File", partition, guid, size, path: "", sha1: "", offset }) as const)
      )
    }
    // A staging failure must not leave the rest of the message on the wire: keep reading,
    // stop writing, and fail once the announced bytes are consumed.
    let writeError: unknown = undefined
    let file: FileWriter | undefined
    if (target !== "") {
      staged.push(target)
      try {
        file = sink.open(target)
      } catch (e) {
        writeError = e
      }
    }
    const take = (chunk: Uint8Array) => {
      hash.update(chunk)
      if (file === undefined) return
      try {
        file.write(chunk)
      } catch (e) {
        writeError = e
        file.close()
        file = undefined
      }
    }
    return reader.readIntoSync(size, take).pipe(
      Effect.catchIf((x): x is UnexpectedEof => x instanceof UnexpectedEof, () => failAt(reader, "unexpected EOF")),
      Effect.ensuring(Effect.sync(() => file?.close())),
      Effect.map(() => {
        const f = { _tag: "File", partition, guid, size, path: target, sha1: hash.digest("hex"), offset } as const
        return writeError === undefined ? f : { ...f, stagingError: { path: target, cause: writeError } }
      })
    )
  })

const drive = (
  reader: ByteReader,
  options: ParseOptions | undefined,
  withKey: boolean
): Effect.Effect<{ key: string; value: Dlist; terminator: number }, DlistParseError | StagingFailed | ByteSourceError, FileSystem.FileSystem> => {
  const sink = fileSinkOf(options?.files ?? discardSink)
  const staged: Array<string> = []
  const m = new Machine(reader, limitsOf(options), withKey)
  // After a staging failure the rest of the line is still read (later literals only hashed),
  // so that no literal's content is ever taken for a command; then the line fails as a whole.
  let stagingError: { readonly path: string; readonly cause: unknown } | undefined
  const run = Effect.gen(function* () {
    for (;;) {
      const s = m.step()
      switch (s._tag) {
        case "Done":
          if (stagingError !== undefined) {
            const why = stagingError.cause
            return yield* Effect.fail(
              new StagingFailed({ path: stagingError.path, message: why instanceof Error ? why.message : String(why), terminator: s.terminator })
            )
          }
          return { key: m.key, value: m.value, terminator: s.terminator }
        case "Need":
          yield* reader.ensure(s.bytes)
          break
        case "Fail":
          return yield* failAt(reader, s.reason)
        case "SkipThenFail":
          yield* reader
            .readIntoSync(s.bytes, ignoreChunk)
            .pipe(Effect.catchTag("UnexpectedEof", () => failAt(reader, "unexpected EOF")))
          return yield* failAt(reader, s.reason)
        case "File": {
          const { stagingError: failed, ...f } = yield* takeFile(reader, stagingError === undefined ? sink : discardSink, s.partition, s.guid, s.size, staged)
          stagingError ??= failed
          m.complete(f)
          break
        }
      }
    }
  })
  if (sink === discardSink || sink === skipSink) return run
  // Staged files of a failed parse are useless: remove them.
  return Effect.tapError(run, () => Effect.forEach(staged, sink.remove, { discard: true }))
}

/**
 * Parse `<key> WS* <value>` (a command's argument or a data-file line after `APPLY `).
 * The byte after the value is consumed and returned (`EOF` at end of input) so the
 * caller can check for CRLF / LF.
 */
export const parseItem = (
  reader: ByteReader,
  options?: ParseOptions
): Effect.Effect<ParsedItem, DlistParseError | StagingFailed | ByteSourceError, FileSystem.FileSystem> =>
  Effect.map(drive(reader, options, true), (r) => ({ item: { key: r.key, value: r.value }, terminator: r.terminator }))

/** Parse an unkeyed value (first byte read as is, no leading whitespace skipped). */
export const parseValue = (
  reader: ByteReader,
  options?: ParseOptions
): Effect.Effect<ParsedValue, DlistParseError | StagingFailed | ByteSourceError, FileSystem.FileSystem> =>
  Effect.map(drive(reader, options, false), (r) => ({ value: r.value, terminator: r.terminator }))
