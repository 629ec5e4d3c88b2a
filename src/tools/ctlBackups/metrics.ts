/**
 * `ctl_backups metrics [--per-user] [--textfile DIR]`: the Prometheus text exposition of
 * every backup's state and of backupd's own counters (src/tools/metrics/), on stdout or
 * written atomically as `DIR/cyrus_backup.prom` for node_exporter's textfile collector
 * (a temporary file in DIR renamed over it, so the collector never reads half a file).
 * Nothing here takes a lock a running backupd needs (survey.ts).
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { CyrusConfig } from "../../config/index.js"
import { objectStoreConfigured } from "../../objectstore/index.js"
import type { BackupsDbService } from "../../store/index.js"
import { countersDirectory } from "../../telemetry/Counters.js"
import { readBackupdCounters } from "../../telemetry/countersFold.js"
import { EX_IOERR, EX_OK, EX_TEMPFAIL } from "../../util/sysexits.js"
import { exposition, type UploadPending } from "../metrics/exposition.js"
import { surveyAll, type BackupSurvey } from "../metrics/survey.js"
import type { Printer } from "../ToolIo.js"
import type { MonitorArgs } from "./MonitorArgs.js"
import { printDbUnreadable } from "./printer.js"

/**
 * Where the object-store upload state plugs in: the chunks and bytes sealed locally but not
 * yet uploaded, over the backups surveyed; undefined when not known (then no
 * `cyrus_backup_upload_pending_*` series is written). Called only when object storage is
 * configured.
 */
export type UploadPendingSource = (config: CyrusConfig, backups: ReadonlyArray<BackupSurvey>) => Effect.Effect<UploadPending | undefined>

/** No upload state known: no pending series. */
export const noUploadPending: UploadPendingSource = () => Effect.succeed(undefined)

/**
 * The host's own upload state, read by the survey in the same pass as the rest of each index
 * (src/objectstore/pending.ts: read-only, no data-file lock, no request to the store), summed
 * over the backups; a backup whose state cannot be read is left out of the sums.
 */
export const localUploadPending: UploadPendingSource = (_config, backups) =>
  Effect.sync(() => {
    let chunks = 0
    let bytes = 0
    for (const b of backups) {
      if (b.uploadPending === undefined) continue
      chunks += b.uploadPending.chunks
      bytes += b.uploadPending.bytes
    }
    return { chunks, bytes }
  })

/** The textfile collector's file name. */
export const TEXTFILE_NAME = "cyrus_backup.prom"

const writeAtomically = (dir: string, text: string) =>
  Effect.try({
    try: () => {
      const tmp = path.join(dir, `.${TEXTFILE_NAME}.${process.pid}.tmp`)
      try {
        fs.writeFileSync(tmp, text, { mode: 0o644 })
        fs.renameSync(tmp, path.join(dir, TEXTFILE_NAME))
      } catch (e) {
        fs.rmSync(tmp, { force: true })
        throw e
      }
    },
    catch: (e) => (e as Error).message
  })

export const runMetrics = (
  p: Printer,
  program: string,
  config: CyrusConfig,
  db: BackupsDbService,
  args: MonitorArgs,
  uploadPending: UploadPendingSource = localUploadPending
): Effect.Effect<number> =>
  Effect.gen(function* () {
    const now = Math.floor(Date.now() / 1000)
    const withStore = objectStoreConfigured(config)
    const surveyed = yield* Effect.either(surveyAll(db, config, now, { uploadPending: withStore }))
    if (Either.isLeft(surveyed)) {
      yield* printDbUnreadable(p, program, surveyed.left)
      return EX_TEMPFAIL
    }
    const backups = surveyed.right
    const counters = yield* readBackupdCounters(countersDirectory(config.configDirectory))
    const pending = withStore ? yield* uploadPending(config, backups) : undefined
    const text = yield* exposition({ backups, staleAfter: config.backupStaleAfter, now, perUser: args.perUser, counters, uploadPending: pending })
    if (args.textfileDir === undefined) {
      yield* p.outUtf8(text)
      return EX_OK
    }
    const written = yield* Effect.either(writeAtomically(args.textfileDir, text))
    if (Either.isLeft(written)) {
      yield* p.err(`${program}: cannot write ${path.join(args.textfileDir, TEXTFILE_NAME)}: ${written.left}\n`)
      return EX_IOERR
    }
    return EX_OK
  })
