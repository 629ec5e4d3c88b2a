/**
 * Reading a backup: index queries (mailboxes, records, messages, seen, subscriptions, sieve,
 * chunks) and message bytes streamed out of their chunk. A reader works through a held lock;
 * `openForRead` takes it like Cyrus's tools do, and the writer exposes one on its own lock.
 */
import { Effect, Option, Scope, Stream } from "effect"
import { allChunks, type ChunkRow } from "../index/ChunkState.js"
import { lockDataFile, type LockedDataFile } from "../dataFileLock.js"
import { BackupCorrupt, type BackupIndexError, type OpenError } from "../errors.js"
import { bigColumn, indexError, intColumn, openIndexDb, query, textColumn, textParam, type Sql } from "../index/db.js"
import { inflateMember } from "../format/memberReader.js"
import { scanMessage } from "./messageScan.js"
import { checkIndexPresent, indexPathOf } from "../openBackup.js"

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

export interface MailboxWithRecords extends MailboxRow {
  readonly records: ReadonlyArray<RecordRow>
}

export interface MessageRow {
  readonly id: number
  readonly guid: string
  readonly partition: string | null
  readonly chunkId: number
  /** Offset of the MESSAGE line in its chunk's uncompressed data. */
  readonly offset: number
  readonly size: number
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

export interface SubscriptionRow {
  readonly id: number
  readonly lastChunkId: number
  readonly mboxname: string
  readonly unsubscribed: number | null
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

export type ReadError = BackupIndexError | BackupCorrupt

export interface BackupReader {
  readonly mailboxes: (opts?: { readonly withRecords?: boolean }) => Effect.Effect<ReadonlyArray<MailboxWithRecords>, ReadError>
  /** The last row with this name (as Cyrus), deleted or not. */
  readonly mailboxByName: (mboxname: string, opts?: { readonly withRecords?: boolean }) => Effect.Effect<Option.Option<MailboxWithRecords>, ReadError>
  readonly mailboxByUniqueid: (uniqueid: string, opts?: { readonly withRecords?: boolean }) => Effect.Effect<Option.Option<MailboxWithRecords>, ReadError>
  /** Records of a mailbox, in UID order. */
  readonly records: (mailboxId: number) => Effect.Effect<ReadonlyArray<RecordRow>, ReadError>
  readonly messages: () => Effect.Effect<ReadonlyArray<MessageRow>, ReadError>
  readonly messageByGuid: (guid: string) => Effect.Effect<Option.Option<MessageRow>, ReadError>
  /** The message's bytes, streamed from its chunk (nothing else of the file is inflated). */
  readonly messageBytes: (guid: string) => Stream.Stream<Uint8Array, ReadError>
  /** A chunk's uncompressed data, streamed. */
  readonly chunkData: (chunkId: number) => Stream.Stream<Uint8Array, ReadError>
  readonly seen: () => Effect.Effect<ReadonlyArray<SeenRow>, ReadError>
  readonly subscriptions: () => Effect.Effect<ReadonlyArray<SubscriptionRow>, ReadError>
  readonly sieve: () => Effect.Effect<ReadonlyArray<SieveRow>, ReadError>
  readonly chunks: () => Effect.Effect<ReadonlyArray<ChunkRow>, ReadError>
}

const MAILBOX_FIELDS =
  "m.id, m.last_chunk_id, CAST(m.uniqueid AS BLOB) AS uniqueid, CAST(m.mboxname AS BLOB) AS mboxname, CAST(m.mboxtype AS BLOB) AS mboxtype, m.last_uid, m.highestmodseq, m.recentuid, m.recenttime, m.last_appenddate, m.pop3_last_login, m.pop3_show_after, m.uidvalidity, CAST(m.partition AS BLOB) AS partition, CAST(m.acl AS BLOB) AS acl, CAST(m.options AS BLOB) AS options, m.sync_crc, m.sync_crc_annot, CAST(m.quotaroot AS BLOB) AS quotaroot, m.xconvmodseq, CAST(m.annotations AS BLOB) AS annotations, m.deleted"

const RECORD_FIELDS =
  "r.id, r.mailbox_id, r.message_id, r.last_chunk_id, r.uid, r.modseq, r.last_updated, CAST(r.flags AS BLOB) AS flags, r.internaldate, CAST(r.annotations AS BLOB) AS annotations, r.expunged, m.guid, m.size, CAST(mb.uniqueid AS BLOB) AS mailbox_uniqueid"

const RECORD_JOIN = "mailbox_message AS r JOIN message AS m ON r.message_id = m.id JOIN mailbox AS mb ON r.mailbox_id = mb.id"

const toMailbox = (r: Record<string, unknown>): MailboxRow => ({
  id: intColumn(r.id)!,
  lastChunkId: intColumn(r.last_chunk_id)!,
  uniqueid: textColumn(r.uniqueid) ?? "",
  mboxname: textColumn(r.mboxname) ?? "",
  mboxtype: textColumn(r.mboxtype),
  lastUid: intColumn(r.last_uid) ?? 0,
  highestmodseq: BigInt.asUintN(64, bigColumn(r.highestmodseq) ?? 0n),
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
  xconvmodseq: BigInt.asUintN(64, bigColumn(r.xconvmodseq) ?? 0n),
  annotations: textColumn(r.annotations) ?? "",
  deleted: intColumn(r.deleted)
})

const toRecord = (r: Record<string, unknown>): RecordRow => ({
  id: intColumn(r.id)!,
  mailboxId: intColumn(r.mailbox_id)!,
  messageId: intColumn(r.message_id)!,
  lastChunkId: intColumn(r.last_chunk_id)!,
  uid: intColumn(r.uid) ?? 0,
  modseq: BigInt.asUintN(64, bigColumn(r.modseq) ?? 0n),
  lastUpdated: intColumn(r.last_updated) ?? 0,
  flags: textColumn(r.flags) ?? "",
  internaldate: intColumn(r.internaldate) ?? 0,
  annotations: textColumn(r.annotations) ?? "",
  expunged: intColumn(r.expunged),
  guid: String(r.guid),
  size: intColumn(r.size) ?? 0,
  mailboxUniqueid: textColumn(r.mailbox_uniqueid) ?? ""
})

const toMessage = (r: Record<string, unknown>): MessageRow => ({
  id: intColumn(r.id)!,
  guid: String(r.guid),
  partition: textColumn(r.partition),
  chunkId: intColumn(r.chunk_id) ?? 0,
  offset: intColumn(r.offset) ?? 0,
  size: intColumn(r.size) ?? 0
})

const MESSAGE_FIELDS = "m.id, m.guid, CAST(m.partition AS BLOB) AS partition, m.chunk_id, m.offset, m.size"

/** A reader over an already locked data file and open index. */
export const makeReader = (file: LockedDataFile, sql: Sql, indexPath: string): BackupReader => {
  const q = (text: string, params: ReadonlyArray<unknown> = []) =>
    query(sql, text, params).pipe(Effect.mapError(indexError(indexPath)))

  const records = (mailboxId: number) =>
    Effect.map(q(`SELECT ${RECORD_FIELDS} FROM ${RECORD_JOIN} WHERE r.mailbox_id = ? ORDER BY r.uid, r.id;`, [mailboxId]), (rows) => rows.map(toRecord))

  const withRecords = (rows: ReadonlyArray<MailboxRow>, want: boolean | undefined) =>
    Effect.forEach(rows, (m) => (want ? Effect.map(records(m.id), (rs) => ({ ...m, records: rs })) : Effect.succeed({ ...m, records: [] })))

  const mailboxWhere = (where: string, params: ReadonlyArray<unknown>, want: boolean | undefined) =>
    Effect.flatMap(q(`SELECT ${MAILBOX_FIELDS} FROM mailbox AS m ${where};`, params), (rows) => {
      const last = rows[rows.length - 1]
      return last === undefined
        ? Effect.succeed(Option.none())
        : Effect.map(withRecords([toMailbox(last)], want), (xs) => Option.some(xs[0]!))
    })

  const messageByGuid = (guid: string) =>
    Effect.map(q(`SELECT ${MESSAGE_FIELDS} FROM message AS m WHERE guid = ?;`, [guid.toLowerCase()]), (rows) =>
      rows[0] === undefined ? Option.none<MessageRow>() : Option.some(toMessage(rows[0]))
    )

  /** Where the member of `chunkId` starts and the next one begins (if any). */
  const memberRange = (chunkId: number) =>
    Effect.flatMap(
      q("SELECT offset, (SELECT MIN(offset) FROM chunk AS n WHERE n.offset > c.offset) AS next FROM chunk AS c WHERE id = ?;", [chunkId]),
      (rows) =>
        rows[0] === undefined
          ? Effect.fail(new BackupCorrupt({ path: file.path, message: `no chunk ${chunkId}` }))
          : Effect.succeed({ offset: intColumn(rows[0].offset) ?? 0, next: intColumn(rows[0].next) ?? undefined })
    )

  const streamOf = (make: () => AsyncIterable<Buffer>) =>
    Stream.fromAsyncIterable(make(), (e) => new BackupCorrupt({ path: file.path, message: (e as Error).message ?? String(e) }))

  const chunkData = (chunkId: number): Stream.Stream<Uint8Array, ReadError> =>
    Stream.unwrap(
      Effect.map(memberRange(chunkId), ({ offset, next }) =>
        streamOf(() => ({ [Symbol.asyncIterator]: () => inflateMember(file.fd, offset, next) }))
      )
    )

  const messageBytes = (guid: string): Stream.Stream<Uint8Array, ReadError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const msg = yield* messageByGuid(guid)
        if (Option.isNone(msg)) return yield* Effect.fail(new BackupCorrupt({ path: file.path, message: `no message ${guid}` }))
        const { offset, next } = yield* memberRange(msg.value.chunkId)
        return streamOf(() => scanMessage(inflateMember(file.fd, offset, next), msg.value.offset, guid))
      })
    )

  return {
    mailboxes: (opts) =>
      Effect.flatMap(q(`SELECT ${MAILBOX_FIELDS} FROM mailbox AS m;`), (rows) => withRecords(rows.map(toMailbox), opts?.withRecords)),
    mailboxByName: (name, opts) => mailboxWhere(`WHERE mboxname = CAST(? AS TEXT)`, [textParam(name)], opts?.withRecords),
    mailboxByUniqueid: (uniqueid, opts) => mailboxWhere(`WHERE uniqueid = CAST(? AS TEXT)`, [textParam(uniqueid)], opts?.withRecords),
    records,
    messages: () => Effect.map(q(`SELECT ${MESSAGE_FIELDS} FROM message AS m ORDER BY id;`), (rows) => rows.map(toMessage)),
    messageByGuid,
    messageBytes,
    chunkData,
    seen: () =>
      Effect.map(
        q("SELECT id, last_chunk_id, CAST(uniqueid AS BLOB) AS uniqueid, lastread, lastuid, lastchange, CAST(seenuids AS BLOB) AS seenuids FROM seen ORDER BY id;"),
        (rows) =>
          rows.map((r) => ({
            id: intColumn(r.id)!,
            lastChunkId: intColumn(r.last_chunk_id)!,
            uniqueid: textColumn(r.uniqueid) ?? "",
            lastread: intColumn(r.lastread) ?? 0,
            lastuid: intColumn(r.lastuid) ?? 0,
            lastchange: intColumn(r.lastchange) ?? 0,
            seenuids: textColumn(r.seenuids) ?? ""
          }))
      ),
    subscriptions: () =>
      Effect.map(q("SELECT id, last_chunk_id, CAST(mboxname AS BLOB) AS mboxname, unsubscribed FROM subscription ORDER BY id;"), (rows) =>
        rows.map((r) => ({
          id: intColumn(r.id)!,
          lastChunkId: intColumn(r.last_chunk_id)!,
          mboxname: textColumn(r.mboxname) ?? "",
          unsubscribed: intColumn(r.unsubscribed)
        }))
      ),
    sieve: () =>
      Effect.map(q("SELECT id, chunk_id, last_update, CAST(filename AS BLOB) AS filename, guid, offset, deleted FROM sieve ORDER BY id;"), (rows) =>
        rows.map((r) => ({
          id: intColumn(r.id)!,
          chunkId: intColumn(r.chunk_id)!,
          lastUpdate: intColumn(r.last_update) ?? 0,
          filename: textColumn(r.filename) ?? "",
          guid: String(r.guid),
          offset: intColumn(r.offset) ?? 0,
          deleted: intColumn(r.deleted)
        }))
      ),
    chunks: () => allChunks(sql).pipe(Effect.mapError(indexError(indexPath)))
  }
}

export interface OpenForReadOptions {
  /** Wait for the lock (cyr_backup) instead of failing at once (restore, ctl_backups). */
  readonly wait?: boolean
}

/** Locks the data file and opens its index for reading, for the lifetime of the scope. */
export const openForRead = (dataPath: string, options: OpenForReadOptions = {}): Effect.Effect<BackupReader, OpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = yield* lockDataFile(dataPath, { wait: options.wait ?? false })
    yield* checkIndexPresent(file)
    const indexPath = indexPathOf(dataPath)
    const sql = yield* openIndexDb(indexPath)
    return makeReader(file, sql, indexPath)
  })

