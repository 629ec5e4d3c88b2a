/**
 * `ctl_backups health [-w warn] [-c crit]`: a Nagios / Icinga plugin. One line on stdout in
 * the plugin format, `STATUS - text | perfdata`, and the plugin exit code: 0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN. `warn` and `crit` are durations (imapd.conf syntax, bare number =
 * hours) compared with each backup's age since its last success; they default to
 * `backup_stale_after` and twice that. A backup with no success at all (no chunk, or an
 * unreadable index) counts as older than any threshold. Reads what `metrics` reads, the same
 * way (no lock a backupd needs).
 */
import { Effect, Either } from "effect"
import type { CyrusConfig } from "../../config/index.js"
import { parseDuration } from "../../config/optionTypes.js"
import type { BackupsDbService } from "../../store/index.js"
import { surveyAll, type BackupSurvey } from "../metrics/survey.js"
import type { Printer } from "../ToolIo.js"
import type { MonitorArgs } from "./MonitorArgs.js"

export const NAGIOS_OK = 0
export const NAGIOS_WARNING = 1
export const NAGIOS_CRITICAL = 2
export const NAGIOS_UNKNOWN = 3

const STATUS = ["OK", "WARNING", "CRITICAL", "UNKNOWN"] as const

/** `3h`, `2d` and the like, for the text part. */
export const ageText = (seconds: number): string => {
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86400)}d`
}

/** The plugin line (without newline) and exit code for these backups. */
export const healthOf = (backups: ReadonlyArray<BackupSurvey>, warn: number, crit: number, now: number): readonly [number, string] => {
  let warning = 0
  let critical = 0
  let oldest: BackupSurvey | undefined
  let oldestAge = -1
  for (const b of backups) {
    const age = b.lastSuccess === undefined ? Number.POSITIVE_INFINITY : Math.max(0, now - b.lastSuccess)
    if (age > crit) critical++
    else if (age > warn) warning++
    if (age > oldestAge) {
      oldestAge = age
      oldest = b
    }
  }
  const code = critical > 0 ? NAGIOS_CRITICAL : warning > 0 ? NAGIOS_WARNING : NAGIOS_OK
  const who = oldest === undefined ? "" : Buffer.from(oldest.userid, "latin1").toString("utf8")
  let text = `${backups.length} users`
  if (oldest === undefined) text += ", no backups"
  else if (oldestAge === Number.POSITIVE_INFINITY) text += `, ${who} never backed up`
  else text += `, oldest backup ${ageText(oldestAge)} ago${code === NAGIOS_OK ? "" : ` (${who})`}`
  if (critical > 0) text += `, ${critical} older than ${ageText(crit)}`
  if (warning > 0) text += `, ${warning} older than ${ageText(warn)}`
  const oldestPerf = oldestAge === Number.POSITIVE_INFINITY ? "U" : String(Math.max(0, oldestAge))
  const perf = `users=${backups.length} stale=${warning + critical} critical=${critical} oldest_age=${oldestPerf}s;${warn};${crit};0`
  return [code, `${STATUS[code]} - ${text} | ${perf}`]
}

const threshold = (text: string | undefined, fallback: number): number | undefined => {
  if (text === undefined) return fallback
  const v = parseDuration(text.trim(), "h")
  return v === undefined || v <= 0 ? undefined : v
}

/** An UNKNOWN result, for whatever stops the check from being made. */
export const healthUnknown = (p: Printer, why: string) => Effect.as(p.out(`UNKNOWN - ${why.replace(/\n/g, " ")}\n`), NAGIOS_UNKNOWN)

export const runHealth = (p: Printer, config: CyrusConfig, db: BackupsDbService, args: MonitorArgs): Effect.Effect<number> =>
  Effect.gen(function* () {
    const warn = threshold(args.warn, config.backupStaleAfter)
    const crit = threshold(args.crit, 2 * config.backupStaleAfter)
    if (warn === undefined) return yield* healthUnknown(p, `invalid -w "${args.warn}" (a duration, e.g. 36h, 2d; bare = hours)`)
    if (crit === undefined) return yield* healthUnknown(p, `invalid -c "${args.crit}" (a duration, e.g. 36h, 2d; bare = hours)`)
    if (crit < warn) return yield* healthUnknown(p, `-c ${args.crit ?? crit} is shorter than -w ${args.warn ?? warn}`)
    const now = Math.floor(Date.now() / 1000)
    const surveyed = yield* Effect.either(surveyAll(db, config, now))
    if (Either.isLeft(surveyed)) return yield* healthUnknown(p, `cannot read backups.db: ${surveyed.left.message || surveyed.left._tag}`)
    const [code, line] = healthOf(surveyed.right, warn, crit, now)
    yield* p.outUtf8(line + "\n")
    return code
  })
