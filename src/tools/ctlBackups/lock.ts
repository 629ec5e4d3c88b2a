/**
 * `ctl_backups lock`: hold one backup's lock (after a quick verify) until stdin ends (`-p`),
 * while sqlite3 runs on its index (`-s`), or while a shell command runs (`-x`, with the file
 * names in its environment). What it says while it works goes out as it happens.
 */
import { Effect } from "effect"
import { EX_SOFTWARE } from "../../util/sysexits.js"
import { cyrusVerify } from "../cyrusVerify.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { openToolBackup } from "../ToolBackup.js"
import { runChild, untilStdinEnds } from "./childProcess.js"
import { lockLines } from "./printer.js"
import type { Run } from "./Run.js"

export type LockResult =
  /** The lock could not be had (the reason was printed): the run exits EX_SOFTWARE. */
  | { readonly _tag: "NotLocked" }
  /** Held and released; `status` is the child's exit status (0 for `-p`). */
  | { readonly _tag: "Released"; readonly status: number }

export const lockOne = (run: Run, t: Target): Effect.Effect<LockResult> =>
  Effect.scoped(
    Effect.gen(function*() {
      const { io, args } = run
      const say = lockLines(run, t)
      yield* say.trying
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: args.wait, createExclusive: args.createExclusive }))
      const r = opened._tag === "Left" ? openErrorCode(opened.left) : (yield* cyrusVerify(opened.right, "quick", 0)).code
      if (opened._tag === "Left" || r !== 0) {
        yield* say.refused(r)
        return { _tag: "NotLocked" } as const
      }
      const b = opened.right
      if (args.lockMode === "pipe") {
        yield* say.locked
        yield* untilStdinEnds(io)
        return { _tag: "Released", status: 0 } as const
      }
      if (args.lockMode === "sql") {
        yield* say.execSql(b.indexPath)
        return { _tag: "Released", status: yield* runChild(io, "sqlite3", [b.indexPath], { ...io.env }) } as const
      }
      const status = yield* runChild(io, "/bin/sh", ["-c", args.lockCommand ?? ""], {
        ...io.env,
        ctl_backups_lock_data_fname: b.dataPath,
        ctl_backups_lock_index_fname: b.indexPath
      })
      return { _tag: "Released", status } as const
    })
  )

/** The run's exit code after a lock (EX_SOFTWARE when it was not had), counted as the C loop counts it. */
export const lockExitCode = (result: LockResult): number => (result._tag === "NotLocked" ? EX_SOFTWARE : result.status)
