/** `ctl_backups compact`: each backup compacted by the configured rules (src/store/maintain/compact.ts). */
import { Effect } from "effect"
import { memberDigestsFor } from "../../objectstore/settings.js"
import { compactBackup, type CompactReport } from "../../store/index.js"
import { IMAP_IOERROR } from "../cFormat.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { afterCompact, beforeCompact } from "./objectStore.js"
import type { Run } from "./Run.js"

export type CompactResult =
  | { readonly _tag: "Compacted"; readonly report: CompactReport }
  /** Not worth doing by the thresholds (and not forced with -F). */
  | { readonly _tag: "NotNeeded" }
  /** `message`: what to say about it on stderr, if anything. */
  | { readonly _tag: "Failed"; readonly code: number; readonly message: string | undefined }

export const compactOne = (run: Run, t: Target): Effect.Effect<CompactResult> =>
  Effect.gen(function*() {
    const c = run.config
    // object storage on: what the bucket holds now, for the dropped list afterwards
    const before = yield* beforeCompact(run, t)
    const result = yield* Effect.either(
      compactBackup(t.dataPath, {
        retention: c.backupRetention,
        minBytes: c.backupCompactMinBytes,
        maxBytes: c.backupCompactMaxBytes,
        workThreshold: c.backupCompactEffectiveWorkThreshold,
        keepPrevious: c.backupKeepPrevious,
        force: run.args.force,
        wait: run.args.wait,
        stagingDir: c.backupStagingPath,
        // object storage, clear layout: the rewritten chunks' digests, for the push that follows
        memberDigests: memberDigestsFor(c)
      })
    )
    if (result._tag === "Left") {
      const e = result.left
      const said = e._tag === "CompactFailed" || e._tag === "BackupIoError" || e._tag === "BackupIndexError"
      return { _tag: "Failed", code: e._tag === "CompactFailed" ? IMAP_IOERROR : openErrorCode(e), message: said ? e.message : undefined } as const
    }
    if (result.right.compacted) yield* afterCompact(run, t, before)
    return result.right.compacted ? ({ _tag: "Compacted", report: result.right } as const) : ({ _tag: "NotNeeded" } as const)
  })
