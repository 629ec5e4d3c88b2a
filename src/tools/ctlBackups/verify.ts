/** `ctl_backups verify`: the full check of each backup, reported as the C tools report it. */
import { Effect } from "effect"
import { cyrusVerify, type CyrusVerifyResult } from "../cyrusVerify.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { openToolBackup } from "../ToolBackup.js"
import type { Run } from "./Run.js"

/** The backup could not be opened (`code`), or the verifier's result. */
export type VerifyResult = CyrusVerifyResult | { readonly code: number; readonly output?: undefined; readonly diagnostics?: undefined }

export const verifyOne = (run: Run, t: Target): Effect.Effect<VerifyResult> =>
  Effect.scoped(
    Effect.gen(function*() {
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
      if (opened._tag === "Left") return { code: openErrorCode(opened.left) }
      return yield* cyrusVerify(opened.right, "full", run.args.verbose)
    })
  )
