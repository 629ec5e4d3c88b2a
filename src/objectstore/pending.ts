/**
 * Chunks and bytes waiting for upload, from the host's own state only: no request to the
 * store, no data-file lock (the index is read on a read-only SQLite connection, whose own
 * locking gives a consistent snapshot; the data file is only `stat`ed). For
 * `ctl_backups list`, metrics (`cyrus_backup_upload_pending_*`) and health checks.
 *
 * A chunk is pending when it is sealed and the last manifest recorded in the index
 * (src/objectstore/localState.ts) does not list it; the open chunk of a running session is
 * never pending. An index without our tables (built by Cyrus's tools) has all its chunks
 * pending until the next push, which then finds them in the store by HEAD.
 */
import fs from "node:fs"
import * as Reactivity from "@effect/experimental/Reactivity"
import { Effect } from "effect"
import { indexPathOf } from "../store/index.js"
import { localError, type ObjectStoreLocalError } from "./errors.js"
import { pendingOf, planUpload, type Pending } from "./backupUpload.js"

export type { Pending }


export interface PendingUploads extends Pending {
  /** Sealed chunks of the data file. */
  readonly sealedChunks: number
  /** Seq of the last manifest recorded (0: none yet). */
  readonly manifestSeq: number
  /** When that manifest was written (ISO 8601), undefined if none. */
  readonly lastUpload: string | undefined
}

/**
 * Pending upload of the backup whose data file is `dataPath` (`user` is its backups.db key; it
 * only labels the plan). Fails with ObjectStoreLocalError when the index cannot be read.
 */
export const pendingUploads = (dataPath: string, user = ""): Effect.Effect<PendingUploads, ObjectStoreLocalError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const indexPath = indexPathOf(dataPath)
      const fail = localError(indexPath)
      const fileEnd = yield* Effect.try({ try: () => fs.statSync(dataPath).size, catch: fail })
      if (fileEnd === 0) return { chunks: 0, bytes: 0, sealedChunks: 0, manifestSeq: 0, lastUpload: undefined }
      if (!fs.existsSync(indexPath)) return yield* Effect.fail(fail(new Error("no index")))
      // imported here: a process that never asks pays nothing for SQLite
      const SqliteClient = yield* Effect.promise(() => import("@effect/sql-sqlite-node/SqliteClient"))
      const sql = yield* SqliteClient.make({ filename: indexPath, readonly: true, disableWAL: true }).pipe(
        Effect.provide(Reactivity.layer),
        Effect.catchAllDefect((d) => Effect.fail(d)),
        Effect.mapError(fail)
      )
      const plan = yield* planUpload(sql, indexPath, user, dataPath, fileEnd).pipe(Effect.mapError(fail))
      return {
        ...pendingOf(plan),
        sealedChunks: plan.chunks.filter((c) => c.sealed).length,
        manifestSeq: plan.recorded?.seq ?? 0,
        lastUpload: plan.recorded?.written
      }
    })
  )
