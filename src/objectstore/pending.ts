/**
 * Chunks and bytes waiting for upload, from the host's own state only: no request to the
 * store, no data-file lock (the index is read in one read-only snapshot, src/store's
 * `readIndexSnapshot`, whose read transaction gives a consistent view; the data file is only
 * `stat`ed). For metrics (`cyrus_backup_upload_pending_*`, one synchronous pass per index
 * with the survey's own reads: `pendingInSnapshot`) and health checks.
 *
 * A chunk is pending when it is sealed and the last manifest recorded in the index
 * (src/objectstore/localState.ts) does not list it; the open chunk of a running session is
 * never pending. An index without our tables (built by Cyrus's tools) has all its chunks
 * pending until the next push, which then finds them in the store by HEAD. The rule is the
 * upload plan's own (`plannedChunks` and `pendingOf` in backupUpload.ts).
 */
import fs from "node:fs"
import { Effect, Either } from "effect"
import { indexPathOf, readIndexSnapshot, type IndexSnapshot } from "../store/index.js"
import { localError, type ObjectStoreLocalError } from "./errors.js"
import { pendingOf, plannedChunks, type Pending } from "./backupUpload.js"
import { snapshotUploadState } from "./localState.js"

export type { Pending }

export interface PendingUploads extends Pending {
  /** Sealed chunks of the data file. */
  readonly sealedChunks: number
  /** Seq of the last manifest recorded (0: none yet). */
  readonly manifestSeq: number
  /** When that manifest was written (ISO 8601), undefined if none. */
  readonly lastUpload: string | undefined
}

/** An empty data file: nothing to upload (it has no index until its first chunk). */
export const NOTHING_PENDING: PendingUploads = { chunks: 0, bytes: 0, sealedChunks: 0, manifestSeq: 0, lastUpload: undefined }

/** The pending upload of the index in `s`, whose data file is `fileEnd` bytes long. */
export const pendingInSnapshot = (s: IndexSnapshot, fileEnd: number): PendingUploads => {
  if (fileEnd === 0) return NOTHING_PENDING
  const { state, tail } = snapshotUploadState(s)
  const chunks = plannedChunks(s.chunks(), tail, state, fileEnd)
  return {
    ...pendingOf({ chunks }),
    sealedChunks: chunks.filter((c) => c.sealed).length,
    manifestSeq: state.head?.seq ?? 0,
    lastUpload: state.head?.written
  }
}

/**
 * Pending upload of the backup whose data file is `dataPath`. Fails with ObjectStoreLocalError
 * when the index cannot be read.
 */
export const pendingUploads = (dataPath: string): Effect.Effect<PendingUploads, ObjectStoreLocalError> =>
  Effect.gen(function*() {
    const indexPath = indexPathOf(dataPath)
    const fail = localError(indexPath)
    const fileEnd = yield* Effect.try({ try: () => fs.statSync(dataPath).size, catch: fail })
    if (fileEnd === 0) return NOTHING_PENDING
    if (!fs.existsSync(indexPath)) return yield* Effect.fail(fail(new Error("no index")))
    const read = readIndexSnapshot(indexPath, (s) => pendingInSnapshot(s, fileEnd))
    return Either.isRight(read) ? read.right : yield* Effect.fail(fail(read.left))
  })
