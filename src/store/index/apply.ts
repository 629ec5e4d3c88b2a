/**
 * How one APPLY item changes the index (Cyrus's `backup_index`). Runs inside the caller's
 * transaction; a failure leaves the whole APPLY to be rolled back by the caller, so the
 * half-applied cases of the original (SIEVE, MAILBOX) cannot happen here.
 */
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { Dlist, Item } from "../../protocol/dlist/value.js"
import { child, getAtom, getDate, getList, getNum32, getNum64, listItems, scalar } from "../format/dlistFields.js"
import { printValueText, upperAscii } from "../format/dlistText.js"
import { AppendRejected, type BackupIndexError } from "../errors.js"
import { indexError, int64Param, intColumn, query, run, textParam, type Sql } from "./db.js"

/** Where the line being indexed lives. */
export interface LineContext {
  readonly chunkId: number
  /** The line's timestamp ("now" for deletion stamps). */
  readonly ts: number
  /** Uncompressed byte offset of the line within its chunk. */
  readonly offset: number
}

type IndexResult = Effect.Effect<void, AppendRejected | BackupIndexError>

const reject = (key: string, reason: AppendRejected["reason"], message: string) =>
  Effect.fail(new AppendRejected({ key, reason, message }))

/** Upsert: UPDATE, and INSERT when it changed nothing. */
const upsert = (sql: Sql, update: string, updateParams: ReadonlyArray<unknown>, insert: string, insertParams: ReadonlyArray<unknown>) =>
  Effect.flatMap(run(sql, update, updateParams), (r) => (r.changes === 0 ? Effect.asVoid(run(sql, insert, insertParams)) : Effect.void))

const T = "CAST(? AS TEXT)"

/** Applies one item's index changes. `indexPath` only labels errors. */
export const indexApply = (sql: Sql, indexPath: string, it: Item, ctx: LineContext): IndexResult => {
  const key = upperAscii(it.key)
  const eff: Effect.Effect<void, AppendRejected | unknown> = (() => {
    switch (key) {
      case "MAILBOX":
        return indexMailbox(sql, it.value, ctx)
      case "UNMAILBOX":
        return indexUnmailbox(sql, it.value, ctx)
      case "MESSAGE":
        return indexMessage(sql, it.value, ctx)
      case "RENAME":
        return indexRename(sql, it.value)
      case "RESERVE":
        return Effect.void
      case "SEEN":
        return indexSeen(sql, it.value, ctx)
      case "SUB":
      case "UNSUB":
        return indexSub(sql, it.value, ctx, key === "UNSUB")
      case "SIEVE":
      case "UNSIEVE":
        return indexSieve(sql, it.value, ctx, key === "UNSIEVE")
      case "EXPUNGE":
        return indexExpunge(sql, it.value, ctx)
      default:
        return reject(key, "protocol", `unknown APPLY ${key}`)
    }
  })()
  return eff.pipe(
    Effect.mapError((e) => (e instanceof AppendRejected ? e : indexError(indexPath)(e)))
  ) as IndexResult
}

const indexMailbox = (sql: Sql, d: Dlist, ctx: LineContext) =>
  Effect.gen(function*() {
    const bad = (field: string) => reject("MAILBOX", "bad-parameters", `missing or invalid ${field}`)
    const uniqueid = getAtom(d, "UNIQUEID")
    if (uniqueid === undefined) return yield* bad("UNIQUEID")
    const mboxname = getAtom(d, "MBOXNAME")
    if (mboxname === undefined) return yield* bad("MBOXNAME")
    const lastUid = getNum32(d, "LAST_UID")
    if (lastUid === undefined) return yield* bad("LAST_UID")
    const highestmodseq = getNum64(d, "HIGHESTMODSEQ")
    if (highestmodseq === undefined) return yield* bad("HIGHESTMODSEQ")
    const recentuid = getNum32(d, "RECENTUID")
    if (recentuid === undefined) return yield* bad("RECENTUID")
    const recenttime = getDate(d, "RECENTTIME")
    if (recenttime === undefined) return yield* bad("RECENTTIME")
    const lastAppenddate = getDate(d, "LAST_APPENDDATE")
    if (lastAppenddate === undefined) return yield* bad("LAST_APPENDDATE")
    const pop3LastLogin = getDate(d, "POP3_LAST_LOGIN")
    if (pop3LastLogin === undefined) return yield* bad("POP3_LAST_LOGIN")
    const uidvalidity = getNum32(d, "UIDVALIDITY")
    if (uidvalidity === undefined) return yield* bad("UIDVALIDITY")
    const partition = getAtom(d, "PARTITION")
    if (partition === undefined) return yield* bad("PARTITION")
    const acl = getAtom(d, "ACL")
    if (acl === undefined) return yield* bad("ACL")
    const options = getAtom(d, "OPTIONS")
    if (options === undefined) return yield* bad("OPTIONS")
    const record = getList(d, "RECORD")
    if (record === undefined) return yield* bad("RECORD")

    const annotations = getList(d, "ANNOTATIONS")
    const values = [
      ctx.chunkId,
      textParam(mboxname),
      textParam(getAtom(d, "MBOXTYPE") ?? null),
      lastUid,
      int64Param(highestmodseq),
      recentuid,
      recenttime,
      lastAppenddate,
      pop3LastLogin,
      getDate(d, "POP3_SHOW_AFTER") ?? 0,
      uidvalidity,
      textParam(partition),
      textParam(acl),
      textParam(options),
      getNum32(d, "SYNC_CRC") ?? 0,
      getNum32(d, "SYNC_CRC_ANNOT") ?? 0,
      null, // quotaroot: Cyrus never stores it (gaps G8)
      int64Param(getNum64(d, "XCONVMODSEQ") ?? 0n),
      textParam(annotations === undefined ? "" : printValueText(annotations))
    ]
    yield* upsert(
      sql,
      `UPDATE mailbox SET last_chunk_id = ?, mboxname = ${T}, mboxtype = ${T}, last_uid = ?, highestmodseq = ?, recentuid = ?, recenttime = ?, last_appenddate = ?, pop3_last_login = ?, pop3_show_after = ?, uidvalidity = ?, partition = ${T}, acl = ${T}, options = ${T}, sync_crc = ?, sync_crc_annot = ?, quotaroot = ${T}, xconvmodseq = ?, annotations = ${T}, deleted = NULL WHERE uniqueid = ${T};`,
      [...values, textParam(uniqueid)],
      `INSERT INTO mailbox (last_chunk_id, mboxname, mboxtype, last_uid, highestmodseq, recentuid, recenttime, last_appenddate, pop3_last_login, pop3_show_after, uidvalidity, partition, acl, options, sync_crc, sync_crc_annot, quotaroot, xconvmodseq, annotations, deleted, uniqueid) VALUES (?, ${T}, ${T}, ?, ?, ?, ?, ?, ?, ?, ?, ${T}, ${T}, ${T}, ?, ?, ${T}, ?, ${T}, NULL, ${T});`,
      [...values, textParam(uniqueid)]
    )

    const records = listItems(record)
    if (records.length === 0) return
    const idRows = yield* query<{ id: bigint }>(sql, `SELECT id FROM mailbox WHERE uniqueid = ${T};`, [textParam(uniqueid)])
    const mailboxId = intColumn(idRows[0]?.id)
    for (const rec of records) {
      const uid = getNum32(rec, "UID")
      const modseq = getNum64(rec, "MODSEQ")
      const lastUpdated = getNum32(rec, "LAST_UPDATED")
      const internaldate = getNum32(rec, "INTERNALDATE")
      const guid = getAtom(rec, "GUID")
      if (uid === undefined || modseq === undefined || lastUpdated === undefined || internaldate === undefined || guid === undefined) {
        return yield* reject("MAILBOX", "internal", `record of ${mboxname} lacks UID, MODSEQ, LAST_UPDATED, INTERNALDATE or GUID`)
      }
      const flags = getList(rec, "FLAGS")
      let expunged: number | null = null
      let flagsText = ""
      if (flags !== undefined) {
        const kept = flags._tag === "List" ? flags.items.filter((f) => scalar(f) !== "\\Expunged") : listItems(flags)
        if (kept.length !== listItems(flags).length) expunged = ctx.ts
        flagsText = printValueText(flags._tag === "List" ? { _tag: "List", items: kept } : flags)
      }
      const recAnnots = getList(rec, "ANNOTATIONS")
      const annotText = recAnnots === undefined ? "" : printValueText(recAnnots)
      // One statement per record: the message's id looked up, the row inserted or updated (an
      // expunge time once set is kept). A record whose message the backup does not hold selects
      // nothing and is skipped, as Cyrus skips it (gaps G10).
      yield* run(
        sql,
        `INSERT INTO mailbox_message (mailbox_id, message_id, last_chunk_id, uid, modseq, last_updated, flags, internaldate, annotations, expunged) ` +
          `SELECT ?, m.id, ?, ?, ?, ?, ${T}, ?, ${T}, ? FROM message AS m WHERE m.guid = ? ` +
          `ON CONFLICT (mailbox_id, message_id) DO UPDATE SET last_chunk_id = excluded.last_chunk_id, uid = excluded.uid, modseq = excluded.modseq, ` +
          `last_updated = excluded.last_updated, flags = excluded.flags, internaldate = excluded.internaldate, annotations = excluded.annotations, ` +
          `expunged = COALESCE(mailbox_message.expunged, excluded.expunged);`,
        [mailboxId, ctx.chunkId, uid, int64Param(modseq), lastUpdated, textParam(flagsText), internaldate, textParam(annotText), expunged, guid]
      )
    }
  })

const indexUnmailbox = (sql: Sql, d: Dlist, ctx: LineContext) => {
  const name = scalar(d) ?? getAtom(d, "MBOXNAME")
  if (name === undefined) return reject("UNMAILBOX", "bad-parameters", "missing mailbox name")
  return Effect.asVoid(run(sql, `UPDATE mailbox SET deleted = ? WHERE mboxname = ${T};`, [ctx.ts, textParam(name)]))
}

const indexMessage = (sql: Sql, d: Dlist, ctx: LineContext) =>
  Effect.forEach(
    listItems(d).filter((c) => c._tag === "File"),
    (f) => {
      if (f._tag !== "File") return Effect.void
      const guid = f.guid.toLowerCase()
      // one statement; a message stored again points to its latest copy
      return Effect.asVoid(
        run(
          sql,
          `INSERT INTO message (guid, partition, chunk_id, offset, size) VALUES (?, ${T}, ?, ?, ?) ` +
            `ON CONFLICT (guid) DO UPDATE SET partition = excluded.partition, chunk_id = excluded.chunk_id, offset = excluded.offset, size = excluded.size;`,
          [guid, textParam(f.partition), ctx.chunkId, ctx.offset, f.size]
        )
      )
    },
    { discard: true }
  )

const indexRename = (sql: Sql, d: Dlist) => {
  const oldName = getAtom(d, "OLDMBOXNAME")
  const newName = getAtom(d, "NEWMBOXNAME")
  const partition = getAtom(d, "PARTITION")
  const uidvalidity = getNum32(d, "UIDVALIDITY")
  if (oldName === undefined || newName === undefined || partition === undefined || uidvalidity === undefined) {
    return reject("RENAME", "bad-parameters", "needs OLDMBOXNAME, NEWMBOXNAME, PARTITION, UIDVALIDITY")
  }
  // As Cyrus: by name, and last_chunk_id left alone (a RENAME is no MAILBOX line, which is what
  // verify looks for in that chunk). backupd writes a MAILBOX line under the new name right
  // after it (renameLines.ts), which moves last_chunk_id. Unlike Cyrus, a deleted mailbox that
  // once had the old name keeps it: only the live one moves.
  return Effect.asVoid(
    run(sql, `UPDATE mailbox SET mboxname = ${T}, partition = ${T}, uidvalidity = ? WHERE mboxname = ${T} AND deleted IS NULL;`, [
      textParam(newName),
      textParam(partition),
      uidvalidity,
      textParam(oldName)
    ])
  )
}

const indexSeen = (sql: Sql, d: Dlist, ctx: LineContext) => {
  const uniqueid = getAtom(d, "UNIQUEID")
  const lastread = getDate(d, "LASTREAD")
  const lastuid = getNum32(d, "LASTUID")
  const lastchange = getDate(d, "LASTCHANGE")
  const seenuids = getAtom(d, "SEENUIDS")
  if (uniqueid === undefined || lastread === undefined || lastuid === undefined || lastchange === undefined || seenuids === undefined) {
    return reject("SEEN", "bad-parameters", "needs UNIQUEID, LASTREAD, LASTUID, LASTCHANGE, SEENUIDS")
  }
  return upsert(
    sql,
    `UPDATE seen SET last_chunk_id = ?, lastread = ?, lastuid = ?, lastchange = ?, seenuids = ${T} WHERE uniqueid = ${T};`,
    [ctx.chunkId, lastread, lastuid, lastchange, textParam(seenuids), textParam(uniqueid)],
    `INSERT INTO seen (last_chunk_id, uniqueid, lastread, lastuid, lastchange, seenuids) VALUES (?, ${T}, ?, ?, ?, ${T});`,
    [ctx.chunkId, textParam(uniqueid), lastread, lastuid, lastchange, textParam(seenuids)]
  )
}

const indexSub = (sql: Sql, d: Dlist, ctx: LineContext, unsub: boolean) => {
  const mboxname = getAtom(d, "MBOXNAME")
  if (mboxname === undefined) return reject(unsub ? "UNSUB" : "SUB", "bad-parameters", "needs MBOXNAME")
  const unsubscribed = unsub ? ctx.ts : null
  return upsert(
    sql,
    `UPDATE subscription SET last_chunk_id = ?, unsubscribed = ? WHERE mboxname = ${T};`,
    [ctx.chunkId, unsubscribed, textParam(mboxname)],
    `INSERT INTO subscription (last_chunk_id, mboxname, unsubscribed) VALUES (?, ${T}, ?);`,
    [ctx.chunkId, textParam(mboxname), unsubscribed]
  )
}

const indexSieve = (sql: Sql, d: Dlist, ctx: LineContext, unsieve: boolean) =>
  Effect.gen(function*() {
    const key = unsieve ? "UNSIEVE" : "SIEVE"
    const filename = getAtom(d, "FILENAME")
    if (filename === undefined) return yield* reject(key, "bad-parameters", "needs FILENAME")
    let insert: { lastUpdate: number; guid: string } | undefined
    if (!unsieve) {
      const lastUpdate = getDate(d, "LAST_UPDATE")
      const content = child(d, "CONTENT")
      const bytes = content !== undefined && (content._tag === "Atom" || content._tag === "Buf") ? content.value : undefined
      if (lastUpdate === undefined || bytes === undefined) return yield* reject(key, "bad-parameters", "needs LAST_UPDATE and CONTENT")
      insert = { lastUpdate, guid: createHash("sha1").update(Buffer.from(bytes, "latin1")).digest("hex") }
    }
    yield* run(sql, `UPDATE sieve SET deleted = ? WHERE filename = ${T} AND deleted IS NULL;`, [ctx.ts, textParam(filename)])
    if (insert !== undefined) {
      yield* run(sql, `INSERT INTO sieve (chunk_id, last_update, filename, guid, offset) VALUES (?, ?, ${T}, ?, ?);`, [
        ctx.chunkId,
        insert.lastUpdate,
        textParam(filename),
        insert.guid,
        ctx.offset
      ])
    }
  })

const indexExpunge = (sql: Sql, d: Dlist, ctx: LineContext) =>
  Effect.gen(function*() {
    const mboxname = getAtom(d, "MBOXNAME")
    const uniqueid = getAtom(d, "UNIQUEID")
    const uids = getList(d, "UID")
    if (mboxname === undefined || uniqueid === undefined || uids === undefined) {
      return yield* reject("EXPUNGE", "bad-parameters", "needs MBOXNAME, UNIQUEID, UID")
    }
    const rows = yield* query<{ id: bigint; uniqueid: Buffer }>(
      sql,
      `SELECT id, CAST(uniqueid AS BLOB) AS uniqueid FROM mailbox WHERE mboxname = ${T};`,
      [textParam(mboxname)]
    )
    const row = rows[rows.length - 1]
    if (row === undefined) return yield* reject("EXPUNGE", "nonexistent", `no mailbox ${mboxname}`)
    if (row.uniqueid.toString("latin1") !== uniqueid) return yield* reject("EXPUNGE", "bad-parameters", "uniqueid mismatch")
    for (const u of listItems(uids)) {
      const uid = scalar(u)
      if (uid === undefined || !/^[0-9]+$/.test(uid)) continue
      yield* run(sql, "UPDATE mailbox_message SET expunged = ? WHERE mailbox_id = ? AND uid = ?;", [ctx.ts, row.id, Number(BigInt(uid) & 0xffffffffn)])
    }
  })
