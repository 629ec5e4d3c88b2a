/**
 * Reading the lines of one chunk for compaction: like `walkChunk` (format/chunkLines.ts), but
 * message bodies are staged to files, because compaction writes them again through the
 * append path (which streams a message from its staged file and checks its GUID).
 *
 * The caller owns the staged files of a line once `onLine` is called and must remove them.
 */
import { Effect } from "effect"
import { ByteReader, ByteSourceError, type ByteSource } from "../../protocol/ByteReader.js"
import type { StagingFailed } from "../../protocol/dlist/errors.js"
import { inflateMember } from "../format/memberReader.js"
import { DataLineError, describe, readDataLine, type ChunkLine } from "../format/chunkLines.js"

/** A line read for compaction (its message bodies staged). */
export type StagedLine = ChunkLine

/** Why reading a chunk stopped before its end (Cyrus: "error reading chunk"). */
export interface ChunkReadError {
  /** Uncompressed bytes consumed when it stopped. */
  readonly byte: number
  readonly message: string
}

/**
 * Calls `onLine` for each line of the member at `offset`, in order. A damaged member or a
 * line that does not parse ends the walk (reported, not failed): compaction then drops the
 * rest of that chunk only, as Cyrus does. A line that cannot be staged (a full disk) is not a
 * damaged line: it fails the walk, and with it the compaction, so nothing is dropped for it.
 */
export const walkChunkStaged = <E, R>(
  fd: number,
  offset: number,
  stagingDir: string,
  onLine: (line: StagedLine) => Effect.Effect<void, E, R>
): Effect.Effect<ChunkReadError | undefined, E | StagingFailed, R> =>
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
        const lines: Effect.Effect<void, E | StagingFailed | DataLineError | ByteSourceError, R> = Effect.gen(function*() {
          for (;;) {
            const line = yield* readDataLine(reader, { _tag: "Stage", stagingDir })
            if (line === null) return
            yield* onLine(line)
          }
        })
        return yield* lines.pipe(
          Effect.as(undefined),
          Effect.catchIf(
            (e): e is DataLineError | ByteSourceError => e instanceof DataLineError || e instanceof ByteSourceError,
            (e) =>
              Effect.succeed<ChunkReadError>(
                e instanceof DataLineError ? { byte: e.position, message: e.message } : { byte: reader.position, message: describe(e.cause) }
              )
          )
        )
      }),
    (it) => Effect.promise(() => it.return(undefined as never)).pipe(Effect.ignore)
  )
