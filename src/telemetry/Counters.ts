/**
 * backupd's own counters (docs/operations.md, "Monitoring"): sessions, APPLY and GET by kind,
 * NO and BAD answers by reason, sessions refused (auth, locked) and protocol bytes each way.
 *
 * backupd processes are short-lived under master, so nothing is kept in memory across them:
 * each session counts in memory while it runs and, once it has ended (its connection closed),
 * appends one JSON line with its counts to a file of its own process,
 * `{configdirectory}/backupd-counters/<pid>.<start ms>.jsonl`. Nothing is written while
 * commands are answered, and no lock is taken: the sync path pays a few additions per command.
 * `ctl_backups metrics` folds the files (countersFold.ts).
 *
 * A line is a `Counters` value: metric → label value → count, with the metrics and their label
 * names of `COUNTER_METRICS`.
 */
import { Effect } from "effect"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { decorateConnection, type Connection, type ConnectionStats } from "../transport/Connection.js"

/** metric (a key of COUNTER_METRICS) → label value ("" for an unlabelled one) → count. */
export type Counters = Record<string, Record<string, number>>

/** The counters as exported: `cyrus_backupd_<key>_total`, with their help and label name. */
export const COUNTER_METRICS: Readonly<Record<string, { readonly help: string; readonly label?: string }>> = {
  sessions: { help: "csync sessions served by backupd (counted when they end)" },
  apply: { help: "APPLY commands answered, by kind (the dlist key, lower case; other: unknown keys)", label: "kind" },
  get: { help: "GET commands answered, by kind (the dlist key, lower case; other: unknown keys)", label: "kind" },
  no: { help: "NO answers sent, by reason", label: "reason" },
  bad: { help: "BAD answers sent, by reason", label: "reason" },
  sessions_refused: {
    help: "sessions refused: auth = ended without logging in after a NO, locked = answered NO IMAP_MAILBOX_LOCKED at least once",
    label: "reason"
  },
  received_bytes: { help: "bytes received: protocol = plaintext csync, wire = from the socket (TLS, DEFLATE)", label: "layer" },
  sent_bytes: { help: "bytes sent: protocol = plaintext csync, wire = to the socket (TLS, DEFLATE)", label: "layer" }
}

/** The directory of the per-process counter files. */
export const countersDirectory = (configDirectory: string): string => path.join(configDirectory, "backupd-counters")

const APPLY_KINDS = new Set([
  "reserve", "message", "mailbox", "unmailbox", "rename", "seen", "sub", "unsub", "sieve", "unsieve",
  "activate_sieve", "unactivate_sieve", "unuser", "quota"
])
const GET_KINDS = new Set(["user", "meta", "mailboxes", "fullmailbox", "uniqueids"])

/** The fixed answer texts of src/session/replies.ts and src/auth/exchange.ts, by prefix, and their reason. */
const FIXED_REASONS: ReadonlyArray<readonly [string, string]> = [
  ["Unknown error", "unknown"],
  ["Please authenticate first", "not_authenticated"],
  ["Permission denied", "permission_denied"],
  ["Null command", "null_command"],
  ["Missing required argument", "missing_argument"],
  ["Unexpected extra arguments", "extra_arguments"],
  ["Invalid mechanism", "invalid_mechanism"],
  ["Already authenticated", "already_authenticated"],
  ["Client canceled authentication", "auth_canceled"],
  ["Error reading client response", "auth_response"],
  ["Compression already active", "compress"],
  ["Unknown compression algorithm", "compress"],
  ["Already successfully executed STARTTLS", "starttls"],
  ["Error initializing TLS", "starttls"],
  ["Starttls failed", "starttls"]
]

/**
 * The reason label of a `NO`/`BAD` line: the IMAP_* code word (lower case, without `IMAP_`),
 * else a name for the fixed texts of src/session/replies.ts and src/auth/exchange.ts, else
 * `other` (SASL failures and the like; never free text, so the label set stays small).
 */
export const replyReason = (text: string): string => {
  const code = /^IMAP_([A-Z_]+)(?: |$)/.exec(text)
  if (code !== null) return code[1]!.toLowerCase()
  for (const [prefix, reason] of FIXED_REASONS) if (text.startsWith(prefix)) return reason
  return "other"
}

/** What one session counts while it runs. */
export interface SessionCounter {
  /** An APPLY or GET with this dlist key was handled. */
  readonly command: (command: "apply" | "get", key: string) => void
  /** The session logged in (AUTHENTICATE succeeded). */
  readonly loggedIn: () => void
  /** The session's connection, whose NO and BAD lines are counted as they are written. */
  readonly connection: (conn: Connection) => Connection
  /** The session's counts, once it has ended (`preauthenticated`: UNIX socket or `-X` pipe). */
  readonly finish: (stats: ConnectionStats, preauthenticated: boolean) => Counters
}

const bump = (c: Counters, metric: string, label: string, by = 1) => {
  const m = (c[metric] ??= {})
  m[label] = (m[label] ?? 0) + by
}

export const makeSessionCounter = (): SessionCounter => {
  const counts: Counters = {}
  let loggedIn = false
  let sawNo = false
  let sawLocked = false
  const line = (bytes: Uint8Array | string) => {
    if (typeof bytes !== "string") return
    const isNo = bytes.startsWith("NO ")
    if (!isNo && !bytes.startsWith("BAD ")) return
    const reason = replyReason(bytes.slice(isNo ? 3 : 4).replace(/\r?\n$/, ""))
    bump(counts, isNo ? "no" : "bad", reason)
    if (isNo) sawNo = true
    if (reason === "mailbox_locked") sawLocked = true
  }
  return {
    command: (command, key) => {
      const kind = key.toLowerCase()
      bump(counts, command, (command === "apply" ? APPLY_KINDS : GET_KINDS).has(kind) ? kind : "other")
    },
    loggedIn: () => void (loggedIn = true),
    connection: (conn) =>
      decorateConnection(conn, { write: (bytes) => Effect.zipRight(Effect.sync(() => line(bytes)), conn.write(bytes)) }),
    finish: (stats, preauthenticated) => {
      bump(counts, "sessions", "")
      if (!preauthenticated && !loggedIn && sawNo) bump(counts, "sessions_refused", "auth")
      if (sawLocked) bump(counts, "sessions_refused", "locked")
      bump(counts, "received_bytes", "protocol", stats.protocolIn)
      bump(counts, "received_bytes", "wire", stats.transportIn)
      bump(counts, "sent_bytes", "protocol", stats.protocolOut)
      bump(counts, "sent_bytes", "wire", stats.transportOut)
      return counts
    }
  }
}

/** Adds `b` into `a`. */
export const addCounters = (a: Counters, b: Counters): Counters => {
  for (const [metric, byLabel] of Object.entries(b)) for (const [label, n] of Object.entries(byLabel)) bump(a, metric, label, n)
  return a
}

const processStart = Date.now()

/** This process's counter file (pid and start time: a reused pid gets a file of its own). */
export const processCountersFile = (directory: string, pid: number = process.pid): string =>
  path.join(directory, `${pid}.${processStart}.jsonl`)

/**
 * Appends one session's counts to this process's file (the directory is made on first use).
 * Never fails: counting must not break the service (a failure is handed to `onError`, to be
 * logged).
 */
export const appendSessionCounts = (directory: string, counts: Counters, onError: (message: string) => void): Effect.Effect<void> =>
  Effect.promise(async () => {
    const file = processCountersFile(directory)
    const text = JSON.stringify(counts) + "\n"
    try {
      await fsp.appendFile(file, text).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e
        await fsp.mkdir(directory, { recursive: true, mode: 0o750 })
        await fsp.appendFile(file, text)
      })
    } catch (e) {
      onError(`cannot append session counters to ${directory}: ${(e as Error).message}`)
    }
  })
