/**
 * APPLY and GET items decoded into typed commands with `Schema`. A dlist item is first
 * turned into plain data (kvlists → records keyed by the first occurrence of each key,
 * lists → arrays, strings → byte strings, NIL → null, message files kept as File nodes), then
 * decoded. Only the fields backupd itself needs are checked here: what the index requires of
 * an item is the Store's business (it answers BAD_PARAMETERS for those), as in Cyrus.
 *
 * A decode failure is a protocol error (`NO IMAP_PROTOCOL_ERROR`), matching the original's
 * checks (docs/architecture.md, "APPLY and GET").
 */
import { Either, Schema } from "effect"
import type { Dlist, File, Item } from "../protocol/dlist/value.js"

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

const Str = Schema.String

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

export type ApplyCommand =
  | { readonly _tag: "Mailbox"; readonly item: Item; readonly mboxname: string; readonly guids: ReadonlyArray<string> }
  | { readonly _tag: "Unmailbox"; readonly item: Item; readonly mboxname: string }
  | { readonly _tag: "Reserve"; readonly item: Item; readonly mboxnames: ReadonlyArray<string | null>; readonly guids: ReadonlyArray<string> }
  | { readonly _tag: "Message"; readonly item: Item; readonly files: ReadonlyArray<File> }
  | { readonly _tag: "Rename"; readonly item: Item; readonly oldName: string; readonly newName: string }
  | { readonly _tag: "UserItem"; readonly item: Item; readonly kind: "SEEN" | "SUB" | "UNSUB" | "SIEVE" | "UNSIEVE"; readonly userid: string }
  | { readonly _tag: "Unuser"; readonly item: Item; readonly userid: string }
  | { readonly _tag: "Ignored"; readonly item: Item }

export type GetCommand =
  | { readonly _tag: "User"; readonly userid: string }
  | { readonly _tag: "Meta"; readonly userid: string }
  | { readonly _tag: "Mailboxes"; readonly names: ReadonlyArray<string | null> }
  | { readonly _tag: "FullMailbox"; readonly name: string }
  | { readonly _tag: "Uniqueids" }

/** Why an item was refused before anything was done. */
export type DecodeFailure = "protocol" | "bad-parameters"

const decode = <A, I>(schema: Schema.Schema<A, I>, value: Plain) =>
  Either.mapLeft(Schema.decodeUnknownEither(schema)(value), (): DecodeFailure => "protocol")

const isFile = (d: Dlist): d is File => d._tag === "File"

export const decodeApply = (item: Item): Either.Either<ApplyCommand, DecodeFailure> => {
  const plain = toPlain(item.value)
  switch (item.key) {
    case "MAILBOX":
      return Either.map(decode(MailboxArgs, plain), (a) => ({
        _tag: "Mailbox" as const,
        item,
        mboxname: a.MBOXNAME,
        guids: (a.RECORD ?? []).flatMap((r) => {
          const g = (r as { GUID?: unknown }).GUID
          return typeof g === "string" ? [g.toLowerCase()] : []
        })
      }))
    case "UNMAILBOX":
      return typeof plain === "string"
        ? Either.right({ _tag: "Unmailbox", item, mboxname: plain })
        : Either.left("protocol")
    case "RESERVE":
      return Either.map(decode(ReserveArgs, plain), (a) => ({
        _tag: "Reserve" as const,
        item,
        mboxnames: a.MBOXNAME,
        guids: a.GUID.flatMap((g) => (g !== null && /^[0-9a-fA-F]{40}$/.test(g) ? [g.toLowerCase()] : []))
      }))
    case "MESSAGE": {
      const files = item.value._tag === "List" ? item.value.items.filter(isFile) : []
      return files.length === 0 ? Either.left("protocol") : Either.right({ _tag: "Message", item, files })
    }
    case "RENAME":
      return Either.map(decode(RenameArgs, plain), (a) => ({ _tag: "Rename" as const, item, oldName: a.OLDMBOXNAME, newName: a.NEWMBOXNAME }))
    case "SEEN":
    case "SIEVE":
    case "UNSIEVE":
      return Either.map(decode(UserArgs, plain), (a) => ({ _tag: "UserItem" as const, item, kind: item.key as "SEEN", userid: a.USERID }))
    case "SUB":
    case "UNSUB":
      return Either.map(decode(SubArgs, plain), (a) => ({ _tag: "UserItem" as const, item, kind: item.key as "SUB", userid: a.USERID }))
    case "QUOTA":
    case "ACTIVATE_SIEVE":
    case "UNACTIVATE_SIEVE":
      return Either.right({ _tag: "Ignored", item })
    case "UNUSER":
      return typeof plain === "string" ? Either.right({ _tag: "Unuser", item, userid: plain }) : Either.left("bad-parameters")
    default:
      return Either.left("protocol")
  }
}

export const decodeGet = (item: Item): Either.Either<GetCommand, DecodeFailure> => {
  const plain = toPlain(item.value)
  switch (item.key.toUpperCase()) {
    case "USER":
      return typeof plain === "string" ? Either.right({ _tag: "User", userid: plain }) : Either.left("bad-parameters")
    case "META":
      return typeof plain === "string" ? Either.right({ _tag: "Meta", userid: plain }) : Either.left("bad-parameters")
    case "MAILBOXES":
      return Array.isArray(plain)
        ? Either.right({ _tag: "Mailboxes", names: (plain as ReadonlyArray<Plain>).map((p) => (typeof p === "string" ? p : null)) })
        : typeof plain === "string"
          ? Either.right({ _tag: "Mailboxes", names: [plain] })
          : Either.left("bad-parameters")
    case "FULLMAILBOX":
      return typeof plain === "string" ? Either.right({ _tag: "FullMailbox", name: plain }) : Either.left("bad-parameters")
    case "UNIQUEIDS":
      return Either.right({ _tag: "Uniqueids" })
    default:
      return Either.left("protocol")
  }
}

