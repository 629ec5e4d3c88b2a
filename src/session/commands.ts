/**
 * Every command a csync session takes, as one tagged union (`Command`) of `Schema` structs:
 * the line commands (AUTHENTICATE, COMPRESS, STARTTLS, NOOP, RESTART, EXIT) and each kind of
 * APPLY and GET. commandReader.ts reads a line into one of them; commandLoop.ts hands each to
 * the handler of its tag.
 *
 * APPLY and GET items are decoded here: a dlist item is first turned into plain data (kvlists
 * → records keyed by the first occurrence of each key, lists → arrays, strings → byte
 * strings, NIL → null, message files kept as File nodes), then decoded with `Schema`. Only the
 * fields backupd itself needs are checked: what the index requires of an item is the Store's
 * business (it answers BAD_PARAMETERS for those), as in Cyrus. A decode failure is a
 * `Refused` (answers.ts), matching the original's checks (docs/architecture.md, "APPLY and GET").
 */
import { Either, Schema } from "effect"
import type { Dlist, File, Item } from "../protocol/dlist/value.js"
import { Refused } from "./answers.js"

type Plain = string | null | File | ReadonlyArray<Plain> | { readonly [key: string]: Plain }

export const toPlain = (d: Dlist): Plain => {
  switch (d._tag) {
    case "Nil":
      return null
    case "Atom":
    case "Flag":
    case "Buf":
      return d.value
    case "Num":
      return d.value.toString()
    case "File":
      return d
    case "List":
      return d.items.map(toPlain)
    case "KvList": {
      const out: Record<string, Plain> = {}
      for (const [k, v] of d.items) if (!(k in out)) out[k] = toPlain(v)
      return out
    }
  }
}

const isItem = (u: unknown): u is Item => typeof u === "object" && u !== null && "key" in u && "value" in u
const isFile = (u: unknown): u is File => typeof u === "object" && u !== null && "_tag" in u && u._tag === "File"

/** The dlist item as parsed (what the store appends), carried along by APPLY commands. */
const ItemValue = Schema.declare(isItem, { identifier: "Item" })
const FileValue = Schema.declare(isFile, { identifier: "File" })
const Str = Schema.String

// ---- line commands -------------------------------------------------------------------------

export const Authenticate = Schema.TaggedStruct("Authenticate", { mechanism: Str, initial: Schema.optional(Str) })
export const Compress = Schema.TaggedStruct("Compress", { algorithm: Str })
export const Starttls = Schema.TaggedStruct("Starttls", {})
export const Noop = Schema.TaggedStruct("Noop", {})
export const Restart = Schema.TaggedStruct("Restart", {})
export const Exit = Schema.TaggedStruct("Exit", {})

// ---- APPLY ---------------------------------------------------------------------------------

export const ApplyMailbox = Schema.TaggedStruct("ApplyMailbox", { item: ItemValue, mboxname: Str, guids: Schema.Array(Str) })
export const ApplyUnmailbox = Schema.TaggedStruct("ApplyUnmailbox", { item: ItemValue, mboxname: Str })
export const ApplyReserve = Schema.TaggedStruct("ApplyReserve", {
  item: ItemValue,
  mboxnames: Schema.Array(Schema.NullOr(Str)),
  guids: Schema.Array(Str)
})
export const ApplyMessage = Schema.TaggedStruct("ApplyMessage", { item: ItemValue, files: Schema.Array(FileValue) })
export const ApplyRename = Schema.TaggedStruct("ApplyRename", { item: ItemValue, oldName: Str, newName: Str })
/** SEEN, SUB, UNSUB, SIEVE, UNSIEVE: one line in the user's backup. */
export const ApplyUserItem = Schema.TaggedStruct("ApplyUserItem", {
  item: ItemValue,
  kind: Schema.Literal("SEEN", "SUB", "UNSUB", "SIEVE", "UNSIEVE"),
  userid: Str
})
export const ApplyUnuser = Schema.TaggedStruct("ApplyUnuser", { item: ItemValue, userid: Str })
/** QUOTA, ACTIVATE_SIEVE, UNACTIVATE_SIEVE: accepted, nothing stored. */
export const ApplyIgnored = Schema.TaggedStruct("ApplyIgnored", { item: ItemValue })

export const ApplyCommand = Schema.Union(ApplyMailbox, ApplyUnmailbox, ApplyReserve, ApplyMessage, ApplyRename, ApplyUserItem, ApplyUnuser, ApplyIgnored)
export type ApplyCommand = typeof ApplyCommand.Type

// ---- GET -----------------------------------------------------------------------------------

export const GetUser = Schema.TaggedStruct("GetUser", { userid: Str })
export const GetMeta = Schema.TaggedStruct("GetMeta", { userid: Str })
export const GetMailboxes = Schema.TaggedStruct("GetMailboxes", { names: Schema.Array(Schema.NullOr(Str)) })
export const GetFullMailbox = Schema.TaggedStruct("GetFullMailbox", { name: Str })
export const GetUniqueids = Schema.TaggedStruct("GetUniqueids", {})

export const GetCommand = Schema.Union(GetUser, GetMeta, GetMailboxes, GetFullMailbox, GetUniqueids)
export type GetCommand = typeof GetCommand.Type

// ---- all -----------------------------------------------------------------------------------

export const Command = Schema.Union(Authenticate, Compress, Starttls, Noop, Restart, Exit, ApplyCommand, GetCommand)
export type Command = typeof Command.Type

// ---- decoding APPLY and GET items ----------------------------------------------------------

const MailboxArgs = Schema.Struct({
  MBOXNAME: Str,
  RECORD: Schema.optional(Schema.Array(Schema.Union(Schema.Struct({ GUID: Schema.optional(Schema.NullOr(Str)) }), Schema.Unknown)))
})
const ReserveArgs = Schema.Struct({
  PARTITION: Str,
  MBOXNAME: Schema.NonEmptyArray(Schema.NullOr(Str)),
  GUID: Schema.NonEmptyArray(Schema.NullOr(Str))
})
const RenameArgs = Schema.Struct({ OLDMBOXNAME: Str, NEWMBOXNAME: Str })
const UserArgs = Schema.Struct({ USERID: Str })
const SubArgs = Schema.Struct({ USERID: Str, MBOXNAME: Str })

const refused = (code: Refused["code"], item: Item) => Either.left(new Refused({ code, detail: item.key }))

const decode = <A, I>(schema: Schema.Schema<A, I>, value: Plain, item: Item): Either.Either<A, Refused> =>
  Either.mapLeft(Schema.decodeUnknownEither(schema)(value), () => new Refused({ code: "protocol", detail: item.key }))

const guidOf = (record: unknown): ReadonlyArray<string> =>
  typeof record === "object" && record !== null && "GUID" in record && typeof record.GUID === "string" ? [record.GUID.toLowerCase()] : []

/**
 * `APPLY <key> <dlist>` (the key compared case-sensitively, as Cyrus does). The commands with
 * lists (MAILBOX, RESERVE, MESSAGE: up to a batch of 1,024 GUIDs) are made without checking
 * their fields again (`make(…, true)`): they come from a decode or a filter of the right type.
 */
export const decodeApply = (item: Item): Either.Either<ApplyCommand, Refused> => {
  const plain = toPlain(item.value)
  switch (item.key) {
    case "MAILBOX":
      return Either.map(decode(MailboxArgs, plain, item), (a) =>
        ApplyMailbox.make({ item, mboxname: a.MBOXNAME, guids: (a.RECORD ?? []).flatMap(guidOf) }, true)
      )
    case "UNMAILBOX":
      return typeof plain === "string" ? Either.right(ApplyUnmailbox.make({ item, mboxname: plain })) : refused("protocol", item)
    case "RESERVE":
      return Either.map(decode(ReserveArgs, plain, item), (a) =>
        ApplyReserve.make({
          item,
          mboxnames: a.MBOXNAME,
          guids: a.GUID.flatMap((g) => (g !== null && /^[0-9a-fA-F]{40}$/.test(g) ? [g.toLowerCase()] : []))
        }, true)
      )
    case "MESSAGE": {
      const files = item.value._tag === "List" ? item.value.items.filter(isFile) : []
      return files.length === 0 ? refused("protocol", item) : Either.right(ApplyMessage.make({ item, files }, true))
    }
    case "RENAME":
      return Either.map(decode(RenameArgs, plain, item), (a) => ApplyRename.make({ item, oldName: a.OLDMBOXNAME, newName: a.NEWMBOXNAME }))
    case "SEEN":
    case "SIEVE":
    case "UNSIEVE": {
      const kind = item.key
      return Either.map(decode(UserArgs, plain, item), (a) => ApplyUserItem.make({ item, kind, userid: a.USERID }))
    }
    case "SUB":
    case "UNSUB": {
      const kind = item.key
      return Either.map(decode(SubArgs, plain, item), (a) => ApplyUserItem.make({ item, kind, userid: a.USERID }))
    }
    case "QUOTA":
    case "ACTIVATE_SIEVE":
    case "UNACTIVATE_SIEVE":
      return Either.right(ApplyIgnored.make({ item }))
    case "UNUSER":
      return typeof plain === "string" ? Either.right(ApplyUnuser.make({ item, userid: plain })) : refused("bad-parameters", item)
    default:
      return refused("protocol", item)
  }
}

/** `GET <key> <dlist>` (the key upper-cased, as Cyrus does). */
export const decodeGet = (item: Item): Either.Either<GetCommand, Refused> => {
  const plain = toPlain(item.value)
  switch (item.key.toUpperCase()) {
    case "USER":
      return typeof plain === "string" ? Either.right(GetUser.make({ userid: plain })) : refused("bad-parameters", item)
    case "META":
      return typeof plain === "string" ? Either.right(GetMeta.make({ userid: plain })) : refused("bad-parameters", item)
    case "MAILBOXES":
      return Array.isArray(plain)
        ? Either.right(GetMailboxes.make({ names: plain.map((p: Plain) => (typeof p === "string" ? p : null)) }))
        : typeof plain === "string"
          ? Either.right(GetMailboxes.make({ names: [plain] }))
          : refused("bad-parameters", item)
    case "FULLMAILBOX":
      return typeof plain === "string" ? Either.right(GetFullMailbox.make({ name: plain })) : refused("bad-parameters", item)
    case "UNIQUEIDS":
      return Either.right(GetUniqueids.make({}))
    default:
      return refused("protocol", item)
  }
}

/** The staged message files an APPLY item brought (removed once the command is answered). */
export const stagedFiles = (item: Item): ReadonlyArray<File> => (item.value._tag === "List" ? item.value.items.filter(isFile) : [])
