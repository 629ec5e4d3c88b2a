/**
 * Every read of a backup's index, in one place: the reader's lookups (backupd's GET answers,
 * restore), the queries of Cyrus's tools with the C code's own SQL (same WHERE clauses and no
 * ORDER BY of their own, so rows come out in the same order; `ORDER BY id` on the chunk table
 * is its rowid order, what an unordered SELECT of it returns), and what verify and compaction
 * ask. Rows are read with the schemas of rows.ts; failures are BackupIndexError.
 */
import { Effect } from "effect"
import type { BackupIndexError } from "../errors.js"
import { indexError, intColumn, query, textColumn, textParam, type Sql } from "./db.js"
import {
  chunkRow,
  mailboxRow,
  messageRow,
  RECORD_JOIN,
  recordRow,
  seenRow,
  sieveRow,
  subscriptionRow,
  type ChunkRow,
  type MailboxRow,
  type MessageRow,
  type RecordRow,
  type RowSchema,
  type SeenRow,
  type SieveRow,
  type SubscriptionRow
} from "./rows.js"

/**
 * Ids of the chunks that still hold something live at `since` (Cyrus's compaction rule):
 * a mailbox, record, message, subscription or sieve script not removed before it, or any SEEN.
 * Its parameters are `liveChunkParams(since)`.
 */
export const LIVE_CHUNK_IDS =
  "SELECT last_chunk_id FROM mailbox WHERE deleted IS NULL OR deleted > ?" +
  " UNION SELECT last_chunk_id FROM mailbox_message WHERE expunged IS NULL OR expunged > ?" +
  " UNION SELECT chunk_id FROM message AS m JOIN mailbox_message AS mm ON m.id = mm.message_id AND (mm.expunged IS NULL OR mm.expunged > ?)" +
  " UNION SELECT last_chunk_id FROM subscription WHERE unsubscribed IS NULL OR unsubscribed > ?" +
  " UNION SELECT last_chunk_id FROM seen" +
  " UNION SELECT chunk_id FROM sieve WHERE deleted IS NULL OR deleted > ?"
export const liveChunkParams = (since: number): ReadonlyArray<number> => [since, since, since, since, since]

type Q<A> = Effect.Effect<A, BackupIndexError>

export interface IndexQueries {
  /** Every chunk, in id order (`backup_get_chunks`). */
  readonly chunks: Q<ReadonlyArray<ChunkRow>>
  /** The latest chunk, as Cyrus picks it (highest id). */
  readonly latestChunk: Q<ChunkRow | undefined>
  readonly chunkById: (id: number) => Q<ChunkRow | undefined>
  /** Where the member of `chunkId` starts and where the next one (by offset) begins; undefined: no such chunk. */
  readonly memberRange: (chunkId: number) => Q<{ readonly offset: number; readonly next: number | undefined } | undefined>
  /** Chunks still needed by live data (`backup_get_live_chunks`), in id order; `since` = -1 keeps everything. */
  readonly liveChunks: (since: number) => Q<ReadonlyArray<ChunkRow>>
  /** Every mailbox, in table order. */
  readonly mailboxes: Q<ReadonlyArray<MailboxRow>>
  /** The last row with this name (as Cyrus), deleted or not. */
  readonly mailboxByName: (mboxname: string) => Q<MailboxRow | undefined>
  /** The live (not deleted) rows with this name, in row order: the ones an APPLY RENAME moves. */
  readonly liveMailboxesByName: (mboxname: string) => Q<ReadonlyArray<MailboxRow>>
  readonly mailboxByUniqueid: (uniqueid: string) => Q<MailboxRow | undefined>
  /** Mailboxes holding a record of the message. */
  readonly mailboxesByMessage: (guid: string) => Q<ReadonlyArray<MailboxRow>>
  /** Mailboxes last written by a chunk (verify), in id order. */
  readonly mailboxesOfChunk: (chunkId: number) => Q<ReadonlyArray<MailboxRow>>
  /** Records of a mailbox in UID order. */
  readonly records: (mailboxId: number) => Q<ReadonlyArray<RecordRow>>
  /** Records of a mailbox as Cyrus's tools read them (no ORDER BY). */
  readonly recordsInTableOrder: (mailboxId: number) => Q<ReadonlyArray<RecordRow>>
  /** Records last written by a chunk (verify), in id order. */
  readonly recordsOfChunk: (chunkId: number) => Q<ReadonlyArray<RecordRow>>
  /** Every message, in id order. */
  readonly messages: Q<ReadonlyArray<MessageRow>>
  readonly messageByGuid: (guid: string) => Q<MessageRow | undefined>
  /** Messages stored in a chunk (verify), in id order. */
  readonly messagesOfChunk: (chunkId: number) => Q<ReadonlyArray<MessageRow>>
  /** Messages of a chunk with a mailbox_message not expunged before `since`. */
  readonly liveMessages: (chunkId: number, since: number) => Q<ReadonlyArray<MessageRow>>
  /** GUIDs (lower case) of the chunk's messages that some record not expunged before `since` still uses. */
  readonly liveGuids: (chunkId: number, since: number) => Q<ReadonlySet<string>>
  /** The chunk that last wrote the mailbox_message row of each (uniqueid, guid). */
  readonly lastRecordChunks: Q<(uniqueid: string, guid: string) => number | undefined>
  /** The last_chunk_id of each mailbox, by uniqueid (the last row of a uniqueid wins). */
  readonly mailboxLastChunks: Q<ReadonlyMap<string, number>>
  readonly seen: Q<ReadonlyArray<SeenRow>>
  readonly subscriptions: Q<ReadonlyArray<SubscriptionRow>>
  readonly sieve: Q<ReadonlyArray<SieveRow>>
}

/** The queries on the open index `sql` (at `indexPath`, which labels errors). */
export const indexQueries = (sql: Sql, indexPath: string): IndexQueries => {
  const q = (text: string, params: ReadonlyArray<unknown> = []) => query(sql, text, params).pipe(Effect.mapError(indexError(indexPath)))
  const rows = <A>(schema: RowSchema<A>, rest: string, params: ReadonlyArray<unknown> = []) =>
    Effect.map(q(`SELECT ${schema.columns} ${rest};`, params), (rs) => rs.map(schema.decode))
  const last = <A>(schema: RowSchema<A>, rest: string, params: ReadonlyArray<unknown> = []) =>
    Effect.map(rows(schema, rest, params), (rs) => rs[rs.length - 1])
  const records = (where: string, params: ReadonlyArray<unknown>) => rows(recordRow, `FROM ${RECORD_JOIN} ${where}`, params)
  return {
    chunks: rows(chunkRow, "FROM chunk ORDER BY id"),
    latestChunk: last(chunkRow, "FROM chunk WHERE id = (SELECT MAX(id) FROM chunk)"),
    chunkById: (id) => last(chunkRow, "FROM chunk WHERE id = ?", [id]),
    memberRange: (chunkId) =>
      Effect.map(
        q("SELECT offset, (SELECT MIN(offset) FROM chunk AS n WHERE n.offset > c.offset) AS next FROM chunk AS c WHERE id = ?;", [chunkId]),
        (rs) => (rs[0] === undefined ? undefined : { offset: intColumn(rs[0].offset) ?? 0, next: intColumn(rs[0].next) ?? undefined })
      ),
    liveChunks: (since) => rows(chunkRow, `FROM chunk WHERE id IN (${LIVE_CHUNK_IDS}) ORDER BY id`, liveChunkParams(since)),
    mailboxes: rows(mailboxRow, "FROM mailbox AS m"),
    mailboxByName: (mboxname) => last(mailboxRow, "FROM mailbox AS m WHERE mboxname = CAST(? AS TEXT)", [textParam(mboxname)]),
    liveMailboxesByName: (mboxname) =>
      rows(mailboxRow, "FROM mailbox AS m WHERE mboxname = CAST(? AS TEXT) AND deleted IS NULL ORDER BY id", [textParam(mboxname)]),
    mailboxByUniqueid: (uniqueid) => last(mailboxRow, "FROM mailbox AS m WHERE uniqueid = CAST(? AS TEXT)", [textParam(uniqueid)]),
    mailboxesByMessage: (guid) =>
      rows(
        mailboxRow,
        "FROM mailbox AS m JOIN mailbox_message AS mm ON mm.mailbox_id = m.id JOIN message AS msg ON mm.message_id = msg.id WHERE msg.guid = ?",
        [guid]
      ),
    mailboxesOfChunk: (chunkId) => rows(mailboxRow, "FROM mailbox AS m WHERE m.last_chunk_id = ? ORDER BY m.id", [chunkId]),
    records: (mailboxId) => records("WHERE r.mailbox_id = ? ORDER BY r.uid, r.id", [mailboxId]),
    recordsInTableOrder: (mailboxId) => records("WHERE r.mailbox_id = ?", [mailboxId]),
    recordsOfChunk: (chunkId) => records("WHERE r.last_chunk_id = ? ORDER BY r.id", [chunkId]),
    messages: rows(messageRow, "FROM message AS m ORDER BY id"),
    messageByGuid: (guid) => last(messageRow, "FROM message AS m WHERE guid = ?", [guid.toLowerCase()]),
    messagesOfChunk: (chunkId) => rows(messageRow, "FROM message AS m WHERE m.chunk_id = ? ORDER BY m.id", [chunkId]),
    liveMessages: (chunkId, since) =>
      rows(
        { ...messageRow, columns: `DISTINCT ${messageRow.columns}` },
        "FROM message AS m JOIN mailbox_message AS mm ON m.id = mm.message_id AND (mm.expunged IS NULL OR mm.expunged > ?) WHERE chunk_id = ?",
        [since, chunkId]
      ),
    liveGuids: (chunkId, since) =>
      Effect.map(
        q(
          "SELECT DISTINCT m.guid AS guid FROM message AS m JOIN mailbox_message AS mm ON m.id = mm.message_id AND (mm.expunged IS NULL OR mm.expunged > ?) WHERE m.chunk_id = ?;",
          [since, chunkId]
        ),
        (rs) => new Set(rs.map((r) => (textColumn(r.guid) ?? "").toLowerCase()))
      ),
    lastRecordChunks: Effect.map(
      q(
        "SELECT mb.uniqueid AS uniqueid, m.guid AS guid, mm.last_chunk_id AS last FROM mailbox_message AS mm JOIN mailbox AS mb ON mm.mailbox_id = mb.id JOIN message AS m ON mm.message_id = m.id;"
      ),
      (rs) => {
        // the last row for a pair wins, as a single-row lookup by (uniqueid, guid) would see it
        const lastOf = new Map<string, number>()
        for (const r of rs) lastOf.set(`${textColumn(r.uniqueid)}\u0000${(textColumn(r.guid) ?? "").toLowerCase()}`, intColumn(r.last) ?? 0)
        return (uniqueid: string, guid: string) => lastOf.get(`${uniqueid}\u0000${guid.toLowerCase()}`)
      }
    ),
    mailboxLastChunks: Effect.map(q("SELECT uniqueid, last_chunk_id FROM mailbox ORDER BY id;"), (rs) => {
      const m = new Map<string, number>()
      for (const r of rs) m.set(textColumn(r.uniqueid) ?? "", intColumn(r.last_chunk_id) ?? 0)
      return m
    }),
    seen: rows(seenRow, "FROM seen ORDER BY id"),
    subscriptions: rows(subscriptionRow, "FROM subscription ORDER BY id"),
    sieve: rows(sieveRow, "FROM sieve ORDER BY id")
  }
}
