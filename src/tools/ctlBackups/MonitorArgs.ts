/**
 * The command lines of `ctl_backups metrics [--per-user] [--textfile DIR]` and
 * `ctl_backups health [-w warn] [-c crit]` (both with `-C alt_config`): our commands, whose
 * options differ from the other commands' (`-w` and `-c` take a value here, as in every
 * Nagios plugin), so they are read apart.
 */
import { getopt } from "../getopt.js"

export interface MonitorArgs {
  readonly command: "metrics" | "health"
  readonly altConfig: string | undefined
  /** metrics: one series per user as well. */
  readonly perUser: boolean
  /** metrics: write `<dir>/cyrus_backup.prom` (atomically) instead of stdout. */
  readonly textfileDir: string | undefined
  /** health: the thresholds as written (durations, bare = hours). */
  readonly warn: string | undefined
  readonly crit: string | undefined
}

/** undefined: not `metrics` or `health`; "usage": one of them, badly called. */
export const parseMonitorArgs = (argv: ReadonlyArray<string>): MonitorArgs | "usage" | undefined => {
  const words: Array<string> = []
  let perUser = false
  let textfileDir: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i]!
    if (w === "--per-user") perUser = true
    else if (w === "--textfile") {
      textfileDir = argv[++i]
      if (textfileDir === undefined) return "usage"
    } else if (w.startsWith("--textfile=")) textfileDir = w.slice("--textfile=".length)
    else words.push(w)
  }
  const { events, operands } = getopt(words, ":C:c:w:")
  const command = operands[0]
  if (command !== "metrics" && command !== "health") return undefined
  let altConfig: string | undefined
  let warn: string | undefined
  let crit: string | undefined
  for (const ev of events) {
    if (ev._tag !== "Option") return "usage"
    if (ev.opt === "C") altConfig = ev.arg
    else if (command === "health" && ev.opt === "w") warn = ev.arg
    else if (command === "health" && ev.opt === "c") crit = ev.arg
    else return "usage"
  }
  if (operands.length > 1) return "usage"
  if (command === "health" && (perUser || textfileDir !== undefined)) return "usage"
  if (textfileDir === "") return "usage"
  return { command, altConfig, perUser, textfileDir, warn, crit }
}
