/**
 * What `ctl_backups metrics` and `health` know of each backup, read without getting in
 * backupd's way: backups.db is listed as `ctl_backups list -A` lists it (its own brief read
 * lock, as every Cyrus reader of it), each data file and index is only stat'ed, and each index
 * is read read-only in one snapshot (`readIndexSnapshot`: no data-file lock, nothing created or
 * upgraded) with the same chunk queries `list` and `compact` ask, and, with object storage
 * configured, the upload state (`pendingInSnapshot`, the rule of src/objectstore/pending.ts).
 * Whether a backup is locked comes from /proc/locks, not from trying its lock. Nothing is ever
 * written.
 *
 * "Last success" is the end time of the backup's latest chunk (advanced by every APPLY backupd
 * acknowledges), or its start time when the chunk has no end (a Cyrus backupd that stopped
 * before ending it: the chunk exists only once an APPLY was committed into it). `list -j`,
 * `stat -j`, `metrics` and `health` all take it from `lastSuccessOf`. A backup is stale when
 * that is longer ago than `backup_stale_after`, or unknown (no chunk, or an index that cannot
 * be read).
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import type { CyrusConfig } from "../../config/index.js"
import { NOTHING_PENDING, pendingInSnapshot, type Pending } from "../../objectstore/index.js"
import { compactRequired, indexPathOf, indexSummaryOf, readIndexSnapshot, type BackupsDbError, type BackupsDbService } from "../../store/index.js"
import { collectNow } from "../../util/bufferPacer.js"
import { lastSuccessOf } from "./stale.js"
import { readHeldLocks, type HeldLocks } from "../../util/HeldLocks.js"
import { listFromDb, type Target } from "../targets.js"

export interface BackupSurvey {
  readonly userid: string
  readonly dataPath: string
  /** The data file's size; undefined when it is missing. */
  readonly dataBytes: number | undefined
  readonly indexBytes: number | undefined
  readonly chunks: number
  /** Unix seconds of the latest chunk's end; undefined: no chunk, or the index is unreadable. */
  readonly lastSuccess: number | undefined
  /** Compaction would do something by the configured rules (what `compact` without -F checks). */
  readonly compactionWanted: boolean
  /** Some process holds the data file's lock; undefined where locks cannot be seen. */
  readonly locked: boolean | undefined
  /** Why the index could not be read, if it could not. */
  readonly unreadable: string | undefined
  /**
   * Sealed chunks not in the object store yet (src/objectstore/pending.ts), read in the same
   * pass as the rest; undefined when not asked for (no object storage) or not readable.
   */
  readonly uploadPending: Pending | undefined
}

export interface SurveyOptions {
  /** Also read each backup's upload state (object storage is configured). */
  readonly uploadPending?: boolean
}

const statOf = (p: string): fs.Stats | undefined => {
  try {
    return fs.statSync(p)
  } catch {
    return undefined
  }
}

/** Only the two counts are kept (10^4 of them live until the exposition is written). */
const countsOf = (p: Pending): Pending => ({ chunks: p.chunks, bytes: p.bytes })

/** The index's figures, read-only, in one snapshot; the upload state too when `fileEnd` is given. */
const readIndex = (config: CyrusConfig, indexPath: string, now: number, fileEnd: number | undefined) =>
  readIndexSnapshot(indexPath, (s) => {
    const { chunks, live } = indexSummaryOf(s, config.backupRetention > 0 ? now - config.backupRetention : -1)
    const latest = chunks[chunks.length - 1]
    return {
      chunks: chunks.length,
      lastSuccess: lastSuccessOf(latest),
      compactionWanted: compactRequired(chunks, live, {
        minBytes: config.backupCompactMinBytes,
        maxBytes: config.backupCompactMaxBytes,
        workThreshold: config.backupCompactEffectiveWorkThreshold
      }),
      uploadPending: fileEnd === undefined ? undefined : countsOf(pendingInSnapshot(s, fileEnd))
    }
  })

/** One backup, read-only. */
export const surveyBackup = (config: CyrusConfig, t: Target, locks: HeldLocks | undefined, now: number, options: SurveyOptions = {}): BackupSurvey => {
  const data = statOf(t.dataPath)
  const indexPath = indexPathOf(t.dataPath)
  const index = statOf(indexPath)
  const base = {
    userid: t.userid ?? "",
    dataPath: t.dataPath,
    dataBytes: data?.size,
    indexBytes: index?.size,
    locked: locks === undefined || data === undefined ? undefined : locks.isLocked(data.dev, data.ino)
  }
  if (index === undefined || index.size === 0) {
    // an empty data file has no index until its first chunk
    const why = data === undefined ? "data file missing" : data.size === 0 ? undefined : "index missing"
    const uploadPending = options.uploadPending === true && data?.size === 0 ? NOTHING_PENDING : undefined
    return { ...base, chunks: 0, lastSuccess: undefined, compactionWanted: false, unreadable: why, uploadPending }
  }
  const read = readIndex(config, indexPath, now, options.uploadPending === true ? data?.size : undefined)
  if (Either.isLeft(read)) return { ...base, chunks: 0, lastSuccess: undefined, compactionWanted: false, unreadable: read.left.message, uploadPending: undefined }
  return { ...base, ...read.right, unreadable: undefined }
}

/**
 * Backups surveyed between two full collections. Each index read leaves about 2.8 KB of dead
 * objects (a closed better-sqlite3 connection, its statements and rows), which V8 promoted
 * and kept: over 10^4 backups its heap grew to 43 MB, 16 MB of it live (peak RSS 133–139 MB
 * with object storage configured). A collection of that heap costs 25–50 ms here.
 */
const SURVEY_COLLECT_EVERY = 2500

/** Every backup of backups.db, in key order. */
export const surveyAll = (
  db: BackupsDbService,
  config: CyrusConfig,
  now: number = Math.floor(Date.now() / 1000),
  options: SurveyOptions = {}
): Effect.Effect<ReadonlyArray<BackupSurvey>, BackupsDbError> =>
  Effect.flatMap(listFromDb(db, config, "all", []), (targets) => {
    const locks = readHeldLocks()
    // one synchronous loop: no Effect per backup (10^4 of them must fit in 10 s and 128 MB),
    // with a full collection every SURVEY_COLLECT_EVERY backups for the dead connections
    return Effect.sync(() =>
      targets.map((t, i) => {
        if (i > 0 && i % SURVEY_COLLECT_EVERY === 0) collectNow()
        return surveyBackup(config, t, locks, now, options)
      })
    )
  })
