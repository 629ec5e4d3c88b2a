/**
 * Cyrus internal mailbox names and whose backup they belong to (docs/architecture.md,
 * "Whose backup"). Internal names look like `[domain!]user.anne.Sent`, with `.` as the
 * hierarchy separator and `^` standing for a `.` inside a component; deleted mailboxes
 * (delayed delete) are `DELETED.user.anne.Trash.5F3A1B2C`.
 */

/** The backup key of shared (non-user) mailboxes. */
export const SHARED_KEY = "%SHARED"

export interface NamingOptions {
  /** `defaultdomain` (default `internal`): this domain is dropped from userids. */
  readonly defaultDomain: string
  /** `deletedprefix` (default `DELETED`). */
  readonly deletedPrefix: string
}

export const defaultNaming: NamingOptions = { defaultDomain: "internal", deletedPrefix: "DELETED" }

export interface ParsedMboxname {
  readonly domain: string | undefined
  /** The owner's local part, or undefined for a shared mailbox. */
  readonly localpart: string | undefined
  /** The folder path below the owner (or the whole path of a shared mailbox), `^` decoded. */
  readonly boxes: ReadonlyArray<string>
  /** Whether the name is in the deleted namespace. */
  readonly deleted: boolean
}

export const parseMboxname = (name: string, naming: NamingOptions = defaultNaming): ParsedMboxname => {
  let rest = name
  let domain: string | undefined
  const bang = rest.indexOf("!")
  if (bang >= 0) {
    domain = rest.slice(0, bang)
    rest = rest.slice(bang + 1)
    if (domain === naming.defaultDomain || domain === "") domain = undefined
  }
  let parts = rest
    .split(".")
    .filter((p) => p.length > 0)
    .map((p) => p.replaceAll("^", "."))
  let deleted = false
  if (parts.length >= 3 && parts[0] === naming.deletedPrefix) {
    deleted = true
    parts = parts.slice(1, -1)
  }
  if (parts.length >= 2 && parts[0] === "user") {
    return { domain, localpart: parts[1], boxes: parts.slice(2), deleted }
  }
  return { domain, localpart: undefined, boxes: parts, deleted }
}

/** The userid owning a mailbox (`anne` or `anne@example.com`), or undefined if shared. */
export const useridOfMboxname = (name: string, naming: NamingOptions = defaultNaming): string | undefined => {
  const p = parseMboxname(name, naming)
  if (p.localpart === undefined) return undefined
  return p.domain === undefined ? p.localpart : `${p.localpart}@${p.domain}`
}

/** The key under which a mailbox's backup is stored in backups.db. */
export const backupKeyOfMboxname = (name: string, naming: NamingOptions = defaultNaming): string =>
  useridOfMboxname(name, naming) ?? SHARED_KEY

/** A userid as backupd keys it: `local@domain`, with the default domain dropped. */
export const canonicalUserid = (userid: string, naming: NamingOptions = defaultNaming): string => {
  const at = userid.lastIndexOf("@")
  if (at < 0) return userid
  const domain = userid.slice(at + 1)
  return domain === naming.defaultDomain || domain === "" ? userid.slice(0, at) : userid
}

/** The internal name of a user's INBOX: `user.anne`, or `example.com!user.anne`. */
export const inboxOfUserid = (userid: string, naming: NamingOptions = defaultNaming): string => {
  const canon = canonicalUserid(userid, naming)
  const at = canon.lastIndexOf("@")
  const local = (at < 0 ? canon : canon.slice(0, at)).replaceAll(".", "^")
  return at < 0 ? `user.${local}` : `${canon.slice(at + 1)}!user.${local}`
}
