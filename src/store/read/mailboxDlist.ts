/**
 * A mailbox's index rows as the `MAILBOX` dlist Cyrus's `backup_mailbox_to_dlist` builds: the
 * fields in its order, missing strings as NIL, the stored flag and annotation texts parsed back
 * into lists (unparsable ones left out), and `\Expunged` added to expunged records' flags.
 * backupd answers GET with it; restore sends it to the destination.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect } from "effect"
import { ByteReader } from "../../protocol/ByteReader.js"
import { parseValue } from "../../protocol/dlist/parse.js"
import { atom, flag, kvlist, list, nil, num, type Dlist } from "../../protocol/dlist/value.js"
import type { MailboxRow, RecordRow } from "../index/rows.js"

/** The mailbox row's fields the dlist carries; the uniqueid may be dropped (restore without -U). */
export type MailboxFields = Omit<MailboxRow, "id" | "lastChunkId" | "deleted" | "uniqueid"> & {
  readonly uniqueid: string | null
}

/** A record's fields the dlist carries, with expunged as a flag. */
export type RecordFields = Pick<
  RecordRow,
  "uid" | "modseq" | "lastUpdated" | "internaldate" | "guid" | "size" | "flags" | "annotations"
> & { readonly expunged: boolean }

const str = (s: string | null): Dlist => (s === null ? nil : atom(s))

/** A stored keyless list text back to a value; undefined when it does not parse as a list. */
export const parseStoredList = (text: string): Effect.Effect<Dlist | undefined> =>
  text === ""
    ? Effect.succeed(undefined)
    : parseValue(ByteReader.fromBytes(Buffer.from(text, "latin1"))).pipe(
        Effect.map((p) => (p.value._tag === "List" || p.value._tag === "KvList" ? p.value : undefined)),
        Effect.provide(NodeFileSystem.layer),
        Effect.orElseSucceed(() => undefined)
      )

export const recordDlist = (r: RecordFields): Effect.Effect<Dlist> =>
  Effect.gen(function* () {
    const parsed = yield* parseStoredList(r.flags)
    const flags: Array<Dlist> = parsed !== undefined && parsed._tag === "List" ? [...parsed.items] : []
    if (r.expunged) flags.push(flag("\\Expunged"))
    const fields: Array<readonly [string, Dlist]> = [
      ["UID", num(r.uid)],
      ["MODSEQ", num(r.modseq)],
      ["LAST_UPDATED", num(r.lastUpdated)],
      ["INTERNALDATE", num(r.internaldate)],
      ["GUID", atom(r.guid)],
      ["SIZE", num(r.size)],
      ["FLAGS", list(flags)]
    ]
    const annots = yield* parseStoredList(r.annotations)
    if (annots !== undefined) fields.push(["ANNOTATIONS", annots])
    return kvlist(fields)
  })

/** The MAILBOX kvlist; with `records`, a RECORD list is added (GET FULLMAILBOX, restore). */
export const mailboxDlist = (mb: MailboxFields, records?: ReadonlyArray<RecordFields>): Effect.Effect<Dlist> =>
  Effect.gen(function* () {
    const fields: Array<readonly [string, Dlist]> = [
      ["UNIQUEID", str(mb.uniqueid)],
      ["MBOXNAME", atom(mb.mboxname)],
      ["MBOXTYPE", str(mb.mboxtype)],
      ["LAST_UID", num(mb.lastUid)],
      ["HIGHESTMODSEQ", num(mb.highestmodseq)],
      ["RECENTUID", num(mb.recentuid)],
      ["RECENTTIME", num(mb.recenttime)],
      ["LAST_APPENDDATE", num(mb.lastAppenddate)],
      ["POP3_LAST_LOGIN", num(mb.pop3LastLogin)],
      ["POP3_SHOW_AFTER", num(mb.pop3ShowAfter)],
      ["UIDVALIDITY", num(mb.uidvalidity)],
      ["PARTITION", str(mb.partition)],
      ["ACL", str(mb.acl)],
      ["OPTIONS", str(mb.options)],
      ["SYNC_CRC", num(mb.syncCrc)],
      ["SYNC_CRC_ANNOT", num(mb.syncCrcAnnot)],
      ["QUOTAROOT", str(mb.quotaroot)],
      ["XCONVMODSEQ", num(mb.xconvmodseq)]
    ]
    const annots = yield* parseStoredList(mb.annotations)
    if (annots !== undefined) fields.push(["ANNOTATIONS", annots])
    if (records !== undefined) fields.push(["RECORD", list(yield* Effect.forEach(records, recordDlist))])
    return kvlist(fields)
  })
