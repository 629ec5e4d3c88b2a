/**
 * Opening a backup, as Cyrus's `backup_open_paths` does it, in one sequence that every
 * reader, writer, verifier, compaction and tool goes through: the data file locked for the
 * caller's scope (dataFileLock.ts: waiting or not, created or not), the index present unless
 * the data file is empty (a data file with content but no, or an empty, index needs
 * `ctl_backups reindex` first), then the index opened (index/db.ts).
 */
import fs from "node:fs"
import { Effect, type Scope } from "effect"
import { lockDataFile, type LockedDataFile, type LockOptions } from "./dataFileLock.js"
import {
  BackupNeedsReindex,
  ioError,
  type BackupExists,
  type BackupIoError,
  type BackupLocked,
  type BackupNotFound,
  type OpenError
} from "./errors.js"
import { openIndexDb, type Sql } from "./index/db.js"
import { fileSize } from "./format/memberReader.js"

export const indexPathOf = (dataPath: string): string => `${dataPath}.index`

/** Fails with BackupNeedsReindex when the locked data file has content but its index is missing or empty. */
export const checkIndexPresent = (file: LockedDataFile): Effect.Effect<void, BackupNeedsReindex | BackupIoError> =>
  Effect.flatMap(
    Effect.try({ try: () => fs.fstatSync(file.fd).size, catch: ioError(file.path, "fstat") }),
    (size) => {
      let indexSize = 0
      try {
        indexSize = fs.statSync(indexPathOf(file.path)).size
      } catch {
        indexSize = 0
      }
      return size > 0 && indexSize === 0 ? Effect.fail(new BackupNeedsReindex({ path: file.path })) : Effect.void
    }
  )

/** A backup opened for the caller's scope: its data file locked, its index open. */
export interface BackupFiles {
  readonly dataPath: string
  readonly indexPath: string
  readonly file: LockedDataFile
  readonly sql: Sql
}

/** The first half of opening: the lock and the index check, for callers that open the index themselves. */
export const lockBackup = (
  dataPath: string,
  options: LockOptions = {}
): Effect.Effect<LockedDataFile, BackupLocked | BackupNotFound | BackupExists | BackupNeedsReindex | BackupIoError, Scope.Scope> =>
  Effect.tap(lockDataFile(dataPath, options), checkIndexPresent)

/** Locks the data file at `dataPath`, checks and opens its index, for the lifetime of the scope. */
export const openBackup = (dataPath: string, options: LockOptions = {}): Effect.Effect<BackupFiles, OpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = yield* lockBackup(dataPath, options)
    const indexPath = indexPathOf(dataPath)
    const sql = yield* openIndexDb(indexPath)
    return { dataPath, indexPath, file, sql }
  })

/** Size of the locked data file (fstat), as `backup_stat` reports it. */
export const dataFileSize = (b: Pick<BackupFiles, "file">): Effect.Effect<number, BackupIoError> => fileSize(b.file.fd, b.file.path)
