/**
 * One backup brought up to date in the bucket while the caller holds its lock (`ctl_backups
 * push`, compaction): every pending sealed chunk uploaded through the locked descriptor, the
 * next manifest, then the housekeeping of docs/storage.md: dropped objects past retention
 * deleted (lock refusals reported, the object kept), Object Lock retention extended, old
 * manifests pruned.
 */
import { Effect } from "effect"
import { dataFileSize, type BackupFiles } from "../store/index.js"
import { pendingOf, planUpload, recordUpload, runUpload, type Pending, type UploadOutcome } from "./backupUpload.js"
import { localError, type ObjectStoreError, type ObjectStoreLocalError } from "./errors.js"
import type { DroppedObject } from "./Manifest.js"
import type { DeleteReport, ObjectStoreShape } from "./ObjectStore.js"
import { recordDropped } from "./localState.js"

export interface PushReport {
  readonly user: string
  readonly outcome: UploadOutcome
  /** Still pending after the push (0 unless the index changed meanwhile). */
  readonly pending: Pending
  readonly deleted: DeleteReport | undefined
  readonly pruned: DeleteReport | undefined
  readonly extended: number
}


export interface PushOptions {
  /** Write a full manifest (after compaction). */
  readonly full?: boolean
  /** Compaction: the objects the data file used before; those not used any more are dropped now. */
  readonly dropFrom?: ReadonlyArray<{ readonly object: string; readonly versionId?: string | undefined }>
  /** Compaction: the dropped list recorded in the index before (the new index has none). */
  readonly carryDropped?: ReadonlyArray<DroppedObject>
  /** Skip deletion, lock extension and pruning (just upload and the manifest). */
  readonly uploadOnly?: boolean
  readonly now?: Date
}

export const pushLocked = (
  store: ObjectStoreShape,
  user: string,
  files: BackupFiles,
  options: PushOptions = {}
): Effect.Effect<PushReport, ObjectStoreError | ObjectStoreLocalError> =>
  Effect.gen(function*() {
    const local = localError(files.dataPath)
    const end = yield* dataFileSize(files).pipe(Effect.mapError(local))
    const plan = yield* planUpload(files.sql, files.indexPath, user, files.dataPath, end).pipe(Effect.mapError(local))
    const outcome = yield* runUpload(store, plan, files.file.fd, { full: options.full, dropFrom: options.dropFrom, carryDropped: options.carryDropped, now: options.now })
    yield* recordUpload(files.sql, files.indexPath, outcome).pipe(Effect.mapError(local))
    const after = yield* planUpload(files.sql, files.indexPath, user, files.dataPath, end).pipe(Effect.mapError(local))
    if (options.uploadOnly === true) return { user, outcome, pending: pendingOf(after), deleted: undefined, pruned: undefined, extended: 0 }
    const now = options.now ?? new Date()
    let deleted: DeleteReport | undefined
    if (after.dropped.length > 0) {
      deleted = yield* store.deleteExpired(after.dropped, now)
      if (deleted.remaining.length !== after.dropped.length) yield* recordDropped(files.sql, deleted.remaining).pipe(Effect.mapError(local))
    }
    const live = after.chunks.flatMap((c) => (c.known === undefined ? [] : [{ object: c.known.object, versionId: c.known.versionId }]))
    const extended = yield* store.extendLocks(after.headObject === undefined || after.headObject === "" ? live : [...live, { object: after.headObject }], now)
    const pruned = yield* Effect.flatMap(store.userDir(user), (dir) => store.pruneManifests(dir, now))
    return { user, outcome, pending: pendingOf(after), deleted, pruned, extended }
  })
