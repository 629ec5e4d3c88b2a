/**
 * The one place where the outcome of an APPLY or GET becomes its final reply line
 * (docs/architecture.md, "APPLY and GET"). The original collapses every other failure into `NO Unknown error`
 * (docs/gaps.md G11); we keep that wire text — sync_client maps any unlisted NO the same way —
 * but log the real reason so the administrator can see it.
 */
import type { PlatformError } from "@effect/platform/Error"
import { Data, Effect } from "effect"
import type { StagingFailed } from "../protocol/dlist/errors.js"
import type { AppendError, AppendRejected, UserBackupOpenError, ReadError } from "../store/index.js"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import { ApplyReply } from "./replies.js"

/** A refusal decided by the session itself: an item it cannot decode, a GET it will not answer. */
export class Refused extends Data.TaggedError("Refused")<{
  readonly code: "protocol" | "bad-parameters" | "nonexistent"
  readonly detail: string
}> {
  override get message(): string {
    return `${this.code}: ${this.detail}`
  }
}

/** Everything an APPLY or GET can fail with. */
export type CommandFailure = Refused | UserBackupOpenError | AppendError | ReadError | StagingFailed | PlatformError

const refusedReply: Record<Refused["code"], string> = {
  protocol: ApplyReply.protocolError,
  "bad-parameters": ApplyReply.badParameters,
  nonexistent: ApplyReply.mailboxNonexistent
}

/**
 * The final line of an APPLY or GET that ran as `run`: `OK Success`, or the NO its failure
 * means. `context` (`APPLY MAILBOX`, `GET USER`, ...) names the command in the log line of a
 * failure answered `NO Unknown error`.
 */
export const toReply = <R>(run: Effect.Effect<void, CommandFailure, R>, context: string, log: ServiceLog): Effect.Effect<string, never, R> => {
  const unknown = (failure: Exclude<CommandFailure, Refused> | AppendRejected) =>
    Effect.sync(() => {
      log.error(`IOERROR: ${context}: ${failure._tag}${failure.message !== "" ? `: ${failure.message}` : ""}`)
      return ApplyReply.unknown
    })
  return run.pipe(
    Effect.as(ApplyReply.success),
    Effect.catchTags({
      Refused: (r) => Effect.succeed(refusedReply[r.code]),
      BackupLocked: () => Effect.succeed(ApplyReply.mailboxLocked),
      AppendRejected: (a) => (a.reason === "internal" ? unknown(a) : Effect.succeed(refusedReply[a.reason])),
      BackupNotFound: unknown,
      BackupExists: unknown,
      BackupNeedsReindex: unknown,
      BackupCorrupt: unknown,
      BackupIoError: unknown,
      BackupIndexError: unknown,
      BackupLocateError: unknown,
      BackupClosed: unknown,
      StagedFileMismatch: unknown,
      StagingFailed: unknown,
      SystemError: unknown,
      BadArgument: unknown
    })
  )
}
