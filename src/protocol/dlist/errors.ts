/** Errors of the dlist codec. */
import { Data } from "effect"

/**
 * The input is not a valid dlist (or could not be taken in: a staging write failed).
 * `reason` is short and safe to show to a peer; `position` is the reader's byte position
 * where the problem was noticed.
 */
export class DlistParseError extends Data.TaggedError("DlistParseError")<{
  readonly reason: string
  readonly position: number
  readonly cause?: unknown
}> {
  override get message(): string {
    return `${this.reason} at byte ${this.position}`
  }
}

/**
 * A literal could not be staged (a full disk, a missing or read-only staging directory): the
 * line itself was well formed and has been read to its end, so the session stays in step with
 * the peer. `terminator` is the byte after the value, as a parse would return it.
 */
export class StagingFailed extends Data.TaggedError("StagingFailed")<{
  readonly path: string
  readonly message: string
  readonly terminator: number
}> {}

/** A value could not be printed (a File node where only bytes can be printed, a staged file that changed...). */
export class DlistPrintError extends Data.TaggedError("DlistPrintError")<{
  readonly reason: string
  readonly path?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.path === undefined ? this.reason : `${this.path}: ${this.reason}`
  }
}
