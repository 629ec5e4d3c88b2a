/** `ctl_backups reindex`: each backup's index rebuilt from its data file. */
import { Effect } from "effect"
import { dataFileSize, reindexFile, type ReindexProblem, type ReindexRejection } from "../../store/index.js"
import { IMAP_INTERNAL } from "../cFormat.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { openToolBackup } from "../ToolBackup.js"
import type { Run } from "./Run.js"

export type ReindexResult =
  | {
    readonly _tag: "Reindexed"
    /** With -v: the offsets of the members found (read back from the new index) and the data file's size. */
    readonly found: { readonly offsets: ReadonlyArray<number>; readonly size: number | undefined } | undefined
    readonly problems: ReadonlyArray<ReindexProblem>
    readonly rejected: ReadonlyArray<ReindexRejection>
  }
  | { readonly _tag: "Failed"; readonly code: number }

export const reindexOne = (run: Run, t: Target): Effect.Effect<ReindexResult> =>
  Effect.gen(function*() {
    const result = yield* Effect.either(reindexFile(t.dataPath, { wait: run.args.wait, keepPrevious: run.config.backupKeepPrevious }))
    if (result._tag === "Left") {
      const e = result.left
      return { _tag: "Failed", code: e._tag === "BackupIndexError" ? IMAP_INTERNAL : openErrorCode(e) } as const
    }
    let found: { offsets: ReadonlyArray<number>; size: number | undefined } | undefined
    if (run.args.verbose > 0) {
      const [offsets, size] = yield* Effect.scoped(
        Effect.flatMap(openToolBackup(t.dataPath, { wait: run.args.wait }), (b) =>
          Effect.zip(Effect.map(b.queries.chunks, (cs) => cs.map((c) => c.offset)), dataFileSize(b))
        )
      ).pipe(Effect.orElseSucceed(() => [[], undefined] as const))
      found = { offsets, size }
    }
    return { _tag: "Reindexed", found, problems: result.right.problems, rejected: result.right.rejected } as const
  })
