/**
 * A buffered reader over a pull of byte chunks: the one place where protocol input is
 * buffered. Both the dlist parser and the session's command loop read through it.
 *
 * Operations return Effects, but they only suspend when the buffer runs dry: token scans
 * work on the buffered bytes synchronously. The parser additionally uses the `@internal`
 * members to scan the buffer in place.
 *
 * End of input is an ordinary outcome (`EOF`, i.e. -1, from the byte/token reads;
 * `UnexpectedEof` when an exact byte count was required). A failing source surfaces as
 * `ByteSourceError`.
 */
import { Chunk, Data, Effect, Option, Stream } from "effect"
import type { Scope } from "effect"
import { noteBufferBytes } from "../util/bufferPacer.js"

/** The byte value used for "end of input" (as C's EOF). */
export const EOF = -1

/** The underlying source failed (socket error, inflate error, ...). */
export class ByteSourceError extends Data.TaggedError("ByteSourceError")<{
  readonly cause: unknown
}> {
  override get message(): string {
    return `input failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** Input ended before an announced number of bytes had been read. */
export class UnexpectedEof extends Data.TaggedError("UnexpectedEof")<{
  readonly position: number
  readonly missing: number
}> {
  override get message(): string {
    return `input ended ${this.missing} bytes short, at byte ${this.position}`
  }
}

/** A token exceeded the caller's limit (nothing past the limit is kept). */
export class TokenTooLong extends Data.TaggedError("TokenTooLong")<{
  readonly position: number
  readonly limit: number
}> {
  override get message(): string {
    return `token longer than ${this.limit} bytes at byte ${this.position}`
  }
}

/**
 * One pull from the underlying source: the next non-empty-or-empty chunk, or `null` at
 * end of input. After `null` it is never pulled again (until `switchSource`).
 */
export type ByteSource = Effect.Effect<Uint8Array | null, ByteSourceError>

/** A 256-entry membership table (1 = member) for byte classes. */
export type ByteClass = Uint8Array

/** Builds a ByteClass from byte values and/or the characters of strings. */
export const byteClass = (...members: ReadonlyArray<number | string>): ByteClass => {
  const t = new Uint8Array(256)
  for (const m of members) {
    if (typeof m === "number") t[m] = 1
    else for (let i = 0; i < m.length; i++) t[m.charCodeAt(i) & 0xff] = 1
  }
  return t
}

/** C `isspace` in the C locale: SP, TAB, LF, VT, FF, CR. */
export const WHITESPACE: ByteClass = byteClass(0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d)

/** Where Cyrus's `getword` stops: whitespace, `(`, `)` and `"`. */
export const WORD_STOP: ByteClass = byteClass(0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, "()\"")

export interface Token {
  /** The token's bytes as a byte string (latin1). */
  readonly token: string
  /** The stop byte, consumed; `EOF` if input ended. */
  readonly terminator: number
}

const MIN_CAPACITY = 16 * 1024

interface Latin1Sliceable {
  latin1Slice(start: number, end: number): string
}
/** Bytes `[start, end)` of `b` as a byte string (Buffer's untyped fast path, no range checks). */
export const latin1 = (b: Buffer, start: number, end: number): string =>
  (b as unknown as Latin1Sliceable).latin1Slice(start, end)

export class ByteReader {
  private buf: Buffer = Buffer.alloc(0)
  private start = 0
  private end = 0
  /** Whether `buf` is our own allocation (else a borrowed source chunk: never written). */
  private owned = false
  private ended = false
  private consumedBefore: number

  private constructor(
    private source: ByteSource,
    initialPosition: number
  ) {
    this.consumedBefore = initialPosition
  }

  /** A reader over a pull function. `initialPosition` offsets `position`. */
  static make(source: ByteSource, options?: { readonly initialPosition?: number }): ByteReader {
    return new ByteReader(source, options?.initialPosition ?? 0)
  }

  /** A reader over bytes already in memory. */
  static fromBytes(bytes: Uint8Array, options?: { readonly initialPosition?: number }): ByteReader {
    let given = false
    const source: ByteSource = Effect.sync(() => {
      if (given) return null
      given = true
      return bytes
    })
    return ByteReader.make(source, options)
  }

  /** A pull function over a Stream; the stream is consumed in the given scope. */
  static sourceFromStream<E, R>(
    stream: Stream.Stream<Uint8Array, E, R>
  ): Effect.Effect<ByteSource, never, R | Scope.Scope> {
    return Effect.gen(function* () {
      const context = yield* Effect.context<R>()
      const pull = Effect.provide(yield* Stream.toPull(stream), context)
      let pending: Array<Uint8Array> = []
      let done = false
      const next: ByteSource = Effect.suspend(() => {
        const head = pending.shift()
        if (head !== undefined) return Effect.succeed(head)
        if (done) return Effect.succeed(null)
        return pull.pipe(
          Effect.map((chunk): Uint8Array | null => {
            const arr = Chunk.toReadonlyArray(chunk)
            if (arr.length === 0) return new Uint8Array(0)
            pending = arr.slice(1)
            return arr[0]!
          }),
          Effect.catchAll((e) =>
            Option.match(e, {
              onNone: () => {
                done = true
                return Effect.succeed(null)
              },
              onSome: (cause) => Effect.fail(new ByteSourceError({ cause }))
            })
          )
        )
      })
      return next
    })
  }

  /** A reader over a Stream; the stream is consumed in the given scope. */
  static fromStream<E, R>(
    stream: Stream.Stream<Uint8Array, E, R>,
    options?: { readonly initialPosition?: number }
  ): Effect.Effect<ByteReader, never, R | Scope.Scope> {
    return Effect.map(ByteReader.sourceFromStream(stream), (source) => ByteReader.make(source, options))
  }

  /** Bytes consumed so far (plus the initial position). */
  get position(): number {
    return this.consumedBefore
  }

  /** Bytes buffered and not yet consumed. */
  get buffered(): number {
    return this.end - this.start
  }

  /** Whether the source has reported end of input (buffered bytes may remain). */
  get sourceEnded(): boolean {
    return this.ended
  }

  /** Whether nothing is buffered and the source has ended. */
  get atEof(): boolean {
    return this.ended && this.start === this.end
  }

  /**
   * Pull one more chunk into the buffer. Succeeds with false at end of input.
   * Empty chunks are skipped.
   */
  readonly fill: Effect.Effect<boolean, ByteSourceError> = Effect.suspend(() => this.fillLoop())

  private fillLoop(): Effect.Effect<boolean, ByteSourceError> {
    if (this.ended) return Effect.succeed(false)
    return Effect.flatMap(this.source, (chunk) => {
      if (chunk === null) {
        this.ended = true
        return Effect.succeed(false)
      }
      if (chunk.byteLength === 0) return this.fillLoop()
      // every chunk is a fresh buffer (a socket read, inflated input, a file read)
      noteBufferBytes(chunk.byteLength)
      this.append(chunk)
      return Effect.succeed(true)
    })
  }

  private append(chunk: Uint8Array): void {
    const n = chunk.byteLength
    if (this.start === this.end) {
      // Adopt the chunk without copying.
      this.buf = Buffer.from(chunk.buffer, chunk.byteOffset, n)
      this.start = 0
      this.end = n
      this.owned = false
      return
    }
    const live = this.end - this.start
    if (this.owned && this.end + n <= this.buf.length) {
      this.buf.set(chunk, this.end)
      this.end += n
      return
    }
    if (this.owned && live + n <= this.buf.length) {
      this.buf.copyWithin(0, this.start, this.end)
    } else {
      // Double the capacity so that a long token arriving in small chunks costs linear time.
      const next = Buffer.allocUnsafe(Math.max(MIN_CAPACITY, live + n, 2 * live))
      this.buf.copy(next, 0, this.start, this.end)
      this.buf = next
      this.owned = true
    }
    this.start = 0
    this.end = live
    this.buf.set(chunk, this.end)
    this.end += n
  }

  /** Fill until at least `n` bytes are buffered; false if input ended first. */
  ensure(n: number): Effect.Effect<boolean, ByteSourceError> {
    return Effect.suspend(() => {
      if (this.end - this.start >= n) return Effect.succeed(true)
      return Effect.flatMap(this.fill, (more) => (more ? this.ensure(n) : Effect.succeed(false)))
    })
  }

  /** The next byte without consuming it, or `EOF`. */
  readonly peekByte: Effect.Effect<number, ByteSourceError> = Effect.suspend(() => {
    if (this.start < this.end) return Effect.succeed(this.buf[this.start]!)
    return Effect.map(this.ensure(1), (ok) => (ok ? this.buf[this.start]! : EOF))
  })

  /** The next byte, consumed, or `EOF`. */
  readonly readByte: Effect.Effect<number, ByteSourceError> = Effect.suspend(() => {
    if (this.start < this.end) {
      this.consumedBefore++
      return Effect.succeed(this.buf[this.start++]!)
    }
    return Effect.map(this.ensure(1), (ok) => {
      if (!ok) return EOF
      this.consumedBefore++
      return this.buf[this.start++]!
    })
  })

  /**
   * Read up to the first byte in `stop` (as Cyrus's `getword`): the stop byte is consumed
   * and returned as `terminator` (`EOF` if input ended). Fails once the token would exceed
   * `maxLength` bytes.
   */
  readToken(stop: ByteClass, maxLength: number): Effect.Effect<Token, ByteSourceError | TokenTooLong> {
    const scanFrom = (from: number): Effect.Effect<Token, ByteSourceError | TokenTooLong> => {
      const b = this.buf
      const limit = this.end
      let i = this.start + from
      while (i < limit && stop[b[i]!] === 0) i++
      const len = i - this.start
      if (len > maxLength) {
        return Effect.fail(new TokenTooLong({ position: this.consumedBefore, limit: maxLength }))
      }
      if (i < limit) {
        const token = latin1(b, this.start, i)
        const terminator = b[i]!
        this.consume(len + 1)
        return Effect.succeed({ token, terminator })
      }
      return Effect.flatMap(this.fill, (more) => {
        if (more) return scanFrom(len)
        const token = latin1(this.buf, this.start, this.end)
        this.consume(len)
        return Effect.succeed({ token, terminator: EOF })
      })
    }
    return Effect.suspend(() => scanFrom(0))
  }

  /** Exactly `n` bytes, as a fresh copy. */
  readExactly(n: number): Effect.Effect<Buffer, ByteSourceError | UnexpectedEof> {
    return Effect.flatMap(this.ensure(n), (ok) => {
      if (!ok) {
        return Effect.fail(new UnexpectedEof({ position: this.position, missing: n - this.buffered }))
      }
      const out = Buffer.from(this.buf.subarray(this.start, this.start + n))
      this.consume(n)
      return Effect.succeed(out)
    })
  }

  /**
   * Stream exactly `n` bytes to `sink`, chunk by chunk, without buffering them all. Each
   * chunk handed over is only valid until the sink's Effect completes (copy to keep it).
   * Bytes are consumed before the sink runs, so `position` already counts them.
   */
  readInto<E, R>(
    n: number,
    sink: (chunk: Uint8Array) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, ByteSourceError | UnexpectedEof | E, R> {
    const loop = (left: number): Effect.Effect<void, ByteSourceError | UnexpectedEof | E, R> => {
      if (left === 0) return Effect.void
      const have = this.end - this.start
      if (have > 0) {
        const take = Math.min(have, left)
        const chunk = this.buf.subarray(this.start, this.start + take)
        this.consume(take)
        return Effect.flatMap(sink(chunk), () => loop(left - take))
      }
      return Effect.flatMap(this.fill, (more) =>
        more
          ? loop(left)
          : Effect.fail(new UnexpectedEof({ position: this.position, missing: left }))
      )
    }
    return Effect.suspend(() => loop(n))
  }

  /**
   * `readInto` for a synchronous sink: the buffered bytes are handed over in a plain loop, and
   * an Effect step is taken only when the buffer runs dry and must be filled (once per source
   * chunk, not per piece). Each chunk is only valid during the call; bytes are consumed first.
   */
  readIntoSync(n: number, sink: (chunk: Uint8Array) => void): Effect.Effect<void, ByteSourceError | UnexpectedEof> {
    let left = n
    const loop = (): Effect.Effect<void, ByteSourceError | UnexpectedEof> => {
      while (left > 0) {
        const have = this.end - this.start
        if (have === 0) {
          return Effect.flatMap(this.fill, (more) =>
            more ? loop() : Effect.fail(new UnexpectedEof({ position: this.position, missing: left }))
          )
        }
        const take = have < left ? have : left
        const chunk = this.buf.subarray(this.start, this.start + take)
        this.consume(take)
        left -= take
        sink(chunk)
      }
      return Effect.void
    }
    return Effect.suspend(loop)
  }

  /**
   * Hand over the buffered, unconsumed bytes (e.g. the first compressed bytes after
   * `COMPRESS DEFLATE`); the reader is left empty. Use with `switchSource`.
   */
  takeBuffered(): Uint8Array {
    const out = Uint8Array.prototype.slice.call(this.buf, this.start, this.end)
    this.buf = Buffer.alloc(0)
    this.start = 0
    this.end = 0
    this.owned = false
    return out
  }

  /**
   * Read from now on from `source` (e.g. an inflating wrapper around the old source that
   * was primed with `takeBuffered()`). Any bytes still buffered are kept and read first.
   * `position` keeps counting the bytes this reader delivers.
   */
  switchSource(source: ByteSource): void {
    this.source = source
    this.ended = false
  }

  // ---- synchronous access for in-module scanners -------------------------------------

  /** @internal The buffer; valid bytes are `[offset, limit)`. Do not keep across a fill. */
  get bytes(): Buffer {
    return this.buf
  }
  /** @internal Index in `bytes` of the next unconsumed byte. */
  get offset(): number {
    return this.start
  }
  /** @internal Index in `bytes` just past the buffered bytes. */
  get limit(): number {
    return this.end
  }
  /** @internal Mark `n` buffered bytes consumed. */
  consume(n: number): void {
    this.start += n
    this.consumedBefore += n
    if (this.start === this.end && this.owned) {
      // Keep the allocation but restart at its beginning.
      this.start = 0
      this.end = 0
    }
  }
}
