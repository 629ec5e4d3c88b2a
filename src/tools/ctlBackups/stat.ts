/** `ctl_backups stat`: sizes, compactable bytes and ratios of each backup, and its last chunk's times. */
import { Effect } from "effect"
import { dataFileSize } from "../../store/index.js"
import { IMAP_INTERNAL, IMAP_IOERROR, localTime } from "../cFormat.js"
import { cyrusVerify } from "../cyrusVerify.js"
import { lastSuccessOf } from "../metrics/stale.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { openToolBackup } from "../ToolBackup.js"
import type { Run } from "./Run.js"

export interface BackupStats {
  readonly _tag: "Stats"
  /** The data file's size. */
  readonly compressed: number
  readonly uncompressed: number
  /** Bytes of the live messages of the chunks compaction would keep. */
  readonly compactable: number
  /** Percentages, as the C code computes them (may be NaN or Infinity). */
  readonly compressionRatio: number
  readonly utilisationRatio: number
  /** The last chunk's start and end, in local time, or `[unknown]`. */
  readonly lastStart: string
  readonly lastEnd: string
  /** The last chunk's end in unix seconds, as `list -j` gives it (`lastSuccessOf`), for `-j` (our extension). */
  readonly lastSuccess: number | undefined
}

export type StatResult = BackupStats | { readonly _tag: "Failed"; readonly code: number }

export const statBackup = (run: Run, t: Target): Effect.Effect<StatResult> =>
  Effect.scoped(
    Effect.gen(function*() {
      const failed = (code: number) => ({ _tag: "Failed", code }) as const
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
      if (opened._tag === "Left") return failed(openErrorCode(opened.left))
      const b = opened.right
      if (!run.args.noVerify) {
        const v = yield* cyrusVerify(b, "quick", 0)
        if (v.code !== 0) return failed(v.code)
      }
      const retention = run.config.backupRetention
      const since = retention > 0 ? Math.floor(Date.now() / 1000) - retention : -1
      const q = b.queries
      const figures = yield* Effect.either(
        Effect.gen(function*() {
          const all = yield* q.chunks
          const keep = yield* q.liveChunks(since)
          let uncompressed = 0
          for (const c of all) uncompressed += c.length ?? 0
          let compactable = 0
          for (const c of keep) for (const m of yield* q.liveMessages(c.id, since)) compactable += m.size
          const latest = yield* q.latestChunk
          return { uncompressed, compactable, latest }
        })
      )
      if (figures._tag === "Left") return failed(IMAP_INTERNAL)
      const { uncompressed, compactable, latest } = figures.right
      const size = yield* dataFileSize(b).pipe(Effect.orElseSucceed(() => -1))
      if (size < 0) return failed(IMAP_IOERROR)
      return {
        _tag: "Stats",
        compressed: size,
        uncompressed,
        compactable,
        compressionRatio: (100.0 * size) / uncompressed,
        utilisationRatio: (100.0 * compactable) / uncompressed,
        lastStart: latest === undefined ? "[unknown]" : localTime(latest.tsStart),
        lastEnd: latest === undefined ? "[unknown]" : localTime(latest.tsEnd ?? 0),
        lastSuccess: lastSuccessOf(latest)
      } as const
    })
  )
