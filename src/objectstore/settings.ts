/**
 * The `backup_objectstore_*` options (our extension keys, read as imapd.conf overflow
 * entries, so `<service>_backup_objectstore_*` overrides them like any other key) and the
 * files they name. Reading the options is pure and cheap; the files are read only when the
 * store is first used (see ObjectStore.ts), so a program with the feature off, or one that
 * never touches the store, pays nothing. docs/configuration.md documents every key.
 */
import fs from "node:fs/promises"
import { Either, Option } from "effect"
import type { CyrusConfig } from "../config/Config.js"
import { parseDuration } from "../config/optionTypes.js"
import type { MemberDigestOptions } from "../store/index.js"
import { ObjectStoreConfigError } from "./errors.js"

export type LockMode = "GOVERNANCE" | "COMPLIANCE"

export interface ObjectStoreSettings {
  /** `backup_objectstore_endpoint`, e.g. `http://127.0.0.1:17480` (no trailing slash). */
  readonly endpoint: string
  readonly bucket: string
  /** `backup_objectstore_prefix`, normalised: empty, or ending in exactly one `/`. */
  readonly prefix: string
  readonly region: string
  /** Path of the file with the access key id and the secret, one per line. */
  readonly credentialsFile: string
  /** age recipients file: set = every object is encrypted before it leaves the host. */
  readonly recipientsFile: string | undefined
  /** age identity file: needed only to read encrypted objects back (pull, verify -O full). */
  readonly identityFile: string | undefined
  /** Object Lock retention of new objects, in seconds (0: none); used when the bucket has Object Lock. */
  readonly lockSeconds: number
  readonly lockMode: LockMode
  /** `backup_retention` in seconds: how long dropped objects and superseded manifests are kept. */
  readonly retentionSeconds: number
  /** servername: recorded in manifests as the writing host. */
  readonly host: string
}

/**
 * Multipart part size of the clear layout (bytes): the slices whose SHA-256 backupd's writer
 * records at the seal, and the parts an upload that uses those digests sends.
 */
export const MEMBER_PART_SIZE = 8 * 1024 * 1024

/** The keys, in the order docs/configuration.md lists them. */
export const OBJECTSTORE_KEYS = [
  "backup_objectstore_endpoint",
  "backup_objectstore_bucket",
  "backup_objectstore_prefix",
  "backup_objectstore_region",
  "backup_objectstore_credentials",
  "backup_objectstore_recipients",
  "backup_objectstore_identity",
  "backup_objectstore_lock_days",
  "backup_objectstore_lock_mode"
] as const

const bad = (subject: string, message: string) => Either.left(new ObjectStoreConfigError({ subject, message: `${subject}: ${message}` }))

// S3 bucket naming rules (path-style addressing; dots allowed)
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

/**
 * The object-store settings of this configuration: `None` when no `backup_objectstore_*` key
 * is set (the feature is off), an error when some are set but they do not make a usable store.
 */
export const objectStoreSettings = (config: CyrusConfig): Either.Either<Option.Option<ObjectStoreSettings>, ObjectStoreConfigError> => {
  const get = (key: (typeof OBJECTSTORE_KEYS)[number]) => {
    const v = config.overflow(key)
    return v === undefined || v.trim() === "" ? undefined : v.trim()
  }
  if (OBJECTSTORE_KEYS.every((k) => get(k) === undefined)) return Either.right(Option.none())

  const endpointText = get("backup_objectstore_endpoint")
  if (endpointText === undefined) return bad("backup_objectstore_endpoint", "required when any backup_objectstore_* option is set")
  let url: URL
  try {
    url = new URL(endpointText)
  } catch {
    return bad("backup_objectstore_endpoint", `not a URL: "${endpointText}"`)
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return bad("backup_objectstore_endpoint", `must be an http:// or https:// URL, not "${endpointText}"`)
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    return bad("backup_objectstore_endpoint", "must not carry a query, fragment or credentials")
  }
  const endpoint = endpointText.replace(/\/+$/, "")

  const bucket = get("backup_objectstore_bucket")
  if (bucket === undefined) return bad("backup_objectstore_bucket", "required when backup_objectstore_endpoint is set")
  if (!BUCKET.test(bucket) || bucket.includes("..")) {
    return bad("backup_objectstore_bucket", `"${bucket}" is not a valid bucket name (3-63 of a-z 0-9 . -)`)
  }

  const rawPrefix = (get("backup_objectstore_prefix") ?? "").replace(/^\/+/, "").replace(/\/+$/, "")
  if (rawPrefix.split("/").some((p) => p === "." || p === "..") || rawPrefix.includes("//")) {
    return bad("backup_objectstore_prefix", `"${rawPrefix}" has an empty, "." or ".." component`)
  }
  const prefix = rawPrefix === "" ? "" : `${rawPrefix}/`

  const credentialsFile = get("backup_objectstore_credentials")
  if (credentialsFile === undefined) return bad("backup_objectstore_credentials", "required when backup_objectstore_endpoint is set")

  const lockText = get("backup_objectstore_lock_days")
  let lockSeconds = config.backupRetention
  if (lockText !== undefined) {
    const v = parseDuration(lockText, "d")
    if (v === undefined || v < 0) return bad("backup_objectstore_lock_days", `invalid duration "${lockText}" (e.g. 30, 30d, 12h)`)
    lockSeconds = v
  }

  const modeText = (get("backup_objectstore_lock_mode") ?? "compliance").toLowerCase()
  if (modeText !== "compliance" && modeText !== "governance") {
    return bad("backup_objectstore_lock_mode", `"${modeText}" is neither compliance nor governance`)
  }

  return Either.right(
    Option.some({
      endpoint,
      bucket,
      prefix,
      region: get("backup_objectstore_region") ?? "us-east-1",
      credentialsFile,
      recipientsFile: get("backup_objectstore_recipients"),
      identityFile: get("backup_objectstore_identity"),
      lockSeconds,
      lockMode: modeText === "compliance" ? "COMPLIANCE" : "GOVERNANCE",
      retentionSeconds: Math.max(0, config.backupRetention),
      host: config.serverName
    })
  )
}

/**
 * What a writer of this configuration records for the uploads (store's `memberDigests`): with
 * object storage on in the clear layout, each member's SHA-256s at `MEMBER_PART_SIZE`
 * (docs/storage.md, "Our table: `backupd_member_digest`"), so that no upload reads a chunk twice.
 * The encrypted layout names objects by a keyed hash and sends ciphertext, which a writer cannot
 * know: nothing.
 */
export const memberDigestsFor = (config: CyrusConfig): MemberDigestOptions | undefined =>
  Either.match(objectStoreSettings(config), {
    onLeft: () => undefined,
    onRight: (o) => (Option.isSome(o) && o.value.recipientsFile === undefined ? { partSize: MEMBER_PART_SIZE } : undefined)
  })

/** Whether the configuration turns object storage on, and validly (what the local reports add pending figures for). */
export const objectStoreConfigured = (config: CyrusConfig): boolean =>
  Either.match(objectStoreSettings(config), { onLeft: () => false, onRight: Option.isSome })

// --- the files ----------------------------------------------------------------------------

const readText = async (subject: string, file: string): Promise<string> => {
  try {
    return await fs.readFile(file, "utf8")
  } catch (e) {
    throw new ObjectStoreConfigError({ subject, message: `${subject}: cannot read ${file}: ${(e as Error).message}` })
  }
}

/** Refuses a secret file that group or others may read (as ssh does for private keys). */
const readSecret = async (subject: string, file: string): Promise<string> => {
  let mode: number
  try {
    mode = (await fs.stat(file)).mode
  } catch (e) {
    throw new ObjectStoreConfigError({ subject, message: `${subject}: cannot read ${file}: ${(e as Error).message}` })
  }
  if ((mode & 0o044) !== 0) {
    throw new ObjectStoreConfigError({
      subject,
      message: `${subject}: ${file} is readable by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); refusing it (chmod 600 ${file})`
    })
  }
  return readText(subject, file)
}

/** Non-empty lines, trimmed, without `#` comment lines (the age file conventions). */
const meaningfulLines = (text: string): Array<string> =>
  text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))

export interface Credentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

/** The access key id and the secret, one per line (blank and `#` lines ignored). Rejects with ObjectStoreConfigError. */
export const readCredentials = async (file: string): Promise<Credentials> => {
  const subject = "backup_objectstore_credentials"
  const lines = meaningfulLines(await readSecret(subject, file))
  if (lines.length !== 2) {
    throw new ObjectStoreConfigError({ subject, message: `${subject}: ${file} must hold two lines, the access key id then the secret (found ${lines.length})` })
  }
  return { accessKeyId: lines[0]!, secretAccessKey: lines[1]! }
}

/** The recipients (`age1…`), in file order; the first one names the objects (docs/storage.md). */
export const readRecipients = async (file: string): Promise<ReadonlyArray<string>> => {
  const subject = "backup_objectstore_recipients"
  const lines = meaningfulLines(await readText(subject, file))
  if (lines.length === 0) throw new ObjectStoreConfigError({ subject, message: `${subject}: ${file} lists no recipient` })
  for (const l of lines) {
    if (!/^age1[02-9ac-hj-np-z]+$/.test(l)) {
      throw new ObjectStoreConfigError({
        subject,
        message: `${subject}: ${file}: "${l.slice(0, 24)}…" is not a native age X25519 recipient (age1…); ssh and plugin recipients are not supported`
      })
    }
  }
  return lines
}

/** The identities (`AGE-SECRET-KEY-1…`); the file must not be readable by group or others. */
export const readIdentities = async (file: string): Promise<ReadonlyArray<string>> => {
  const subject = "backup_objectstore_identity"
  const lines = meaningfulLines(await readSecret(subject, file))
  if (lines.length === 0) throw new ObjectStoreConfigError({ subject, message: `${subject}: ${file} holds no identity` })
  for (const l of lines) {
    if (!/^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]+$/.test(l)) {
      throw new ObjectStoreConfigError({ subject, message: `${subject}: ${file}: a line is not a native age X25519 identity (AGE-SECRET-KEY-1…)` })
    }
  }
  return lines
}
