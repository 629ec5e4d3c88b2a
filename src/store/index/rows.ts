/**
 * The rows of a backup's index as the store reads them: one row type, one column list and
 * one mapper per table (schema.ts has the tables). Every query that reads rows (queries.ts)
 * selects a row's `columns` and maps with its `decode`, so a table is read the same way
 * everywhere: by backupd's GET answers, restore, verify, compaction and the tools.
 *
 * Text columns are selected as `CAST(col AS BLOB)` and come back as byte strings (latin1);
 * integers come back as numbers, 0 where the column is NULL, except where NULL means
 * something (an end time not yet set, a deletion that did not happen), and modseqs as
 * unsigned 64-bit bigints. A consumer that needs C's reading of a value (the tools print
 * `sqlite3_column_int` results) converts it where it prints it.
 */
import { bigColumn, intColumn, textColumn } from "./db.js"

/** What a query selects for a row type (with the table aliases it names) and how it maps it. */
export interface RowSchema<A> {
  readonly columns: string
  readonly decode: (row: Record<string, unknown>) => A
}

const u64 = (v: unknown): bigint => BigInt.asUintN(64, bigColumn(v) ?? 0n)

export interface ChunkRow {
  readonly id: number
  readonly tsStart: number
  readonly tsEnd: number | null
  readonly offset: number
  readonly length: number | null
  readonly fileSha1: string | null
  readonly dataSha1: string | null
}

/** A chunk row (table `chunk`, no alias). */
export const chunkRow: RowSchema<ChunkRow> = {
  columns: "id, ts_start, ts_end, offset, length, file_sha1, data_sha1",
  decode: (r) => ({
    id: intColumn(r.id)!,
    tsStart: intColumn(r.ts_start) ?? 0,
    tsEnd: intColumn(r.ts_end),
    offset: intColumn(r.offset) ?? 0,
    length: intColumn(r.length),
    fileSha1: textColumn(r.file_sha1),
    dataSha1: textColumn(r.data_sha1)
  })
}

export interface MailboxRow {
  readonly id: number
  readonly lastChunkId: number
  readonly uniqueid: string
  readonly mboxname: string
  readonly mboxtype: string | null
  readonly lastUid: number
  readonly highestmodseq: bigint
  readonly recentuid: number
  readonly recenttime: number
  readonly lastAppenddate: number
  readonly pop3LastLogin: number
  readonly pop3ShowAfter: number
  readonly uidvalidity: number
  readonly partition: string | null
  readonly acl: string | null
  readonly options: string | null
  readonly syncCrc: number
  readonly syncCrcAnnot: number
  readonly quotaroot: string | null
  readonly xconvmodseq: bigint
  /** Keyless dlist text of the mailbox annotations, or "". */
  readonly annotations: string
  /** Deletion time (UNMAILBOX), or null while live. */
  readonly deleted: number | null
}

/** A mailbox row (table `mailbox AS m`). */
export const mailboxRow: RowSchema<MailboxRow> = {
  columns:
    "m.id, m.last_chunk_id, CAST(m.uniqueid AS BLOB) AS uniqueid, CAST(m.mboxname AS BLOB) AS mboxname, CAST(m.mboxtype AS BLOB) AS mboxtype, m.last_uid, m.highestmodseq, m.recentuid, m.recenttime, m.last_appenddate, m.pop3_last_login, m.pop3_show_after, m.uidvalidity, CAST(m.partition AS BLOB) AS partition, CAST(m.acl AS BLOB) AS acl, CAST(m.options AS BLOB) AS options, m.sync_crc, m.sync_crc_annot, CAST(m.quotaroot AS BLOB) AS quotaroot, m.xconvmodseq, CAST(m.annotations AS BLOB) AS annotations, m.deleted",
  decode: (r) => ({
    id: intColumn(r.id)!,
    lastChunkId: intColumn(r.last_chunk_id)!,
    uniqueid: textColumn(r.uniqueid) ?? "",
    mboxname: textColumn(r.mboxname) ?? "",
    mboxtype: textColumn(r.mboxtype),
    lastUid: intColumn(r.last_uid) ?? 0,
    highestmodseq: u64(r.highestmodseq),
    recentuid: intColumn(r.recentuid) ?? 0,
    recenttime: intColumn(r.recenttime) ?? 0,
    lastAppenddate: intColumn(r.last_appenddate) ?? 0,
    pop3LastLogin: intColumn(r.pop3_last_login) ?? 0,
    pop3ShowAfter: intColumn(r.pop3_show_after) ?? 0,
    uidvalidity: intColumn(r.uidvalidity) ?? 0,
    partition: textColumn(r.partition),
    acl: textColumn(r.acl),
    options: textColumn(r.options),
    syncCrc: intColumn(r.sync_crc) ?? 0,
    syncCrcAnnot: intColumn(r.sync_crc_annot) ?? 0,
    quotaroot: textColumn(r.quotaroot),
    xconvmodseq: u64(r.xconvmodseq),
    annotations: textColumn(r.annotations) ?? "",
    deleted: intColumn(r.deleted)
  })
}

export interface RecordRow {
  readonly id: number
  readonly mailboxId: number
  readonly messageId: number
  readonly lastChunkId: number
  readonly uid: number
  readonly modseq: bigint
  readonly lastUpdated: number
  /** Keyless dlist text, e.g. `(\Seen)`, or "" if the record had no FLAGS. */
  readonly flags: string
  readonly internaldate: number
  readonly annotations: string
  readonly expunged: number | null
  readonly guid: string
  readonly size: number
  readonly mailboxUniqueid: string
}

/** The tables a record row is read from: `mailbox_message AS r` with its message `m` and mailbox `mb`. */
export const RECORD_JOIN = "mailbox_message AS r JOIN message AS m ON r.message_id = m.id JOIN mailbox AS mb ON r.mailbox_id = mb.id"

/** A mailbox_message row with its message's GUID and size and its mailbox's uniqueid (`FROM ${RECORD_JOIN}`). */
export const recordRow: RowSchema<RecordRow> = {
  columns:
    "r.id, r.mailbox_id, r.message_id, r.last_chunk_id, r.uid, r.modseq, r.last_updated, CAST(r.flags AS BLOB) AS flags, r.internaldate, CAST(r.annotations AS BLOB) AS annotations, r.expunged, m.guid, m.size, CAST(mb.uniqueid AS BLOB) AS mailbox_uniqueid",
  decode: (r) => ({
    id: intColumn(r.id)!,
    mailboxId: intColumn(r.mailbox_id)!,
    messageId: intColumn(r.message_id)!,
    lastChunkId: intColumn(r.last_chunk_id)!,
    uid: intColumn(r.uid) ?? 0,
    modseq: u64(r.modseq),
    lastUpdated: intColumn(r.last_updated) ?? 0,
    flags: textColumn(r.flags) ?? "",
    internaldate: intColumn(r.internaldate) ?? 0,
    annotations: textColumn(r.annotations) ?? "",
    expunged: intColumn(r.expunged),
    guid: String(r.guid),
    size: intColumn(r.size) ?? 0,
    mailboxUniqueid: textColumn(r.mailbox_uniqueid) ?? ""
  })
}

export interface MessageRow {
  readonly id: number
  readonly guid: string
  readonly partition: string | null
  readonly chunkId: number
  /** Offset of the MESSAGE line in its chunk's uncompressed data (null: not recorded). */
  readonly offset: number | null
  readonly size: number
}

/** A message row (table `message AS m`). */
export const messageRow: RowSchema<MessageRow> = {
  columns: "m.id, m.guid, CAST(m.partition AS BLOB) AS partition, m.chunk_id, m.offset, m.size",
  decode: (r) => ({
    id: intColumn(r.id)!,
    guid: String(r.guid),
    partition: textColumn(r.partition),
    chunkId: intColumn(r.chunk_id) ?? 0,
    offset: intColumn(r.offset),
    size: intColumn(r.size) ?? 0
  })
}

export interface SeenRow {
  readonly id: number
  readonly lastChunkId: number
  readonly uniqueid: string
  readonly lastread: number
  readonly lastuid: number
  readonly lastchange: number
  readonly seenuids: string
}

/** A seen row (table `seen`, no alias). */
export const seenRow: RowSchema<SeenRow> = {
  columns: "id, last_chunk_id, CAST(uniqueid AS BLOB) AS uniqueid, lastread, lastuid, lastchange, CAST(seenuids AS BLOB) AS seenuids",
  decode: (r) => ({
    id: intColumn(r.id)!,
    lastChunkId: intColumn(r.last_chunk_id)!,
    uniqueid: textColumn(r.uniqueid) ?? "",
    lastread: intColumn(r.lastread) ?? 0,
    lastuid: intColumn(r.lastuid) ?? 0,
    lastchange: intColumn(r.lastchange) ?? 0,
    seenuids: textColumn(r.seenuids) ?? ""
  })
}

export interface SubscriptionRow {
  readonly id: number
  readonly lastChunkId: number
  readonly mboxname: string
  readonly unsubscribed: number | null
}

/** A subscription row (table `subscription`, no alias). */
export const subscriptionRow: RowSchema<SubscriptionRow> = {
  columns: "id, last_chunk_id, CAST(mboxname AS BLOB) AS mboxname, unsubscribed",
  decode: (r) => ({
    id: intColumn(r.id)!,
    lastChunkId: intColumn(r.last_chunk_id)!,
    mboxname: textColumn(r.mboxname) ?? "",
    unsubscribed: intColumn(r.unsubscribed)
  })
}

export interface SieveRow {
  readonly id: number
  readonly chunkId: number
  readonly lastUpdate: number
  readonly filename: string
  readonly guid: string
  readonly offset: number
  readonly deleted: number | null
}

/** A sieve row (table `sieve`, no alias). */
export const sieveRow: RowSchema<SieveRow> = {
  columns: "id, chunk_id, last_update, CAST(filename AS BLOB) AS filename, guid, offset, deleted",
  decode: (r) => ({
    id: intColumn(r.id)!,
    chunkId: intColumn(r.chunk_id)!,
    lastUpdate: intColumn(r.last_update) ?? 0,
    filename: textColumn(r.filename) ?? "",
    guid: String(r.guid),
    offset: intColumn(r.offset) ?? 0,
    deleted: intColumn(r.deleted)
  })
}
