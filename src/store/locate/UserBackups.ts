/**
 * Where each user's backup lives and how it is opened: backups.db maps the key (a userid or
 * `%SHARED`) to the data file; a new user gets a file on a partition chosen by the
 * Partitions layer. Opening takes the data-file lock for the caller's Scope.
 */
import { Context, type Effect, type Option, type Scope } from "effect"
import type { BackupWriter } from "../write/BackupWriter.js"
import type { OpenError } from "../errors.js"

export interface UserBackupsShape {
  /**
   * Opens the backup of `key` for appending. Without `create`, a key with no backup yet gives
   * None (so reads never create backups, unlike the original: docs/gaps.md G14).
   */
  readonly open: (
    key: string,
    options: { readonly create: boolean }
  ) => Effect.Effect<Option.Option<BackupWriter>, UserBackupOpenError, Scope.Scope>
}

export class UserBackups extends Context.Tag("UserBackups")<UserBackups, UserBackupsShape>() {}

export type UserBackupOpenError = OpenError | BackupLocateError

import { Data } from "effect"
/** backups.db or the partitions could not say, or make, where a backup lives. */
export class BackupLocateError extends Data.TaggedError("BackupLocateError")<{
  readonly key: string
  readonly message: string
}> {}
