/**
 * Errors of the backup store. Each names what went wrong in terms a caller can act on; its
 * `message` (for logs, never a stack trace) is the detail it carries, or is made from its
 * fields.
 */
import { Data } from "effect"

/** Another process (or another open in this process) holds the data-file lock. */
export class BackupLocked extends Data.TaggedError("BackupLocked")<{ readonly path: string }> {
  override get message(): string {
    return `${this.path}: locked by another process`
  }
}

/** The data file does not exist and creation was not asked for. */
export class BackupNotFound extends Data.TaggedError("BackupNotFound")<{ readonly path: string }> {
  override get message(): string {
    return `${this.path}: no such data file`
  }
}

/** Exclusive creation was asked for but the data file exists. */
export class BackupExists extends Data.TaggedError("BackupExists")<{ readonly path: string }> {
  override get message(): string {
    return `${this.path}: already exists`
  }
}

/** The data file has content but its index is missing or empty: `ctl_backups reindex` is needed. */
export class BackupNeedsReindex extends Data.TaggedError("BackupNeedsReindex")<{ readonly path: string }> {
  override get message(): string {
    return `${this.path}: the data file has no index (ctl_backups reindex makes one)`
  }
}

/** The data file and its index disagree (checksums, lengths, a damaged member). */
export class BackupCorrupt extends Data.TaggedError("BackupCorrupt")<{
  readonly path: string
  readonly message: string
}> {}

/** A file-system call failed; `message` is the system's own text. */
export class BackupIoError extends Data.TaggedError("BackupIoError")<{
  readonly path: string
  readonly op: string
  readonly message: string
}> {}

/** The BackupIoError of a failed `op` on `path` (for `Effect.try`'s and `Effect.tryPromise`'s `catch`). */
export const ioError = (path: string, op: string) => (e: unknown): BackupIoError =>
  new BackupIoError({ path, op, message: (e as Error).message ?? String(e) })

/** The SQLite index failed (open, query, commit). */
export class BackupIndexError extends Data.TaggedError("BackupIndexError")<{
  readonly path: string
  readonly message: string
}> {}

/**
 * An APPLY item the index cannot take: `reason` mirrors Cyrus's codes
 * (`bad-parameters` = IMAP_PROTOCOL_BAD_PARAMETERS, `protocol` = IMAP_PROTOCOL_ERROR for an
 * unknown key, `nonexistent` = IMAP_MAILBOX_NONEXISTENT). Nothing of the item was kept.
 */
export class AppendRejected extends Data.TaggedError("AppendRejected")<{
  readonly key: string
  readonly reason: "bad-parameters" | "protocol" | "nonexistent" | "internal"
  readonly message: string
}> {}

/** A staged message file no longer matches its size or GUID; the APPLY was not written. */
export class StagedFileMismatch extends Data.TaggedError("StagedFileMismatch")<{
  readonly path: string
  readonly message: string
}> {}

/** The writer was used after its scope closed, or after a failure it could not undo. */
export class BackupClosed extends Data.TaggedError("BackupClosed")<{ readonly path: string }> {
  override get message(): string {
    return `${this.path}: the backup was closed`
  }
}

export type OpenError =
  | BackupLocked
  | BackupNotFound
  | BackupExists
  | BackupNeedsReindex
  | BackupCorrupt
  | BackupIoError
  | BackupIndexError

export type AppendError =
  | AppendRejected
  | StagedFileMismatch
  | BackupIoError
  | BackupIndexError
  | BackupClosed
