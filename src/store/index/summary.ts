/**
 * A backup's index read for observers (ctl_backups metrics and health, the upload-pending
 * counts of src/objectstore/pending.ts), read-only and without the data-file lock. This goes to
 * better-sqlite3 directly rather than through an Effect `SqlClient`: a survey opens every index
 * of the host once, and a client per index (its statement cache and layers) cost about 1 ms and
 * a few kB each, which for 10^4 backups broke the 10 s / 128 MB budget of `ctl_backups metrics`
 * (docs/benchmarks.md). Nothing is created, upgraded or written.
 *
 * `readIndexSnapshot` runs every SELECT of one caller in one read transaction, so what they
 * see is one consistent state of the index (SQLite's shared lock, held only while they run; a
 * writer waits for it through its busy_timeout). `indexSummaryOf` is what the survey asks of
 * it: the chunks and the ids of those compaction would keep, with the same SQL as queries.ts.
 */
import Database from "better-sqlite3"
import { Either } from "effect"
import { BackupIndexError } from "../errors.js"
import { LIVE_CHUNK_IDS, liveChunkParams } from "./queries.js"
import { chunkRow, type ChunkRow } from "./rows.js"

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

/**
 * One read-only, consistent view of an index, open only while the reader passed to
 * `readIndexSnapshot` runs. Every statement counts when 10^4 indexes are read in one process
 * (each costs its preparation and a wrapper that lives until a full GC: about 0.4 kB of RSS),
 * so the chunk rows are read once, with their live flag, whichever of `chunks` and
 * `liveChunks` is asked first, and the table names once.
 */
export interface IndexSnapshot {
  /** The rows of a SELECT, as column-name records (integers as numbers). */
  readonly rows: (sql: string, params?: ReadonlyArray<unknown>) => ReadonlyArray<Record<string, unknown>>
  /** The index's tables (our extension tables are absent from indexes Cyrus's tools built). */
  readonly tables: () => ReadonlySet<string>
  /** Every chunk row, in id order (`indexQueries(…).chunks`). */
  readonly chunks: () => ReadonlyArray<ChunkRow>
  /** The chunks still holding live data at `since` (`indexQueries(…).liveChunks`), in id order. */
  readonly liveChunks: (since: number) => ReadonlyArray<ChunkRow>
}

/**
 * Opens the index read-only, runs `read` on it inside one read transaction, and closes it.
 * Synchronous (an Either, not an Effect): a survey calls it 10^4 times in one loop.
 */
export const readIndexSnapshot = <A>(indexPath: string, read: (s: IndexSnapshot) => A): Either.Either<A, BackupIndexError> =>
  Either.try({
    try: () => {
      const db = new Database(indexPath, { readonly: true, fileMustExist: true, timeout: 5000 })
      try {
        const rows = (sql: string, params: ReadonlyArray<unknown> = []) => db.prepare(sql).all(...params)
        let tables: ReadonlySet<string> | undefined
        let chunks: ReadonlyArray<ChunkRow> | undefined
        const live = new Map<number, ReadonlyArray<ChunkRow>>()
        const snapshot: IndexSnapshot = {
          rows,
          tables: () => (tables ??= new Set(rows("SELECT name FROM sqlite_master WHERE type = 'table'").map((r) => String(r.name)))),
          chunks: () => (chunks ??= rows(`SELECT ${chunkRow.columns} FROM chunk ORDER BY id`).map(chunkRow.decode)),
          liveChunks: (since) => {
            const known = live.get(since)
            if (known !== undefined) return known
            const rs = rows(`SELECT ${chunkRow.columns}, id IN (${LIVE_CHUNK_IDS}) AS live FROM chunk ORDER BY id`, liveChunkParams(since))
            chunks ??= rs.map(chunkRow.decode)
            const all = chunks
            const kept = all.filter((_, i) => Number(rs[i]!.live) === 1)
            live.set(since, kept)
            return kept
          }
        }
        db.exec("BEGIN")
        try {
          return read(snapshot)
        } finally {
          db.exec("COMMIT")
        }
      } finally {
        db.close()
      }
    },
    catch: (e) => new BackupIndexError({ path: indexPath, message: e instanceof Error ? e.message : String(e) })
  })

/** The survey's figures of the index in `s`. */
export const indexSummaryOf = (s: IndexSnapshot, since: number): IndexSummary => {
  const figures = (r: ChunkRow): ChunkFigures => ({ id: r.id, tsStart: r.tsStart, tsEnd: r.tsEnd, offset: r.offset, length: r.length ?? 0 })
  const live = s.liveChunks(since).map(figures)
  return { chunks: s.chunks().map(figures), live }
}

