/**
 * A backup opened by a tool, as Cyrus's `backup_open_paths` does it: data file locked
 * (waiting or not), index present unless the file is empty, index opened. On top of the
 * store's reader it runs the index queries of Cyrus's tools with the C code's own SQL
 * (same WHERE clauses, no extra ORDER BY), so rows come out in the same order.
 */
import fs from "node:fs"
import { Effect, type Scope } from "effect"
import { checkIndexPresent, indexPathOf } from "../store/openBackup.js"
import { makeReader, type BackupReader } from "../store/read/BackupReader.js"
import { lastChunk, type ChunkRow } from "../store/index/ChunkState.js"
import { LIVE_CHUNK_IDS, liveChunkParams } from "../store/maintain/compact.js"
import { lockDataFile, type LockedDataFile } from "../store/dataFileLock.js"
import { BackupIoError, type BackupIndexError, type OpenError } from "../store/errors.js"
import { bigColumn, indexError, intColumn, openIndexDb, query, textColumn, textParam, type Sql } from "../store/index/db.js"

export interface ToolBackup {
  readonly dataPath: string
  readonly indexPath: string
  readonly file: LockedDataFile
  readonly sql: Sql
  readonly reader: BackupReader
}

export interface OpenToolBackupOptions {
  readonly wait: boolean
  /** `ctl_backups lock -c`: create the data file, failing if it exists. */
  readonly createExclusive?: boolean
}

export const openToolBackup = (
  dataPath: string,
  options: OpenToolBackupOptions
): Effect.Effect<ToolBackup, OpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = yield* lockDataFile(dataPath, {
      wait: options.wait,
      ...(options.createExclusive ? { create: true, exclusive: true } : {})
    })
    yield* checkIndexPresent(file)
    const indexPath = indexPathOf(dataPath)
    const sql = yield* openIndexDb(indexPath)
    return { dataPath, indexPath, file, sql, reader: makeReader(file, sql, indexPath) }
  })

/** Size of the locked data file (fstat), as `backup_stat` reports it. */
export const dataFileSize = (b: ToolBackup): Effect.Effect<number, BackupIoError> =>
  Effect.try({
    try: () => fs.fstatSync(b.file.fd).size,
    catch: (e) => new BackupIoError({ path: b.dataPath, op: "fstat", message: (e as Error).message ?? String(e) })
  })

// --- Cyrus's queries ---------------------------------------------------------------

export interface ToolMailbox {
  readonly id: number
  readonly uniqueid: string
  readonly mboxname: string
  readonly lastAppenddate: number
  readonly deleted: number
}

export interface ToolRecord {
  readonly uid: number
  readonly guid: string
  readonly expunged: number
}

export interface ToolMessage {
  readonly id: number
  readonly guid: string
  readonly chunkId: number
  readonly offset: number
  readonly length: number
}

const MAILBOX_FIELDS =
  "m.id, CAST(uniqueid AS BLOB) AS uniqueid, CAST(mboxname AS BLOB) AS mboxname, last_appenddate, deleted"
const RECORD_FIELDS = "uid, m.guid AS guid, expunged"
const RECORD_JOIN = "mailbox_message as r JOIN message as m ON r.message_id = m.id JOIN mailbox as mb on r.mailbox_id = mb.id"
const MESSAGE_FIELDS = "m.id, guid, chunk_id, offset, size"

const int64 = (v: unknown): number => Number(bigColumn(v) ?? 0n)

const toMailbox = (r: Record<string, unknown>): ToolMailbox => ({
  id: intColumn(r.id) ?? 0,
  uniqueid: textColumn(r.uniqueid) ?? "",
  mboxname: textColumn(r.mboxname) ?? "",
  lastAppenddate: int64(r.last_appenddate),
  deleted: int64(r.deleted)
})

const toRecord = (r: Record<string, unknown>): ToolRecord => ({
  // sqlite3_column_int: the low 32 bits, as a signed int printed with %d
  uid: Number(BigInt.asIntN(32, bigColumn(r.uid) ?? 0n)),
  guid: String(r.guid ?? ""),
  expunged: int64(r.expunged)
})

const toMessage = (r: Record<string, unknown>): ToolMessage => ({
  id: intColumn(r.id) ?? 0,
  guid: String(r.guid ?? ""),
  chunkId: intColumn(r.chunk_id) ?? 0,
  offset: int64(r.offset),
  length: int64(r.size)
})

export interface CyrusQueries {
  readonly chunks: Effect.Effect<ReadonlyArray<ChunkRow>, BackupIndexError>
  readonly latestChunk: Effect.Effect<ChunkRow | undefined, BackupIndexError>
  readonly chunkById: (id: number) => Effect.Effect<ChunkRow | undefined, BackupIndexError>
  readonly mailboxes: Effect.Effect<ReadonlyArray<ToolMailbox>, BackupIndexError>
  readonly mailboxByUniqueid: (uniqueid: string) => Effect.Effect<ToolMailbox | undefined, BackupIndexError>
  readonly mailboxByName: (mboxname: string) => Effect.Effect<ToolMailbox | undefined, BackupIndexError>
  readonly mailboxesByMessage: (guid: string) => Effect.Effect<ReadonlyArray<ToolMailbox>, BackupIndexError>
  readonly records: (mailboxId: number) => Effect.Effect<ReadonlyArray<ToolRecord>, BackupIndexError>
  readonly messages: Effect.Effect<ReadonlyArray<ToolMessage>, BackupIndexError>
  readonly messageByGuid: (guid: string) => Effect.Effect<ToolMessage | undefined, BackupIndexError>
  /** Chunks still needed by live data (`backup_get_live_chunks`); `since` = -1 keeps everything. */
  readonly liveChunks: (since: number) => Effect.Effect<ReadonlyArray<ChunkRow>, BackupIndexError>
  /** Messages of a chunk with a mailbox_message not expunged before `since`. */
  readonly liveMessages: (chunkId: number, since: number) => Effect.Effect<ReadonlyArray<ToolMessage>, BackupIndexError>
}

const CHUNK_FIELDS = "id, ts_start, ts_end, offset, length, file_sha1, data_sha1"

const toChunk = (r: Record<string, unknown>): ChunkRow => ({
  id: intColumn(r.id) ?? 0,
  tsStart: int64(r.ts_start),
  tsEnd: r.ts_end === null || r.ts_end === undefined ? null : int64(r.ts_end),
  offset: int64(r.offset),
  length: r.length === null || r.length === undefined ? null : int64(r.length),
  fileSha1: textColumn(r.file_sha1),
  dataSha1: textColumn(r.data_sha1)
})

export const cyrusQueries = (b: Pick<ToolBackup, "sql" | "indexPath">): CyrusQueries => {
  const q = (text: string, params: ReadonlyArray<unknown> = []) =>
    query(b.sql, text, params).pipe(Effect.mapError(indexError(b.indexPath)))
  const lastOf = <A>(rows: ReadonlyArray<A>): A | undefined => rows[rows.length - 1]
  return {
    chunks: Effect.map(q(`SELECT ${CHUNK_FIELDS} FROM chunk;`), (rows) => rows.map(toChunk)),
    latestChunk: lastChunk(b.sql).pipe(Effect.mapError(indexError(b.indexPath))),
    chunkById: (id) => Effect.map(q(`SELECT ${CHUNK_FIELDS} FROM chunk WHERE id = ?;`, [id]), (rows) => lastOf(rows.map(toChunk))),
    mailboxes: Effect.map(q(`SELECT ${MAILBOX_FIELDS} FROM mailbox AS m;`), (rows) => rows.map(toMailbox)),
    mailboxByUniqueid: (uniqueid) =>
      Effect.map(q(`SELECT ${MAILBOX_FIELDS} FROM mailbox AS m WHERE uniqueid = CAST(? AS TEXT);`, [textParam(uniqueid)]), (rows) =>
        lastOf(rows.map(toMailbox))
      ),
    mailboxByName: (mboxname) =>
      Effect.map(q(`SELECT ${MAILBOX_FIELDS} FROM mailbox AS m WHERE mboxname = CAST(? AS TEXT);`, [textParam(mboxname)]), (rows) =>
        lastOf(rows.map(toMailbox))
      ),
    mailboxesByMessage: (guid) =>
      Effect.map(
        q(
          `SELECT ${MAILBOX_FIELDS} FROM mailbox AS m JOIN mailbox_message AS mm ON mm.mailbox_id = m.id JOIN message AS msg ON mm.message_id = msg.id WHERE msg.guid = ?;`,
          [guid]
        ),
        (rows) => rows.map(toMailbox)
      ),
    records: (mailboxId) =>
      Effect.map(q(`SELECT ${RECORD_FIELDS} FROM ${RECORD_JOIN} WHERE mailbox_id = ?;`, [mailboxId]), (rows) => rows.map(toRecord)),
    messages: Effect.map(q(`SELECT ${MESSAGE_FIELDS} FROM message AS m ORDER BY id;`), (rows) => rows.map(toMessage)),
    messageByGuid: (guid) =>
      Effect.map(q(`SELECT ${MESSAGE_FIELDS} FROM message AS m WHERE guid = ?;`, [guid]), (rows) => lastOf(rows.map(toMessage))),
    liveChunks: (since) =>
      Effect.map(
        q(
          `SELECT ${CHUNK_FIELDS} FROM chunk WHERE id IN (${LIVE_CHUNK_IDS});`,
          liveChunkParams(since)
        ),
        (rows) => rows.map(toChunk)
      ),
    liveMessages: (chunkId, since) =>
      Effect.map(
        q(
          `SELECT DISTINCT ${MESSAGE_FIELDS} FROM message AS m JOIN mailbox_message AS mm ON m.id = mm.message_id AND (mm.expunged IS NULL OR mm.expunged > ?) WHERE chunk_id = ?;`,
          [since, chunkId]
        ),
        (rows) => rows.map(toMessage)
      )
  }
}
