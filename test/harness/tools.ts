/**
 * The Cyrus command-line programs the interop tests drive, run as cyrus
 * against an instance's imapd.conf, with captured output.
 */
import { Duration, Effect } from "effect"
import { type CyrusProcessError, runCyrus, type RunResult } from "./cyrus.js"
import { BACKUP_CHANNEL, type BackupServerInstance, type SourceInstance } from "./instances.js"

export interface ToolOptions {
  readonly timeout?: Duration.DurationInput
  readonly env?: Readonly<Record<string, string>>
}

const opts = (o: ToolOptions) => ({ timeout: o.timeout ?? "120 seconds", ...(o.env === undefined ? {} : { env: o.env }) })

/**
 * `sync_client -C <source conf> -n backup -v <args>`: e.g. ["-A"], ["-u", "alice"],
 * ["-R", "-1"] (one rolling pass over the sync log).
 */
export const runSyncClient = (
  source: SourceInstance,
  args: ReadonlyArray<string>,
  o: ToolOptions = {}
): Effect.Effect<RunResult, CyrusProcessError> =>
  runCyrus("sync_client", ["-C", source.conf, "-n", BACKUP_CHANNEL, "-v", ...args], opts(o))

/** `ctl_backups -C <backup conf> <args>`, e.g. ["verify", "-A"] or ["list"]. */
export const runCtlBackups = (
  backup: BackupServerInstance,
  args: ReadonlyArray<string>,
  o: ToolOptions & { readonly program?: string } = {}
): Effect.Effect<RunResult, CyrusProcessError> =>
  runCyrus(o.program ?? "ctl_backups", ["-C", backup.conf, ...args], opts(o))

/** `cyr_backup -C <backup conf> <args>`, e.g. ["-u", "alice", "list", "mailboxes"]. Section headers go to stderr. */
export const runCyrBackup = (
  backup: BackupServerInstance,
  args: ReadonlyArray<string>,
  o: ToolOptions & { readonly program?: string } = {}
): Effect.Effect<RunResult, CyrusProcessError> =>
  runCyrus(o.program ?? "cyr_backup", ["-C", backup.conf, ...args], opts(o))

/**
 * `restore -C <backup conf> <args>`. The destination is a positional
 * `host:port` (e.g. a RestoreTarget's `syncAddress`): restore authenticates
 * with the backup conf's sync_authname/sync_password. Example args:
 * ["-U", "-X", target.syncAddress, "-u", "alice", "user.alice", "user.alice.Work"].
 */
export const runRestore = (
  backup: BackupServerInstance,
  args: ReadonlyArray<string>,
  o: ToolOptions & { readonly program?: string } = {}
): Effect.Effect<RunResult, CyrusProcessError> =>
  runCyrus(o.program ?? "restore", ["-C", backup.conf, ...args], opts(o))
