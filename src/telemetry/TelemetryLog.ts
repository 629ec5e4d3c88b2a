/**
 * Per-user protocol telemetry, as Cyrus writes it (docs/operations.md, "Logging"): when an admin has created
 * `{configdirectory}/log/<userid>/`, a session that authenticates as `<userid>` appends to
 * `<ident>-<pid>` there (or `<ident>-<sessionid>` with `telemetry_bysessionid`) a header
 * `---------- <userid> <ctime>\n\n`, then every plaintext input chunk as `<unixtime<bytes`
 * and every output flush as `>unixtime>bytes`, with nothing added between records.
 * The directory is never created: no directory, no log.
 */
import { Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { decorateConnection, type Connection } from "../transport/Connection.js"

export interface TelemetryLog {
  /** The file written to. */
  readonly file: string
  /** Logs plaintext input bytes (after inflation). */
  readonly input: (bytes: Uint8Array) => void
  /** Logs plaintext output bytes of one flush (before compression). */
  readonly output: (bytes: Uint8Array) => void
  /** Closes the file (idempotent). */
  readonly close: () => void
}

export interface TelemetryTarget {
  readonly configDirectory: string
  readonly userid: string
  /** The service name (`CYRUS_SERVICE`, e.g. `backupd`). */
  readonly ident: string
  readonly pid: number
  /** With `telemetry_bysessionid`: the session id to name the file by instead of the pid. */
  readonly sessionId?: string
}

/** Cyrus prot.c logs in buffers of at most this size; we cut records the same way. */
const RECORD_MAX = 4096

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const pad2 = (n: number) => String(n).padStart(2, "0")

/** ctime(3) text in local time, with its trailing newline: `Tue Nov 14 22:13:20 2023\n`. */
export const ctimeText = (d: Date): string =>
  `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, " ")} ` +
  `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${d.getFullYear()}\n`

/** The header a session's records follow. */
export const telemetryHeader = (userid: string, d: Date): string => `---------- ${userid} ${ctimeText(d)}\n`

/** `{configdirectory}/log/<userid>/<ident>-<pid|sessionid>`; undefined for userids unsafe as a path component. */
export const telemetryFile = (t: TelemetryTarget): string | undefined => {
  if (t.userid === "" || t.userid === "." || t.userid === ".." || t.userid.includes("/") || t.userid.includes("\0")) {
    return undefined
  }
  return path.join(t.configDirectory, "log", t.userid, `${t.ident}-${t.sessionId ?? String(t.pid)}`)
}

let sessionClock = { second: 0, count: 0 }

/**
 * A new session id, Cyrus's form: `<base>-<unixtime>-<pid>-<n>-<random>`, `base` being
 * `syslog_prefix` or else `servername`, `n` counting the ids made within the same second.
 */
export const newSessionId = (base: string, now: Date = new Date(), pid: number = process.pid): string => {
  const second = Math.floor(now.getTime() / 1000)
  sessionClock = second === sessionClock.second ? { second, count: sessionClock.count + 1 } : { second, count: 1 }
  const random = randomBytes(8).readBigUInt64LE()
  return `${base.slice(0, 128)}-${second}-${pid}-${sessionClock.count}-${random}`
}

const nowSeconds = () => String(Math.floor(Date.now() / 1000))

/**
 * Opens the telemetry log of `target` and writes its header, or None when the user's log
 * directory does not exist (or cannot be written: telemetry must never break a session).
 */
export const openTelemetryLog = (target: TelemetryTarget, now: Date = new Date()): Effect.Effect<Option.Option<TelemetryLog>> =>
  Effect.sync(() => {
    const file = telemetryFile(target)
    if (file === undefined) return Option.none()
    let fd: number
    try {
      if (!fs.statSync(path.dirname(file)).isDirectory()) return Option.none()
      fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_WRONLY, 0o644)
    } catch {
      return Option.none()
    }
    let open = true
    const write = (data: string | Uint8Array) => {
      if (!open) return
      try {
        fs.writeSync(fd, data as never)
      } catch {
        // a full disk must not end the session; the log is best effort, as in Cyrus
      }
    }
    const record = (marker: "<" | ">", bytes: Uint8Array) => {
      for (let at = 0; at < bytes.byteLength; at += RECORD_MAX) {
        write(`${marker}${nowSeconds()}${marker}`)
        write(bytes.subarray(at, Math.min(bytes.byteLength, at + RECORD_MAX)))
      }
    }
    write(telemetryHeader(target.userid, now))
    const log: TelemetryLog = {
      file,
      input: (bytes) => record("<", bytes),
      output: (bytes) => record(">", bytes),
      close: () => {
        if (!open) return
        open = false
        try {
          fs.closeSync(fd)
        } catch {
          // already closed
        }
      }
    }
    return Option.some(log)
  })

export interface TelemetrySettings {
  readonly configDirectory: string
  /** The service name (`CYRUS_SERVICE`, e.g. `backupd`). */
  readonly ident: string
  /** `telemetry_bysessionid`. */
  readonly bySessionId: boolean
  /** What session ids start with: `syslog_prefix`, else `servername`. */
  readonly sessionBase: string
}

/** What a session calls after a successful AUTHENTICATE: the user's log, if it is wanted. */
export const telemetryOpener = (s: TelemetrySettings) => (userid: string): Effect.Effect<Option.Option<TelemetryLog>> =>
  Effect.suspend(() =>
    openTelemetryLog({
      configDirectory: s.configDirectory,
      userid,
      ident: s.ident,
      pid: process.pid,
      ...(s.bySessionId ? { sessionId: newSessionId(s.sessionBase) } : {})
    })
  )

export interface TappedConnection {
  /** The connection to run the session on: the original, with its plaintext mirrored to the log. */
  readonly connection: Connection
  /** Starts mirroring to `log` (from the next read and the next flush on). */
  readonly attach: (log: TelemetryLog) => void
  /** The attached log, if any. */
  readonly log: () => TelemetryLog | undefined
}

/**
 * Wraps a connection so that, once a log is attached, every plaintext chunk read and every
 * flush's plaintext bytes are logged. Output queued before `attach` is not logged, as in Cyrus
 * (the AUTHENTICATE answer is flushed before the log starts).
 */
export const tapConnection = (conn: Connection): TappedConnection => {
  let log: TelemetryLog | undefined
  let queued: Array<Uint8Array> = []
  const toBytes = (b: Uint8Array | string): Uint8Array => (typeof b === "string" ? Buffer.from(b, "latin1") : b)
  const connection: Connection = decorateConnection(conn, {
    read: Effect.tap(conn.read, (chunk) =>
      Effect.sync(() => {
        if (log !== undefined && Option.isSome(chunk)) log.input(chunk.value)
      })),
    write: (bytes) =>
      Effect.zipRight(
        Effect.sync(() => {
          if (log !== undefined) queued.push(Buffer.from(toBytes(bytes)))
        }),
        conn.write(bytes)
      ),
    flush: Effect.zipRight(
      Effect.sync(() => {
        if (log !== undefined && queued.length > 0) log.output(Buffer.concat(queued))
        queued = []
      }),
      conn.flush
    )
  })
  return {
    connection,
    attach: (l) => {
      log = l
      queued = []
    },
    log: () => log
  }
}
