/** What can stop a restore, each with the exit code (sysexits) it ends the program with. */
import { Data } from "effect"

/** The destination could not be reached, or the connection broke. */
export class SyncConnectError extends Data.TaggedError("SyncConnectError")<{
  readonly server: string
  readonly message: string
}> {}

/** Authentication was refused or no usable mechanism was offered. */
export class SyncAuthError extends Data.TaggedError("SyncAuthError")<{
  readonly server: string
  readonly message: string
}> {}

/** The destination said something we cannot read, or `BAD`. */
export class SyncProtocolError extends Data.TaggedError("SyncProtocolError")<{
  readonly command: string
  readonly message: string
}> {}

/** The destination answered `NO` (the text after `NO `). */
export class SyncCommandRefused extends Data.TaggedError("SyncCommandRefused")<{
  readonly command: string
  readonly reply: string
}> {}

/** `-z` was given but the destination does not offer compression. */
export class CompressionUnavailable extends Data.TaggedError("CompressionUnavailable")<{
  readonly server: string
}> {
  override get message(): string {
    return `${this.server}: compression required (-z) but not available`
  }
}

/** There is no backup under that name. */
export class NoSuchBackup extends Data.TaggedError("NoSuchBackup")<{
  readonly name: string
}> {
  override get message(): string {
    return `${this.name}: no backup found`
  }
}

/** The `-F` file could not be read. */
export class InputFileError extends Data.TaggedError("InputFileError")<{
  readonly path: string
  readonly message: string
}> {}

export type SyncError = SyncConnectError | SyncAuthError | SyncProtocolError | SyncCommandRefused | CompressionUnavailable
