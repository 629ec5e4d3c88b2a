/**
 * Walking the lines of one chunk as Cyrus's `parse_backup_line` reads them, for reindex,
 * verify, the point-in-time view and compaction: the member is inflated once, every
 * uncompressed byte is handed to `onData` (the chunk's length and SHA-1 are taken over the
 * bytes as they are on disk), and each line is parsed in place with message bytes hashed,
 * never staged (compaction stages them: maintain/compactLines.ts).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect } from "effect"
import { ByteReader, ByteSourceError, EOF, byteClass, type ByteSource } from "../../protocol/ByteReader.js"
import type { StagingFailed } from "../../protocol/dlist/errors.js"
import type { FileHandling } from "../../protocol/dlist/fileSinks.js"
import { parseItem } from "../../protocol/dlist/parse.js"
import type { Item } from "../../protocol/dlist/value.js"
import { inflateMember, type MemberEnd, type ReadGate } from "./memberReader.js"

/** One parsed line of a chunk. */
export interface ChunkLine {
  /** Uncompressed offset of the line (its timestamp) within the chunk. */
  readonly offset: number
  readonly ts: number
  /** The word after the timestamp; only `APPLY` lines carry index data. */
  readonly command: string
  readonly item: Item
}

/** How walking a chunk ended. */
export interface ChunkWalk {
  /** Uncompressed bytes seen (the whole member unless it was damaged). */
  readonly length: number
  /** How the member ended; undefined when inflating failed. */
  readonly member: MemberEnd | undefined
  /** Why inflating stopped early (a damaged member), if it did. */
  readonly inflateError: string | undefined
  /** Why line parsing stopped early (the rest of the data was still inflated and counted). */
  readonly parseError: { readonly offset: number; readonly message: string } | undefined
}

const SP = byteClass(0x20)
const LF = byteClass(0x0a)
const DIGITS = /^[0-9]+$/

/** A line that could not be read: where it starts, where the problem was noticed, and why. */
export class DataLineError {
  constructor(readonly offset: number, readonly position: number, readonly message: string) {}
}

/** A one-line reason for a parse or source failure. */
export const describe = (e: unknown): string => {
  if (e !== null && typeof e === "object") {
    const o = e as { _tag?: unknown; reason?: unknown; message?: unknown; cause?: unknown }
    if (typeof o.reason === "string") return o.reason
    if (o.cause !== undefined && o.cause !== e) return describe(o.cause)
    if (typeof o.message === "string" && o.message.length > 0) return o.message
    if (typeof o._tag === "string") return o._tag
  }
  return String(e)
}

/**
 * Reads the next data-file line (`<ts> <COMMAND> <dlist>`); null at a clean end of the chunk.
 * Message bodies are only hashed, or, with `files: Stage`, written to staging files (compaction
 * writes them again through the append path).
 */
export const readDataLine = (
  reader: ByteReader,
  files: FileHandling = { _tag: "Discard" }
): Effect.Effect<ChunkLine | null, DataLineError | StagingFailed | ByteSourceError> =>
  Effect.gen(function*() {
    // Comment lines (the chunk header) are skipped.
    for (;;) {
      const b = yield* reader.peekByte
      if (b === EOF) return null
      if (b !== 0x23) break
      const skipped = yield* reader.readToken(LF, Number.MAX_SAFE_INTEGER).pipe(Effect.orDie)
      if (skipped.terminator === EOF) return null
    }
    const offset = reader.position
    const fail = (message: string) => Effect.fail(new DataLineError(offset, reader.position, message))
    const ts = yield* reader.readToken(SP, 32).pipe(Effect.catchTag("TokenTooLong", () => fail("timestamp too long")))
    if (ts.terminator === EOF || !DIGITS.test(ts.token)) return yield* fail("line does not start with a timestamp")
    const word = yield* reader.readToken(SP, 64).pipe(Effect.catchTag("TokenTooLong", () => fail("command word too long")))
    if (word.terminator === EOF) return yield* fail("line ends after its command word")
    const parsed = yield* parseItem(reader, { files }).pipe(
      Effect.catchTag("DlistParseError", (e) => fail(`didn't parse dlist: ${describe(e)}`)),
      Effect.provide(NodeFileSystem.layer)
    )
    let t = parsed.terminator
    if (t === 0x0d) t = yield* reader.readByte
    if (t !== 0x0a) return yield* fail(t === EOF ? "line not terminated" : "junk after dlist")
    return { offset, ts: Number(ts.token), command: word.token, item: parsed.item }
  })

export interface WalkOptions {
  /** For a file still being written: waits until the bytes before an offset are there. */
  readonly gate?: ReadGate
  /** false: message bodies are not hashed (their File's `sha1` is ""); reindex needs none. */
  readonly hashBodies?: boolean
}

/**
 * Inflates the member at `offset` (reading no further than `limit`) and calls `onLine` for
 * each line in order (no parsing at all when `onLine` is undefined). A line that does not parse ends the parsing but not the inflating, so
 * `length` and `onData` always cover everything the member yields.
 */
export const walkChunk = <E, R>(
  fd: number,
  offset: number,
  limit: number | undefined,
  onData: (bytes: Uint8Array) => void,
  onLine: ((line: ChunkLine) => Effect.Effect<void, E, R>) | undefined,
  options: WalkOptions = {}
): Effect.Effect<ChunkWalk, E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => inflateMember(fd, offset, limit, options.gate)),
    (it) => walkWith(it, onData, onLine, options.hashBodies === false ? { _tag: "Skip" } : { _tag: "Discard" }),
    (it) => Effect.promise(() => it.return(undefined as never)).pipe(Effect.ignore)
  )

const walkWith = <E, R>(
  it: AsyncGenerator<Buffer, MemberEnd>,
  onData: (bytes: Uint8Array) => void,
  onLine: ((line: ChunkLine) => Effect.Effect<void, E, R>) | undefined,
  files: FileHandling
): Effect.Effect<ChunkWalk, E, R> =>
  Effect.gen(function*() {
    let member: MemberEnd | undefined
    let inflateError: string | undefined
    let length = 0
    let finished = false
    const source: ByteSource = Effect.tryPromise({
      // Once done, the generator must not be pulled again (it would report no end state).
      try: () => (finished ? Promise.resolve({ done: true as const, value: member! }) : it.next()),
      catch: (e) => new ByteSourceError({ cause: e })
    }).pipe(
      Effect.map((r) => {
        if (r.done) {
          finished = true
          member = r.value
          return null
        }
        length += r.value.length
        onData(r.value)
        return r.value
      }),
      Effect.tapError((e) =>
        Effect.sync(() => {
          finished = true
          inflateError = describe(e.cause)
        })
      )
    )
    const reader = ByteReader.make(source)
    let parseError: ChunkWalk["parseError"]
    const lines: Effect.Effect<void, E | DataLineError | ByteSourceError, R> = Effect.gen(function*() {
      if (onLine === undefined) return
      for (;;) {
        // Bodies are only hashed here, so nothing can fail to be staged.
        const line = yield* readDataLine(reader, files).pipe(Effect.catchTag("StagingFailed", Effect.die))
        if (line === null) return
        yield* onLine(line)
      }
    })
    yield* lines.pipe(
      Effect.catchIf(
        (e): e is DataLineError | ByteSourceError => e instanceof DataLineError || e instanceof ByteSourceError,
        (e) =>
          Effect.sync(() => {
            if (e instanceof DataLineError) parseError = { offset: e.offset, message: e.message }
          })
      )
    )
    // Whatever was not parsed still counts towards the chunk's length and checksum.
    if (inflateError === undefined) {
      reader.takeBuffered()
      for (;;) {
        const more = yield* Effect.either(source)
        if (more._tag === "Left" || more.right === null) break
      }
    }
    return { length, member, inflateError, parseError }
  })
