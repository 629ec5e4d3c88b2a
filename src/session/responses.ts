/**
 * Untagged GET answers built from index rows, field for field in the order Cyrus 3.6.1's
 * backupd prints them (docs/architecture.md, "APPLY and GET").
 */
import { Effect } from "effect"
import { printItem } from "../protocol/dlist/print.js"
import { atom, item, kvlist, list, num, type Dlist } from "../protocol/dlist/value.js"
import { mailboxDlist, type MailboxWithRecords, type SeenRow, type SieveRow, type SubscriptionRow } from "../store/index.js"

/** `MAILBOX %(...)`, with RECORD when asked for (GET FULLMAILBOX). */
export const mailboxLine = (m: MailboxWithRecords, withRecords: boolean): Effect.Effect<string> =>
  Effect.map(
    mailboxDlist(m, withRecords ? m.records.map((r) => ({ ...r, expunged: r.expunged !== null })) : undefined),
    (value) => untagged("MAILBOX", value)
  )

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
