/**
 * Where every program's log lines go: syslog(3), as Cyrus programs log, with the ident
 * `[<syslog_prefix>/]<service>` and the facility from `syslog_facility` (default LOCAL6).
 * When no syslog socket exists (containers, tests), lines go to stderr instead, prefixed
 * with the ident and pid, so nothing is lost silently. Never stdout: under `-X` stdout is the
 * csync stream, and for the tools it is their output.
 *
 * The log is also the program's Effect `Logger` (`withServiceLog`): each entry point installs
 * it around its whole program, so an `Effect.log*` anywhere lands here, at the syslog priority
 * of its level (see `syslogPriority`).
 */
import { Cause, Effect, FiberRef, HashMap, HashSet, Layer, Logger, LogLevel } from "effect"
import { existsSync } from "node:fs"
import { posix } from "../util/posix.js"

/** <syslog.h> priorities. */
export const LOG_CRIT = 2
export const LOG_ERR = 3
export const LOG_WARNING = 4
export const LOG_NOTICE = 5
export const LOG_INFO = 6
export const LOG_DEBUG = 7

export interface ServiceLog {
  /** One line at a syslog priority (LOG_DEBUG lines only with `debug: yes`). */
  readonly write: (priority: number, line: string) => void
  readonly error: (line: string) => void
  readonly warning: (line: string) => void
  readonly notice: (line: string) => void
  readonly info: (line: string) => void
  readonly debug: (line: string) => void
}

const FACILITIES: Record<string, number> = {
  KERN: 0, USER: 1, MAIL: 2, DAEMON: 3, AUTH: 4, SYSLOG: 5, LPR: 6, NEWS: 7, UUCP: 8, CRON: 9, AUTHPRIV: 10, FTP: 11,
  LOCAL0: 16, LOCAL1: 17, LOCAL2: 18, LOCAL3: 19, LOCAL4: 20, LOCAL5: 21, LOCAL6: 22, LOCAL7: 23
}

/** The facility number for a `syslog_facility` name (with or without `LOG_`), default LOCAL6. */
export const facilityCode = (name: string | undefined): number => {
  const key = (name ?? "LOCAL6").toUpperCase().replace(/^LOG_/, "")
  return (FACILITIES[key] ?? FACILITIES["LOCAL6"]!) << 3
}

/** `[<prefix>/]<name>`, Cyrus's syslog ident. */
export const syslogIdent = (prefix: string | undefined, name: string): string =>
  prefix !== undefined && prefix !== "" ? `${prefix}/${name}` : name

export interface LogOptions {
  readonly ident: string
  readonly facility: string | undefined
  /** `debug: yes` shows LOG_DEBUG lines. */
  readonly debug: boolean
  /** Force stderr (tests, `-X` debugging); default: stderr only when /dev/log is missing. */
  readonly stderr?: boolean
  /** Where the stderr fallback writes (default: the process's stderr). */
  readonly writeStderr?: (text: string) => void
}

/** A ServiceLog over `emit` (LOG_DEBUG lines dropped unless `debug`). */
export const serviceLogFrom = (emit: (priority: number, line: string) => void, debug: boolean): ServiceLog => {
  const write = (priority: number, line: string) => (priority < LOG_DEBUG || debug ? emit(priority, line) : undefined)
  return {
    write,
    error: (line) => write(LOG_ERR, line),
    warning: (line) => write(LOG_WARNING, line),
    notice: (line) => write(LOG_NOTICE, line),
    info: (line) => write(LOG_INFO, line),
    debug: (line) => write(LOG_DEBUG, line)
  }
}

/** The ident and facility syslog was last opened with in this process. */
let openedAs: string | undefined

/**
 * Syslog is opened at the first line (a run that logs nothing never loads the native addon);
 * if the addon cannot be loaded, lines go to stderr, the first one saying why.
 */
export const makeServiceLog = (options: LogOptions): ServiceLog => {
  const writeStderr = options.writeStderr ?? ((text: string) => void process.stderr.write(text))
  const toStderr = (_priority: number, line: string) => writeStderr(`${options.ident}[${process.pid}]: ${line}\n`)
  if (options.stderr === true || !existsSync("/dev/log")) return serviceLogFrom(toStderr, options.debug)
  const facility = facilityCode(options.facility)
  const opened = `${options.ident}\0${facility}`
  let emit = (priority: number, line: string): void => {
    try {
      const addon = posix()
      // openlog(3) is per process: a log of another ident or facility (the boot log, before
      // imapd.conf was read) may have opened it since, so it is opened again when it differs.
      emit = (p, l) => {
        if (openedAs !== opened) {
          addon.openlog(options.ident, facility)
          openedAs = opened
        }
        addon.syslog(p, l)
      }
    } catch (e) {
      emit = toStderr
      toStderr(LOG_ERR, `syslog unavailable (${e instanceof Error ? e.message : String(e)}); logging to stderr`)
    }
    emit(priority, line)
  }
  return serviceLogFrom((priority, line) => emit(priority, line), options.debug)
}

const PRIORITY_NAMES: Record<number, string> = {
  [LOG_CRIT]: "crit", [LOG_ERR]: "error", [LOG_WARNING]: "warning", [LOG_NOTICE]: "notice", [LOG_INFO]: "info", [LOG_DEBUG]: "debug"
}

/** `error`, `notice`, ... for a priority. */
export const priorityName = (priority: number): string => PRIORITY_NAMES[priority] ?? String(priority)

/** A log that keeps lines in memory (tests): `"<priority name>: <line>"`. */
export const memoryLog = (): ServiceLog & { readonly lines: Array<string> } => {
  const lines: Array<string> = []
  return { lines, ...serviceLogFrom((p, l) => void lines.push(`${priorityName(p)}: ${l}`), true) }
}

// --- the Effect Logger -------------------------------------------------------------------

/** Log annotation that picks the syslog priority of one entry (see `logNotice`). */
export const SYSLOG_PRIORITY = "syslog_priority"

/** Effect's levels as syslog priorities; undefined for the pseudo levels All and None. */
export const syslogPriority = (level: LogLevel.LogLevel): number | undefined => {
  switch (level._tag) {
    case "Fatal":
      return LOG_CRIT
    case "Error":
      return LOG_ERR
    case "Warning":
      return LOG_WARNING
    case "Info":
      return LOG_INFO
    case "Debug":
    case "Trace":
      return LOG_DEBUG
    default:
      return undefined
  }
}

/** `Effect.log` at LOG_NOTICE, the level Cyrus uses for logins and session ends (Effect has no notice level). */
export const logNotice = (...message: ReadonlyArray<unknown>): Effect.Effect<void> =>
  Effect.log(...message).pipe(Effect.annotateLogs(SYSLOG_PRIORITY, LOG_NOTICE))

const text = (part: unknown): string => {
  if (typeof part === "string") return part
  if (part instanceof Error) return part.message
  try {
    return typeof part === "object" && part !== null ? JSON.stringify(part) : String(part)
  } catch {
    return String(part)
  }
}

/** One syslog line: the message parts, the annotations as ` key=value`, then the cause. Never a newline. */
const formatEntry = (message: unknown, cause: Cause.Cause<unknown>, annotations: HashMap.HashMap<string, unknown>): string => {
  const parts = (Array.isArray(message) ? message : [message]).map(text)
  for (const [key, value] of annotations) if (key !== SYSLOG_PRIORITY) parts.push(`${key}=${text(value)}`)
  if (!Cause.isEmpty(cause)) parts.push(Cause.pretty(cause))
  return parts.join(" ").replace(/\s*\n\s*/g, " ")
}

/** The Effect Logger that writes to `log`. */
export const serviceLogger = (log: ServiceLog): Logger.Logger<unknown, void> =>
  Logger.make(({ logLevel, message, cause, annotations }) => {
    const chosen = HashMap.get(annotations, SYSLOG_PRIORITY)
    const priority = chosen._tag === "Some" && typeof chosen.value === "number" ? chosen.value : syslogPriority(logLevel)
    if (priority !== undefined) log.write(priority, formatEntry(message, cause, annotations))
  })

/** The layer that makes `log` the only Effect Logger (and lets Debug through with `debug: yes`). */
export const serviceLogLayer = (log: ServiceLog, options: { readonly debug?: boolean } = {}): Layer.Layer<never> =>
  Layer.merge(
    // the only logger: an inner `withServiceLog` (the configured log inside the boot log)
    // replaces the outer one instead of writing every line twice
    Layer.locallyScoped(FiberRef.currentLoggers, HashSet.make<Array<Logger.Logger<unknown, unknown>>>(serviceLogger(log))),
    options.debug === true ? Logger.minimumLogLevel(LogLevel.Debug) : Layer.empty
  )

/** Runs `self` with `log` as its Effect Logger. */
export const withServiceLog =
  (log: ServiceLog, options: { readonly debug?: boolean } = {}) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provide(self, serviceLogLayer(log, options))
