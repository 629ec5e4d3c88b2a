/** `ctl_backups delete`: a backup's files removed under its lock, then its backups.db entries. */
import fs from "node:fs"
import { Effect } from "effect"
import { indexPathOf, lockDataFile } from "../../store/index.js"
import type { Target } from "../targets.js"
import { bytesPath, dbFailed, io, keysFor, mapOpenError } from "./maintenance.js"
import type { Run } from "./Run.js"

/** The status code of the delete: 0, or the Cyrus-style code of what failed. */
export const deleteOne = (run: Run, t: Target): Effect.Effect<number> =>
  Effect.scoped(
    Effect.gen(function*() {
      yield* mapOpenError(lockDataFile(t.dataPath, { wait: run.args.wait }))
      // while locked: no writer can be between its index and its data
      for (const p of [indexPathOf(t.dataPath), `${indexPathOf(t.dataPath)}-journal`]) {
        yield* io("unlink", () => fs.rmSync(bytesPath(p), { force: true }))
      }
      yield* io("unlink", () => fs.unlinkSync(bytesPath(t.dataPath)))
      for (const key of yield* keysFor(run.db, t)) yield* Effect.mapError(run.db.remove(key), dbFailed)
    })
  ).pipe(Effect.as(0), Effect.catchAll((e) => Effect.succeed(e.code)))
