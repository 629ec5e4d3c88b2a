/** `ctl_backups list`: each backup's last chunk end time and data file size (with a quick verify first, unless -V). */
import { Effect } from "effect"
import { objectStoreConfigured } from "../../objectstore/settings.js"
import type { Pending } from "../../objectstore/index.js"
import { dataFileSize } from "../../store/index.js"
import { localTime } from "../cFormat.js"
import { lastSuccessOf } from "../metrics/stale.js"
import { cyrusVerify } from "../cyrusVerify.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { openToolBackup } from "../ToolBackup.js"
import type { Run } from "./Run.js"

export type ListResult =
  /**
   * `timestamp` is the last chunk's end in local time, or `[unknown]`; `size` -1 if unknown;
   * `lastSuccess` that end in unix seconds (its start if it has none; undefined: no chunk,
   * `lastSuccessOf`), for `-j` (our extension).
   */
  | {
    readonly _tag: "Listed"
    readonly timestamp: string
    readonly size: number
    readonly lastSuccess: number | undefined
    readonly pending?: Pending | undefined
  }
  /** `-t hours`: written to more recently than that, so left out. */
  | { readonly _tag: "Recent" }
  | { readonly _tag: "Failed"; readonly code: number }

export const listBackup = (run: Run, t: Target): Effect.Effect<ListResult> =>
  Effect.scoped(
    Effect.gen(function*() {
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
      if (opened._tag === "Left") return { _tag: "Failed", code: openErrorCode(opened.left) } as const
      const b = opened.right
      if (!run.args.noVerify) {
        const code = (yield* cyrusVerify(b, "quick", 0)).code
        if (code !== 0) return { _tag: "Failed", code } as const
      }
      const latest = yield* b.queries.latestChunk.pipe(Effect.orElseSucceed(() => undefined))
      let timestamp = "[unknown]"
      if (latest !== undefined) {
        const end = latest.tsEnd ?? 0
        if (run.args.listStale && Math.floor(Date.now() / 1000) - end < 3600 * run.args.listStale) return { _tag: "Recent" } as const
        timestamp = localTime(end)
      }
      const lastSuccess = lastSuccessOf(latest)
      const size = yield* dataFileSize(b).pipe(Effect.orElseSucceed(() => -1))
      // with object storage on: chunks and bytes not in the bucket yet (from the index alone)
      const storeOn = objectStoreConfigured(run.config)
      // (the upload planner is loaded only then)
      const pending = storeOn
        ? yield* Effect.flatMap(Effect.promise(() => import("../../objectstore/backupUpload.js")), ({ planUpload, pendingOf }) =>
          planUpload(b.sql, b.indexPath, t.userid ?? t.dataPath, t.dataPath, Math.max(size, 0)).pipe(Effect.map(pendingOf), Effect.orElseSucceed(() => undefined))
        )
        : undefined
      return { _tag: "Listed", timestamp, size, lastSuccess, pending } as const
    })
  )
