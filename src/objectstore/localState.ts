/**
 * The host's own record of what is in the bucket, kept in the backup's index next to Cyrus's
 * tables (docs/storage.md, "Local upload state"): one `backupd_object` row per chunk that a
 * manifest in the bucket lists, the last manifest written (`backupd_object_head`), and the
 * objects compaction dropped that are not deleted yet (`backupd_object_dropped`).
 *
 * Rows are written only under the data file's lock, and only together with the manifest that
 * lists them (one transaction, after the store confirmed the manifest), so "a chunk without a
 * matching row" means exactly "a sealed chunk the bucket's newest manifest does not list yet".
 * Cyrus's reindex and compact build indexes without these tables; everything then counts as
 * pending and the next upload finds every object by HEAD (nothing is sent again) and writes a
 * full manifest.
 *
 * Reading needs no lock: SQLite's own locking gives a consistent snapshot, which is all the
 * pending counts (src/objectstore/pending.ts) need.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Option, Schema } from "effect"
import type { BackupFiles, ChunkRow, IndexSnapshot } from "../store/index.js"
import { ChunkEntry, type DroppedObject, type ManifestHead } from "./Manifest.js"
import type { ChunkMeta } from "./source.js"

export type Sql = BackupFiles["sql"]

/** The upload-state tables (created by the first recorded manifest). */
export const uploadStateTableStatements: ReadonlyArray<string> = [
  "CREATE TABLE IF NOT EXISTS backupd_object( chunk_id INTEGER PRIMARY KEY, offset INTEGER NOT NULL, size INTEGER NOT NULL, data_sha1 TEXT NOT NULL, file_sha1 TEXT NOT NULL, object TEXT NOT NULL, entry TEXT NOT NULL, uploaded TEXT NOT NULL );",
  "CREATE TABLE IF NOT EXISTS backupd_object_head( id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, kind TEXT NOT NULL, chain_length INTEGER NOT NULL, chunk_count INTEGER NOT NULL, end_offset INTEGER NOT NULL, object TEXT NOT NULL, written TEXT NOT NULL );",
  "CREATE TABLE IF NOT EXISTS backupd_object_dropped( object TEXT PRIMARY KEY, dropped_at TEXT NOT NULL, version_id TEXT );"
]

const num = (v: unknown): number => (typeof v === "bigint" ? Number(v) : Number(v ?? 0))
const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString("utf8") : String(v ?? ""))

const q = <A extends object = Record<string, unknown>>(sql: Sql, text: string, params: ReadonlyArray<unknown> = []) =>
  sql.unsafe<A>(text, params).pipe(Effect.provideService(SqlClient.SafeIntegers, true))

/** A chunk the last manifest lists, as recorded: where it was and what it held, and its entry. */
export interface RecordedObject {
  readonly offset: number
  readonly size: number
  readonly dataSha1: string
  readonly fileSha1: string
  readonly entry: ChunkEntry
}

/** What the index says about the bucket. */
export interface LocalUploadState {
  /** Entries of the chunks the last manifest lists, by chunk id. */
  readonly objects: ReadonlyMap<number, RecordedObject>
  readonly head: (ManifestHead & { readonly object: string; readonly written: string }) | undefined
  readonly dropped: ReadonlyArray<DroppedObject>
}

const EMPTY: LocalUploadState = { objects: new Map(), head: undefined, dropped: [] }

const HEAD_TABLE = "backupd_object_head"
const SELECT_OBJECTS = "SELECT chunk_id, offset, size, data_sha1, file_sha1, entry FROM backupd_object ORDER BY chunk_id;"
const SELECT_HEAD = "SELECT seq, kind, chain_length, chunk_count, end_offset, object, written FROM backupd_object_head WHERE id = 1;"
const SELECT_DROPPED = "SELECT object, dropped_at, version_id FROM backupd_object_dropped ORDER BY dropped_at, object;"
const TAIL_TABLE = "backupd_chunk_state"
const SELECT_TAIL = "SELECT chunk_id, sealed, end_offset, file_sha1_state FROM backupd_chunk_state WHERE id = 1;"

const tableCount = (name: string) => `SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '${name}';`
const hasTable = (sql: Sql, name: string) => Effect.map(q<{ n: unknown }>(sql, tableCount(name)), (rs) => num(rs[0]?.n) > 0)

const decodeEntry = Schema.decodeUnknownEither(Schema.parseJson(ChunkEntry))

type Row = Record<string, unknown>

/** The `backupd_object` rows whose entry decodes (one that does not counts as not recorded), by chunk id. */
const objectsOf = (rows: ReadonlyArray<Row>): ReadonlyMap<number, RecordedObject> => {
  const objects = new Map<number, RecordedObject>()
  for (const r of rows) {
    const entry = decodeEntry(str(r.entry))
    if (Either.isLeft(entry)) continue
    objects.set(num(r.chunk_id), { offset: num(r.offset), size: num(r.size), dataSha1: str(r.data_sha1), fileSha1: str(r.file_sha1), entry: entry.right })
  }
  return objects
}

const headOf = (h: Row | undefined): LocalUploadState["head"] =>
  h === undefined
    ? undefined
    : {
        seq: num(h.seq),
        kind: str(h.kind) === "full" ? ("full" as const) : ("append" as const),
        chainLength: num(h.chain_length),
        chunkCount: num(h.chunk_count),
        end: num(h.end_offset),
        object: str(h.object),
        written: str(h.written)
      }

const droppedOf = (rows: ReadonlyArray<Row>): ReadonlyArray<DroppedObject> =>
  rows.map((r): DroppedObject => ({ object: str(r.object), droppedAt: str(r.dropped_at), ...(r.version_id === null || r.version_id === undefined ? {} : { versionId: str(r.version_id) }) }))

const tailOf = (r: Row | undefined): ChunkTail | undefined =>
  r === undefined
    ? undefined
    : {
        chunkId: r.chunk_id === null ? null : num(r.chunk_id),
        sealed: num(r.sealed) === 1,
        endOffset: num(r.end_offset),
        ...(typeof r.file_sha1_state === "string" && r.file_sha1_state !== "" ? { fileState: r.file_sha1_state } : {})
      }

/** Reads the upload state (empty when the tables are absent: an index Cyrus's tools built). */
export const readUploadState = (sql: Sql): Effect.Effect<LocalUploadState, unknown> =>
  Effect.gen(function*() {
    if (!(yield* hasTable(sql, HEAD_TABLE))) return EMPTY
    return { objects: objectsOf(yield* q(sql, SELECT_OBJECTS)), head: headOf((yield* q(sql, SELECT_HEAD))[0]), dropped: droppedOf(yield* q(sql, SELECT_DROPPED)) }
  })

/**
 * The same state and tail from a read-only snapshot of the index (src/store's
 * `readIndexSnapshot`: one synchronous pass, no SQL client), for the observers' pending counts;
 * the dropped list is not read. One statement (the three SELECTs above as one UNION ALL, `k`
 * telling the rows apart), since a survey reads 10^4 indexes in one process.
 */
export const snapshotUploadState = (s: IndexSnapshot): { readonly state: LocalUploadState; readonly tail: ChunkTail | undefined } => {
  const tables = s.tables()
  const parts = [
    ...(tables.has(HEAD_TABLE)
      ? [
          "SELECT 0 AS k, chunk_id AS a, offset AS b, size AS c, data_sha1 AS d, file_sha1 AS e, entry AS f, NULL AS g FROM backupd_object",
          "SELECT 1, seq, kind, chain_length, chunk_count, end_offset, object, written FROM backupd_object_head WHERE id = 1"
        ]
      : []),
    ...(tables.has(TAIL_TABLE) ? ["SELECT 2, chunk_id, sealed, end_offset, NULL, NULL, NULL, NULL FROM backupd_chunk_state WHERE id = 1"] : [])
  ]
  const rows = parts.length === 0 ? [] : s.rows(parts.join(" UNION ALL "))
  const of = (k: number) => rows.filter((r) => Number(r.k) === k)
  const objects = of(0).map((r) => ({ chunk_id: r.a, offset: r.b, size: r.c, data_sha1: r.d, file_sha1: r.e, entry: r.f }))
  const head = of(1).map((r) => ({ seq: r.a, kind: r.b, chain_length: r.c, chunk_count: r.d, end_offset: r.e, object: r.f, written: r.g }))[0]
  const tail = of(2).map((r) => ({ chunk_id: r.a, sealed: r.b, end_offset: r.c }))[0]
  return {
    state: tables.has(HEAD_TABLE) ? { objects: objectsOf(objects), head: headOf(head), dropped: [] } : EMPTY,
    tail: tailOf(tail)
  }
}

/** A chunk's member as ChunkMeta, with whether it is sealed, from the index row and the file's end. */
export interface SealedChunk {
  readonly meta: ChunkMeta
  readonly sealed: boolean
}

/**
 * The chunks of a data file with their member sizes: every chunk but the last ends where the
 * next begins; the last ends at our chunk-state row's `end_offset` (sealed or not, as the row
 * says) or, without the row (an index Cyrus's tools built; they always seal), at `fileEnd`.
 */
export const chunkMembers = (rows: ReadonlyArray<ChunkRow>, state: ChunkTail | undefined, fileEnd: number): ReadonlyArray<SealedChunk> => {
  const byOffset = [...rows].sort((a, b) => a.offset - b.offset)
  return byOffset.map((r, i) => {
    const next = byOffset[i + 1]
    const last = next === undefined
    const tracked = last && state !== undefined && state.chunkId === r.id
    const end = next !== undefined ? next.offset : tracked ? state.endOffset : fileEnd
    return {
      meta: {
        id: r.id,
        offset: r.offset,
        size: end - r.offset,
        length: r.length ?? 0,
        dataSha1: r.dataSha1 ?? "",
        fileSha1: r.fileSha1 ?? "",
        tsStart: r.tsStart,
        tsEnd: r.tsEnd ?? r.tsStart
      },
      sealed: !last || !tracked || state.sealed
    }
  })
}

/** The last-chunk fields of `backupd_chunk_state`. */
export interface ChunkTail {
  readonly chunkId: number | null
  readonly sealed: boolean
  readonly endOffset: number
  /** The data file's resumable SHA-1 at `endOffset` (hex; readTail only, the snapshot leaves it out). */
  readonly fileState?: string
}

/** The tail row, undefined when the row or table is absent. */
export const readTail = (sql: Sql): Effect.Effect<ChunkTail | undefined, unknown> =>
  Effect.gen(function*() {
    if (!(yield* hasTable(sql, TAIL_TABLE))) return undefined
    return tailOf((yield* q(sql, SELECT_TAIL))[0])
  })

/** Whether the recorded entry still describes this chunk (same place, same content). */
export const entryMatches = (known: RecordedObject, m: ChunkMeta): boolean =>
  known.offset === m.offset && known.size === m.size && known.dataSha1 === m.dataSha1 && known.fileSha1 === m.fileSha1

/**
 * Records a manifest the store confirmed: its chunks (replacing every row), its head, and the
 * dropped objects still to delete. Run under the data file's lock, in one transaction.
 */
export const recordManifest = (
  sql: Sql,
  chunks: ReadonlyArray<{ readonly meta: ChunkMeta; readonly entry: ChunkEntry }>,
  head: ManifestHead,
  object: string,
  dropped: ReadonlyArray<DroppedObject>,
  now: Date = new Date()
): Effect.Effect<void, unknown> =>
  sql.withTransaction(
    Effect.gen(function*() {
      for (const t of uploadStateTableStatements) yield* sql.unsafe(t).raw
      yield* sql.unsafe("DELETE FROM backupd_object;").raw
      const at = now.toISOString()
      for (const c of chunks) {
        yield* sql.unsafe("INSERT INTO backupd_object (chunk_id, offset, size, data_sha1, file_sha1, object, entry, uploaded) VALUES (?, ?, ?, ?, ?, ?, ?, ?);", [
          c.meta.id,
          c.meta.offset,
          c.meta.size,
          c.meta.dataSha1,
          c.meta.fileSha1,
          c.entry.object,
          JSON.stringify(c.entry),
          at
        ]).raw
      }
      yield* sql.unsafe("INSERT OR REPLACE INTO backupd_object_head (id, seq, kind, chain_length, chunk_count, end_offset, object, written) VALUES (1, ?, ?, ?, ?, ?, ?, ?);", [
        head.seq,
        head.kind,
        head.chainLength,
        head.chunkCount,
        head.end,
        object,
        at
      ]).raw
      yield* recordDroppedRows(sql, dropped)
    })
  )

const recordDroppedRows = (sql: Sql, dropped: ReadonlyArray<DroppedObject>) =>
  Effect.gen(function*() {
    yield* sql.unsafe("DELETE FROM backupd_object_dropped;").raw
    for (const d of dropped) {
      yield* sql.unsafe("INSERT OR REPLACE INTO backupd_object_dropped (object, dropped_at, version_id) VALUES (?, ?, ?);", [d.object, d.droppedAt, d.versionId ?? null]).raw
    }
  })

/** Replaces the dropped list (after deleteExpired). Under the lock. */
export const recordDropped = (sql: Sql, dropped: ReadonlyArray<DroppedObject>): Effect.Effect<void, unknown> =>
  sql.withTransaction(
    Effect.gen(function*() {
      for (const t of uploadStateTableStatements) yield* sql.unsafe(t).raw
      yield* recordDroppedRows(sql, dropped)
    })
  )

/** Option of the recorded head, for putManifest's `previous`. */
export const previousHead = (s: LocalUploadState): Option.Option<ManifestHead> =>
  s.head === undefined
    ? Option.none()
    : Option.some({ seq: s.head.seq, kind: s.head.kind, chainLength: s.head.chainLength, chunkCount: s.head.chunkCount, end: s.head.end })
