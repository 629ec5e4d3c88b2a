/**
 * A backup's index summed up for observers (ctl_backups metrics and health), read-only and
 * without the data-file lock: its chunks and the ids of those compaction would keep, with the
 * same SQL as queries.ts. This goes to better-sqlite3 directly rather than through an Effect
 * `SqlClient`: a survey opens every index of the host once, and a client per index (its
 * statement cache and layers) cost about 1 ms and a few kB each, which for 10^4 backups broke
 * the 10 s / 128 MB budget of `ctl_backups metrics` (docs/benchmarks.md). Nothing is created,
 * upgraded or written; SQLite's shared lock is held only while the two SELECTs run, and a
 * writer waits for it through its busy_timeout.
 */
import Database from "better-sqlite3"
import { Either } from "effect"
import { BackupIndexError } from "../errors.js"
import { LIVE_CHUNK_IDS, liveChunkParams } from "./queries.js"

export interface ChunkFigures {
  readonly id: number
  readonly tsStart: number
  readonly tsEnd: number | null
  readonly offset: number
  readonly length: number
}

export interface IndexSummary {
  /** Every chunk, in id order. */
  readonly chunks: ReadonlyArray<ChunkFigures>
  /** The chunks still holding live data at `since` (`liveChunks`), in id order. */
  readonly live: ReadonlyArray<ChunkFigures>
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))

/** Synchronous (an Either, not an Effect): a survey calls it 10^4 times in one loop. */
export const readIndexSummary = (indexPath: string, since: number): Either.Either<IndexSummary, BackupIndexError> =>
  Either.try({
    try: () => {
      const db = new Database(indexPath, { readonly: true, fileMustExist: true, timeout: 5000 })
      try {
        const rows = (sql: string, params: ReadonlyArray<unknown> = []) =>
          db.prepare(sql).raw(true).all(...params).map((r): ChunkFigures => ({
            id: num(r[0])!,
            tsStart: num(r[1]) ?? 0,
            tsEnd: num(r[2]),
            offset: num(r[3]) ?? 0,
            length: num(r[4]) ?? 0
          }))
        const columns = "SELECT id, ts_start, ts_end, offset, length FROM chunk"
        return { chunks: rows(`${columns} ORDER BY id`), live: rows(`${columns} WHERE id IN (${LIVE_CHUNK_IDS}) ORDER BY id`, liveChunkParams(since)) }
      } finally {
        db.close()
      }
    },
    catch: (e) => new BackupIndexError({ path: indexPath, message: e instanceof Error ? e.message : String(e) })
  })
