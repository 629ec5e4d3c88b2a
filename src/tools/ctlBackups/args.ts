/**
 * The command line of `ctl_backups`, read as the original reads it (getopt
 * ":AC:DFPSVcfjmpst:x:uvw"), with the same exclusions, plus our commands delete, move and
 * reconstruct.
 */
import { getopt } from "../getopt.js"
import { atoi } from "../toolRuntime.js"
import { parseMonitorArgs, type MonitorArgs } from "./MonitorArgs.js"

export type CtlCommand =
  | "compact" | "delete" | "health" | "list" | "lock" | "metrics" | "move" | "pull" | "push" | "reconstruct" | "reindex" | "stat" | "verify"
export type CtlMode = "all" | "domain" | "prefix" | "file" | "mboxname" | "userid"

export interface CtlArgs {
  readonly altConfig: string | undefined
  readonly command: CtlCommand
  readonly mode: CtlMode
  readonly lockMode: "pipe" | "sql" | "exec"
  readonly lockCommand: string | undefined
  readonly createExclusive: boolean
  readonly wait: boolean
  readonly verbose: number
  readonly stopOnError: boolean
  readonly listStale: number
  readonly force: boolean
  readonly noVerify: boolean
  readonly json: boolean
  /** `verify -O`: check the copies in the object store instead of the local backup (ours). */
  readonly objectStore: boolean
  readonly names: ReadonlyArray<string>
  /** `metrics` and `health` only (MonitorArgs.ts). */
  readonly monitor?: MonitorArgs
}

const COMMANDS: ReadonlyArray<CtlCommand> = ["compact", "delete", "list", "lock", "move", "pull", "push", "reconstruct", "reindex", "stat", "verify"]

/** Parses the command line as the original does (getopt ":AC:DFPSVcfjmpst:x:uvw"). */
export const parseCtlArgs = (argv: ReadonlyArray<string>): CtlArgs | { readonly usage: true } => {
  const usage = { usage: true } as const
  // metrics and health have options of their own (-w and -c take values there)
  const monitor = parseMonitorArgs(argv)
  if (monitor !== undefined) {
    if (monitor === "usage") return usage
    return {
      altConfig: monitor.altConfig, command: monitor.command, mode: "all", lockMode: "pipe", lockCommand: undefined, createExclusive: false,
      wait: false, verbose: 0, stopOnError: false, listStale: 0, force: false, noVerify: true, json: false, objectStore: false, names: [], monitor
    }
  }
  const { events, operands } = getopt(argv, ":AC:DFOPSVcfjmpst:x:uvw")
  let altConfig: string | undefined
  let mode: CtlMode | undefined
  let lockMode: CtlArgs["lockMode"] | undefined
  let lockCommand: string | undefined
  let createExclusive = false
  let wait = false
  let verbose = 0
  let stopOnError = false
  let listStale = 0
  let force = false
  let noVerify = false
  let json = false
  let objectStore = false
  const setMode = (m: CtlMode) => {
    if (mode !== undefined) return false
    mode = m
    return true
  }
  const setLock = (m: CtlArgs["lockMode"]) => {
    if (lockMode !== undefined) return false
    lockMode = m
    return true
  }
  for (const ev of events) {
    if (ev._tag === "Unknown") return usage
    if (ev._tag === "MissingArgument") {
      if (ev.opt !== "t") return usage
      listStale = 24
      continue
    }
    const ok = (() => {
      switch (ev.opt) {
        case "A": return setMode("all")
        case "D": return setMode("domain")
        case "P": return setMode("prefix")
        case "f": return setMode("file")
        case "m": return setMode("mboxname")
        case "u": return setMode("userid")
        case "C": altConfig = ev.arg; return true
        case "F": force = true; return true
        case "S": stopOnError = true; return true
        case "V": noVerify = true; return true
        case "O": objectStore = true; return true
        case "c": createExclusive = true; return true
        case "w": wait = true; return true
        case "j": if (verbose > 0) return false; json = true; return true
        case "v": if (json) return false; verbose++; return true
        case "p": return setLock("pipe")
        case "s": return setLock("sql")
        case "x": lockCommand = ev.arg; return setLock("exec")
        case "t": listStale = atoi(ev.arg ?? ""); return listStale !== 0
        default: return false
      }
    })()
    if (!ok) return usage
  }
  if (operands.length === 0) return usage
  const command = operands[0] as CtlCommand
  if (!COMMANDS.includes(command)) return usage
  const names = operands.slice(1)
  if (lockMode !== undefined && command !== "lock") return usage
  if (objectStore && command !== "verify") return usage
  switch (command) {
    case "list":
      if (mode === undefined && names.length === 0) mode = "all"
      break
    case "lock":
    case "delete":
    case "move":
      if (mode === "all" || mode === "domain" || mode === "prefix") return usage
      // move names the backup and the destination partition
      if (command === "move" ? names.length !== 2 : names.length > 1) return usage
      break
    case "reconstruct":
      if (mode !== undefined || names.length > 0) return usage
      break
    default:
      break
  }
  const finalMode = mode ?? "userid"
  if (finalMode === "all" && names.length > 0) return usage
  return {
    altConfig, command, mode: finalMode, lockMode: lockMode ?? "pipe", lockCommand, createExclusive, wait, verbose,
    stopOnError, listStale, force, noVerify, json, objectStore, names
  }
}
