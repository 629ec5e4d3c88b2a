/**
 * What every ctl_backups command works with: the parsed arguments, the configuration,
 * backups.db, the standard streams and the printer (which clears the progress bar before it
 * writes), and the count of backups skipped or failed so far.
 */
import type { CyrusConfig } from "../../config/index.js"
import type { BackupsDbService } from "../../store/index.js"
import { IMAP_MAILBOX_LOCKED } from "../cFormat.js"
import type { Target } from "../targets.js"
import type { Progress } from "../Progress.js"
import type { Printer, ToolIo } from "../ToolIo.js"
import type { CtlArgs } from "./args.js"

export interface Run {
  readonly args: CtlArgs
  readonly config: CyrusConfig
  readonly db: BackupsDbService
  readonly io: ToolIo
  readonly p: Printer
  /** The progress bar of a long command (drawn only on a terminal), for commands that loop themselves. */
  readonly progress?: Progress
  /** Backups skipped or failed so far (any makes the exit code 75). */
  skipsFails: number
}

/** How a backup is named in output lines: its userid, else its data file. */
export const who = (t: Target): string => t.userid ?? t.dataPath

/**
 * What the C loop does with one backup's result code: count it, forgive locks, and go on
 * (0) unless `-S` asks to stop at the first failure.
 */
export const settle = (run: Run, r: number, counted = true): number => {
  if (r !== 0 && counted) run.skipsFails++
  const kept = r === IMAP_MAILBOX_LOCKED ? 0 : r
  return run.args.stopOnError ? kept : 0
}
