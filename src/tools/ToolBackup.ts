/**
 * A backup opened by a tool, as Cyrus's `backup_open_paths` does it (the store's one opening
 * sequence: data file locked, waiting or not; index present unless the file is empty; index
 * opened), with the store's reader and its index queries, among them those of Cyrus's tools
 * with the C code's own SQL, so rows come out in the same order.
 */
import { Effect, type Scope } from "effect"
import { indexQueries, makeReader, openBackup, type BackupFiles, type BackupReader, type IndexQueries, type OpenError } from "../store/index.js"

export interface ToolBackup extends BackupFiles {
  readonly reader: BackupReader
  readonly queries: IndexQueries
}

export interface OpenToolBackupOptions {
  readonly wait: boolean
  /** `ctl_backups lock -c`: create the data file, failing if it exists. */
  readonly createExclusive?: boolean
}

export const openToolBackup = (dataPath: string, options: OpenToolBackupOptions): Effect.Effect<ToolBackup, OpenError, Scope.Scope> =>
  Effect.map(
    openBackup(dataPath, { wait: options.wait, ...(options.createExclusive ? { create: true, exclusive: true } : {}) }),
    (b) => ({ ...b, reader: makeReader(b), queries: indexQueries(b.sql, b.indexPath) })
  )
