/**
 * A planned mailbox as the `MAILBOX` dlist restore sends (`RESTORE MAILBOX %(...)`): the
 * fields and their order as Cyrus's backup_mailbox_to_dlist, missing strings as NIL, the
 * stored flag and annotation texts parsed back into lists (unparsable ones left out, as
 * Cyrus does), and `\Expunged` added to the flags of expunged records.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Effect } from "effect"
import { ByteReader } from "../../protocol/ByteReader.js"
import { parseValue } from "../../protocol/dlist/parse.js"
import { atom, flag, item, kvlist, list, nil, num, type Dlist, type Item } from "../../protocol/dlist/value.js"
import type { PlannedMailbox, PlannedRecord } from "./plan.js"

const str = (s: string | null): Dlist => (s === null ? nil : atom(s))

/** A stored keyless dlist text back to a value; undefined when it does not parse. */
export const parseStoredList = (text: string): Effect.Effect<Dlist | undefined> =>
  text === ""
    ? Effect.succeed(undefined)
    : parseValue(ByteReader.fromBytes(Buffer.from(text, "latin1"))).pipe(
      Effect.map((p) => (p.value._tag === "List" || p.value._tag === "KvList" ? p.value : undefined)),
      Effect.provide(NodeFileSystem.layer),
      Effect.orElseSucceed(() => undefined)
    )

const recordDlist = (r: PlannedRecord): Effect.Effect<Dlist> =>
  Effect.gen(function*() {
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

/** `MAILBOX %(...)` (or `LOCAL_MAILBOX` for `-L`). */
export const mailboxItem = (mb: PlannedMailbox, key: "MAILBOX" | "LOCAL_MAILBOX" = "MAILBOX"): Effect.Effect<Item> =>
  Effect.gen(function*() {
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
    fields.push(["RECORD", list(yield* Effect.forEach(mb.records, recordDlist))])
    return item(key, kvlist(fields))
  })
