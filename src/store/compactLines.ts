/**
 * Reading the lines of one chunk for compaction: like `walkChunk` (reindexLines.ts), but
 * message bodies are staged to files, because compaction writes them again through the
 * append path (which streams a message from its staged file and checks its GUID).
 *
 * The caller owns the staged files of a line once `onLine` is called and must remove them.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect } from "effect"
import { ByteReader, ByteSourceError, EOF, byteClass, type ByteSource } from "../protocol/ByteReader.js"
import { parseItem } from "../protocol/dlist/parse.js"
import type { Item } from "../protocol/dlist/value.js"
import { inflateMember } from "./memberReader.js"

export interface StagedLine {
  readonly ts: number
  readonly command: string
  readonly item: Item
}

/** Why reading a chunk stopped before its end (Cyrus: "error reading chunk"). */
export interface ChunkReadError {
  /** Uncompressed bytes consumed when it stopped. */
  readonly byte: number
  readonly message: string
}

const SP = byteClass(0x20)
const LF = byteClass(0x0a)
const DIGITS = /^[0-9]+$/

class LineError {
  constructor(readonly byte: number, readonly message: string) {}
}

const describe = (e: unknown): string => {
  if (e !== null && typeof e === "object") {
    const o = e as { reason?: unknown; message?: unknown; cause?: unknown; _tag?: unknown }
    if (typeof o.reason === "string") return o.reason
    if (o.cause !== undefined && o.cause !== e) return describe(o.cause)
    if (typeof o.message === "string" && o.message.length > 0) return o.message
    if (typeof o._tag === "string") return o._tag
  }
  return String(e)
}

const nextLine = (reader: ByteReader, stagingDir: string): Effect.Effect<StagedLine | null, LineError | ByteSourceError> =>
  Effect.gen(function*() {
    for (;;) {
      const b = yield* reader.peekByte
      if (b === EOF) return null
      if (b !== 0x23) break
      const skipped = yield* reader.readToken(LF, Number.MAX_SAFE_INTEGER).pipe(Effect.orDie)
      if (skipped.terminator === EOF) return null
    }
    const fail = (message: string) => Effect.fail(new LineError(reader.position, message))
    const ts = yield* reader.readToken(SP, 32).pipe(Effect.catchTag("TokenTooLong", () => fail("timestamp too long")))
    if (ts.terminator === EOF || !DIGITS.test(ts.token)) return yield* fail("line does not start with a timestamp")
    const word = yield* reader.readToken(SP, 64).pipe(Effect.catchTag("TokenTooLong", () => fail("command word too long")))
    if (word.terminator === EOF) return yield* fail("line ends after its command word")
    const parsed = yield* parseItem(reader, { files: { _tag: "Stage", stagingDir } }).pipe(
      Effect.catchTag("DlistParseError", (e) => fail(`didn't parse dlist: ${describe(e)}`)),
      Effect.provide(NodeFileSystem.layer)
    )
    let t = parsed.terminator
    if (t === 0x0d) t = yield* reader.readByte
    if (t !== 0x0a) return yield* fail(t === EOF ? "line not terminated" : "junk after dlist")
    return { ts: Number(ts.token), command: word.token, item: parsed.item }
  })

/**
 * Calls `onLine` for each line of the member at `offset`, in order. A damaged member or a
 * line that does not parse ends the walk (reported, not failed): compaction then drops the
 * rest of that chunk only, as Cyrus does.
 */
export const walkChunkStaged = <E, R>(
  fd: number,
  offset: number,
  stagingDir: string,
  onLine: (line: StagedLine) => Effect.Effect<void, E, R>
): Effect.Effect<ChunkReadError | undefined, E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => inflateMember(fd, offset)),
    (it) =>
      Effect.gen(function*() {
        let finished = false
        const source: ByteSource = Effect.tryPromise({
          try: (): Promise<IteratorResult<Buffer, unknown>> => (finished ? Promise.resolve({ done: true as const, value: undefined }) : it.next()),
          catch: (e) => new ByteSourceError({ cause: e })
        }).pipe(
          Effect.map((r) => {
            if (r.done) {
              finished = true
              return null
            }
            return r.value
          }),
          Effect.tapError(() => Effect.sync(() => { finished = true }))
        )
        const reader = ByteReader.make(source)
        const lines: Effect.Effect<void, E | LineError | ByteSourceError, R> = Effect.gen(function*() {
          for (;;) {
            const line = yield* nextLine(reader, stagingDir)
            if (line === null) return
            yield* onLine(line)
          }
        })
        return yield* lines.pipe(
          Effect.as(undefined),
          Effect.catchIf(
            (e): e is LineError | ByteSourceError => e instanceof LineError || e instanceof ByteSourceError,
            (e) =>
              Effect.succeed<ChunkReadError>(
                e instanceof LineError ? { byte: e.byte, message: e.message } : { byte: reader.position, message: describe(e.cause) }
              )
          )
        )
      }),
    (it) => Effect.promise(() => it.return(undefined as never)).pipe(Effect.ignore)
  )
