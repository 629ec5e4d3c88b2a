/**
 * Where backupd's log lines go: syslog(3), as Cyrus programs log, with the ident
 * `[<syslog_prefix>/]<service>` and the facility from `syslog_facility` (default LOCAL6).
 * When no syslog socket exists (containers, tests), lines go to stderr instead, prefixed
 * with the ident and pid, so nothing is lost silently.
 */
import { existsSync } from "node:fs"
import { posix } from "../util/posix.js"

export interface ServiceLog {
  readonly error: (line: string) => void
  readonly notice: (line: string) => void
  readonly info: (line: string) => void
  readonly debug: (line: string) => void
}

// <syslog.h> values.
const LOG_ERR = 3
const LOG_NOTICE = 5
const LOG_INFO = 6
const LOG_DEBUG = 7

const FACILITIES: Record<string, number> = {
  KERN: 0, USER: 1, MAIL: 2, DAEMON: 3, AUTH: 4, SYSLOG: 5, LPR: 6, NEWS: 7, UUCP: 8, CRON: 9, AUTHPRIV: 10, FTP: 11,
  LOCAL0: 16, LOCAL1: 17, LOCAL2: 18, LOCAL3: 19, LOCAL4: 20, LOCAL5: 21, LOCAL6: 22, LOCAL7: 23
}

/** The facility number for a `syslog_facility` name (with or without `LOG_`), default LOCAL6. */
export const facilityCode = (name: string | undefined): number => {
  const key = (name ?? "LOCAL6").toUpperCase().replace(/^LOG_/, "")
  return (FACILITIES[key] ?? FACILITIES["LOCAL6"]!) << 3
}

export interface LogOptions {
  readonly ident: string
  readonly facility: string | undefined
  /** `debug: yes` shows LOG_DEBUG lines. */
  readonly debug: boolean
  /** Force stderr (tests, `-X` debugging); default: stderr only when /dev/log is missing. */
  readonly stderr?: boolean
}

export const makeServiceLog = (options: LogOptions): ServiceLog => {
  const useSyslog = options.stderr !== true && existsSync("/dev/log")
  let emit: (priority: number, line: string) => void
  if (useSyslog) {
    const addon = posix()
    addon.openlog(options.ident, facilityCode(options.facility))
    emit = (priority, line) => addon.syslog(priority, line)
  } else {
    emit = (_priority, line) => void process.stderr.write(`${options.ident}[${process.pid}]: ${line}\n`)
  }
  return {
    error: (line) => emit(LOG_ERR, line),
    notice: (line) => emit(LOG_NOTICE, line),
    info: (line) => emit(LOG_INFO, line),
    debug: (line) => (options.debug ? emit(LOG_DEBUG, line) : undefined)
  }
}

/** A log that keeps lines in memory (tests). */
export const memoryLog = (): ServiceLog & { readonly lines: Array<string> } => {
  const lines: Array<string> = []
  return {
    lines,
    error: (l) => void lines.push(`error: ${l}`),
    notice: (l) => void lines.push(`notice: ${l}`),
    info: (l) => void lines.push(`info: ${l}`),
    debug: (l) => void lines.push(`debug: ${l}`)
  }
}
