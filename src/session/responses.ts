/**
 * Untagged GET answers built from index rows, field for field in the order Cyrus 3.6.1's
 * backupd prints them (wire.md §5).
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { ByteReader } from "../protocol/ByteReader.js"
import { parseValue } from "../protocol/dlist/parse.js"
import { printItem } from "../protocol/dlist/print.js"
import { atom, flag, item, kvlist, list, nil, num, type Dlist } from "../protocol/dlist/value.js"
import type { MailboxWithRecords, RecordRow, SeenRow, SieveRow, SubscriptionRow } from "../store/backupReader.js"

/** A stored keyless dlist text (flags, annotations) back as a value; undefined if it doesn't parse. */
export const reparse = (text: string): Effect.Effect<Dlist | undefined, never, FileSystem.FileSystem> =>
  text === ""
    ? Effect.succeed(undefined)
    : parseValue(ByteReader.fromBytes(Buffer.from(text, "latin1")), { files: { _tag: "Discard" } }).pipe(
        Effect.map((p) => p.value),
        Effect.orElseSucceed(() => undefined)
      )

const str = (s: string | null): Dlist => (s === null ? nil : atom(s))

const recordValue = (r: RecordRow): Effect.Effect<Dlist, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const flags = yield* reparse(r.flags)
    const flagItems = flags !== undefined && flags._tag === "List" ? [...flags.items] : []
    if (r.expunged !== null) flagItems.push(flag("\\Expunged"))
    const fields: Array<readonly [string, Dlist]> = [
      ["UID", num(r.uid)],
      ["MODSEQ", num(r.modseq)],
      ["LAST_UPDATED", num(r.lastUpdated)],
      ["INTERNALDATE", num(r.internaldate)],
      ["GUID", atom(r.guid)],
      ["SIZE", num(r.size)],
      ["FLAGS", list(flagItems)]
    ]
    const annots = yield* reparse(r.annotations)
    if (annots !== undefined) fields.push(["ANNOTATIONS", annots])
    return kvlist(fields)
  })

/** `MAILBOX %(...)`, with RECORD when the rows carry records (GET FULLMAILBOX). */
export const mailboxLine = (m: MailboxWithRecords, withRecords: boolean): Effect.Effect<string, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fields: Array<readonly [string, Dlist]> = [
      ["UNIQUEID", atom(m.uniqueid)],
      ["MBOXNAME", atom(m.mboxname)],
      ["MBOXTYPE", str(m.mboxtype)],
      ["LAST_UID", num(m.lastUid)],
      ["HIGHESTMODSEQ", num(m.highestmodseq)],
      ["RECENTUID", num(m.recentuid)],
      ["RECENTTIME", num(m.recenttime)],
      ["LAST_APPENDDATE", num(m.lastAppenddate)],
      ["POP3_LAST_LOGIN", num(m.pop3LastLogin)],
      ["POP3_SHOW_AFTER", num(m.pop3ShowAfter)],
      ["UIDVALIDITY", num(m.uidvalidity)],
      ["PARTITION", str(m.partition)],
      ["ACL", str(m.acl)],
      ["OPTIONS", str(m.options)],
      ["SYNC_CRC", num(m.syncCrc)],
      ["SYNC_CRC_ANNOT", num(m.syncCrcAnnot)],
      ["QUOTAROOT", str(m.quotaroot)],
      ["XCONVMODSEQ", num(m.xconvmodseq)]
    ]
    const annots = yield* reparse(m.annotations)
    if (annots !== undefined) fields.push(["ANNOTATIONS", annots])
    if (withRecords) fields.push(["RECORD", list(yield* Effect.forEach(m.records, recordValue))])
    return untagged("MAILBOX", kvlist(fields))
  })

export const seenLine = (s: SeenRow): string =>
  untagged(
    "SEEN",
    kvlist([
      ["UNIQUEID", atom(s.uniqueid)],
      ["LASTREAD", num(s.lastread)],
      ["LASTUID", num(s.lastuid)],
      ["LASTCHANGE", num(s.lastchange)],
      ["SEENUIDS", atom(s.seenuids)]
    ])
  )

/** `LSUB (...)` of the live subscriptions, or undefined when there are none. */
export const lsubLine = (subs: ReadonlyArray<SubscriptionRow>): string | undefined => {
  const live = subs.filter((s) => s.unsubscribed === null)
  return live.length === 0 ? undefined : untagged("LSUB", list(live.map((s) => atom(s.mboxname))))
}

export const sieveLines = (rows: ReadonlyArray<SieveRow>): ReadonlyArray<string> =>
  rows
    .filter((r) => r.deleted === null)
    .map((r) =>
      untagged(
        "SIEVE",
        kvlist([
          ["FILENAME", atom(r.filename)],
          ["LAST_UPDATE", num(r.lastUpdate)],
          ["GUID", atom(r.guid)],
          ["ISACTIVE", num(0)]
        ])
      )
    )

export const missingLine = (guids: ReadonlyArray<string>): string => untagged("MISSING", list(guids.map(atom)))

const untagged = (key: string, value: Dlist): string => "* " + printItem(item(key, value)).toString("latin1")
