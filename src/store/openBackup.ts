/**
 * The pair of files that make a backup, and Cyrus's rule for opening them: a data file with
 * content but no (or an empty) index needs `ctl_backups reindex` first.
 */
import fs from "node:fs"
import { Effect } from "effect"
import type { LockedDataFile } from "./dataFileLock.js"
import { BackupNeedsReindex } from "./errors.js"

export const indexPathOf = (dataPath: string): string => `${dataPath}.index`

export const checkIndexPresent = (file: LockedDataFile): Effect.Effect<void, BackupNeedsReindex> =>
  Effect.suspend(() => {
    const size = fs.fstatSync(file.fd).size
    let indexSize = 0
    try {
      indexSize = fs.statSync(indexPathOf(file.path)).size
    } catch {
      indexSize = 0
    }
    return size > 0 && indexSize === 0 ? Effect.fail(new BackupNeedsReindex({ path: file.path })) : Effect.void
  })
