/**
 * Our `backupd_chunk_state` row (see schema.ts): the state of the end of the data file at
 * the last acknowledged point, read and written here.
 */
import { Effect } from "effect"
import { intColumn, query, run, type Sql } from "./db.js"

export interface ChunkState {
  /** The last chunk (NULL: none yet). */
  readonly chunkId: number | null
  /** Whether that chunk's gzip member is complete. */
  readonly sealed: boolean
  /** End of the acknowledged bytes of the data file. */
  readonly endOffset: number
  /** Uncompressed length of the last chunk. */
  readonly length: number
  /** CRC-32 of the last chunk's uncompressed bytes. */
  readonly crc: number
  /** hash-wasm state (hex) of the last chunk's uncompressed bytes. */
  readonly dataState: string
  /** hash-wasm state (hex) of the data file [0, endOffset). */
  readonly fileState: string
  /** Highest line/chunk timestamp so far (lines are kept monotonic). */
  readonly lastTs: number
}

export const readChunkState = (sql: Sql) =>
  Effect.map(
    query(sql, "SELECT chunk_id, sealed, end_offset, length, crc32, data_sha1_state, file_sha1_state, last_ts FROM backupd_chunk_state WHERE id = 1;"),
    (rows): ChunkState | undefined => {
      const r = rows[0]
      if (r === undefined) return undefined
      return {
        chunkId: intColumn(r.chunk_id),
        sealed: intColumn(r.sealed) === 1,
        endOffset: intColumn(r.end_offset) ?? 0,
        length: intColumn(r.length) ?? 0,
        crc: intColumn(r.crc32) ?? 0,
        dataState: String(r.data_sha1_state),
        fileState: String(r.file_sha1_state),
        lastTs: intColumn(r.last_ts) ?? 0
      }
    }
  )

export const writeChunkState = (sql: Sql, s: ChunkState) =>
  Effect.asVoid(
    run(
      sql,
      "INSERT OR REPLACE INTO backupd_chunk_state (id, chunk_id, sealed, end_offset, length, crc32, data_sha1_state, file_sha1_state, last_ts) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?);",
      [s.chunkId, s.sealed ? 1 : 0, s.endOffset, s.length, s.crc >>> 0, s.dataState, s.fileState, s.lastTs]
    )
  )
