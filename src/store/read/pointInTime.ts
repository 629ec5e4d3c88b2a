/**
 * A backup as it stood at a point in time: the APPLY lines of every chunk that had ended by
 * then (ts_end ≤ time) are replayed, in file order, into a temporary index with the same
 * rules as an append (`indexApply`), and a reader is put over that index and the real data
 * file. Whole chunks only: a chunk is one sync session, so each state seen is one the
 * backup server really held between sessions.
 *
 * The data file is locked for the lifetime of the scope (as `openForRead` does); the
 * temporary index lives in a fresh directory under `tempDir` and is removed with the scope.
 * The real index is only read.
 */
import fs from "node:fs"
import nodePath from "node:path"
import { Effect, Scope } from "effect"
import { indexPathOf, lockBackup } from "../openBackup.js"
import { makeReader, type BackupReader } from "./BackupReader.js"
import { indexQueries } from "../index/queries.js"
import type { ChunkRow } from "../index/rows.js"
import { upperAscii } from "../format/dlistText.js"
import { AppendRejected, BackupCorrupt, ioError, type OpenError } from "../errors.js"
import { indexApply } from "../index/apply.js"
import { indexError, inTransaction, openIndexDb, run } from "../index/db.js"
import { walkChunk, type ChunkLine } from "../format/chunkLines.js"
import { item } from "../../protocol/dlist/value.js"

export interface PointInTimeView {
  readonly reader: BackupReader
  /** The chunks replayed (ts_end ≤ time), in file order. */
  readonly chunks: ReadonlyArray<ChunkRow>
  /** Chunks left out because they ended after the time (or never ended). */
  readonly skippedChunks: number
  /** APPLY lines the index would not take (as reindex, they are only counted). */
  readonly rejectedLines: number
}

export interface PointInTimeOptions {
  /** Where the temporary index directory is made (e.g. the `temp_path` option). */
  readonly tempDir: string
}

/** Opens the backup at `dataPath` as it was at `time` (Unix seconds). */
export const openAtTime = (
  dataPath: string,
  time: number,
  options: PointInTimeOptions
): Effect.Effect<PointInTimeView, OpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = yield* lockBackup(dataPath, { wait: false })
    const realIndex = indexPathOf(dataPath)
    const all = yield* Effect.scoped(Effect.flatMap(openIndexDb(realIndex), (sql) => indexQueries(sql, realIndex).chunks))
    const byOffset = [...all].sort((a, b) => a.offset - b.offset)
    const chosen = byOffset.filter((c) => c.tsEnd !== null && c.tsEnd <= time)

    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fs.promises.mkdtemp(nodePath.join(options.tempDir, "restore-pit-")),
        catch: ioError(options.tempDir, "mkdtemp")
      }),
      (d) => Effect.promise(() => fs.promises.rm(d, { recursive: true, force: true })).pipe(Effect.ignore)
    )
    const tmpIndex = nodePath.join(dir, "index")
    const sql = yield* openIndexDb(tmpIndex)

    let rejectedLines = 0
    for (const chunk of chosen) {
      const next = byOffset.find((c) => c.offset > chunk.offset)
      const onLine = (line: ChunkLine) =>
        line.command !== "APPLY"
          ? Effect.void
          : indexApply(sql, tmpIndex, item(upperAscii(line.item.key), line.item.value), {
            chunkId: chunk.id,
            ts: line.ts,
            offset: line.offset
          }).pipe(
            Effect.catchIf(
              (e): e is AppendRejected => e instanceof AppendRejected,
              () => Effect.sync(() => void rejectedLines++)
            )
          )
      const walk = yield* inTransaction(
        sql,
        tmpIndex,
        Effect.gen(function*() {
          yield* run(sql, "INSERT INTO chunk (id, ts_start, ts_end, offset, length, file_sha1, data_sha1) VALUES (?, ?, ?, ?, ?, ?, ?);", [
            chunk.id,
            chunk.tsStart,
            chunk.tsEnd,
            chunk.offset,
            chunk.length,
            chunk.fileSha1,
            chunk.dataSha1
          ])
          return yield* walkChunk(file.fd, chunk.offset, next?.offset, () => {}, onLine)
        })
      ).pipe(Effect.mapError((e) => (e._tag === "SqlError" ? indexError(tmpIndex)(e) : e)))
      if (walk.inflateError !== undefined || walk.parseError !== undefined) {
        const why = walk.inflateError ?? `byte ${walk.parseError!.offset}: ${walk.parseError!.message}`
        return yield* new BackupCorrupt({ path: dataPath, message: `chunk ${chunk.id} at offset ${chunk.offset}: ${why}` })
      }
    }
    return {
      reader: makeReader({ dataPath, indexPath: tmpIndex, file, sql }),
      chunks: chosen,
      skippedChunks: all.length - chosen.length,
      rejectedLines
    }
  })
