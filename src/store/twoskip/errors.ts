/**
 * Errors of the twoskip database layer. Every failure that leaves this folder is one of
 * these tagged errors; raw Node errors are wrapped with the operation that failed.
 */
import { Data } from "effect"

/** A system call on the database file failed (open, read, write, fsync, rename...). */
export class TwoskipIoError extends Data.TaggedError("TwoskipIoError")<{
  readonly path: string
  readonly operation: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.operation} ${this.path}: ${this.reason}`
  }
}

/** The file does not exist and `create` was not requested. */
export class TwoskipNotFound extends Data.TaggedError("TwoskipNotFound")<{
  readonly path: string
}> {
  override get message(): string {
    return `${this.path}: no such database`
  }
}

/**
 * The bytes on disk are not a valid twoskip database, or its skip lists are broken
 * beyond what recovery can repair (bad magic, CRC mismatch, record past the end...).
 */
export class TwoskipCorrupt extends Data.TaggedError("TwoskipCorrupt")<{
  readonly path: string
  readonly offset: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.path}: damaged at offset ${this.offset}: ${this.reason}`
  }
}

/** The fcntl lock on the database file could not be taken or released. */
export class TwoskipLockError extends Data.TaggedError("TwoskipLockError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.path}: lock: ${this.reason}`
  }
}

/** `create` of a key that already exists (Cyrus CYRUSDB_EXISTS). */
export class TwoskipKeyExists extends Data.TaggedError("TwoskipKeyExists")<{
  readonly key: Uint8Array
}> {
  override get message(): string {
    return `key ${Buffer.from(this.key).toString("latin1")} exists`
  }
}

/** An empty key was given: twoskip reserves the empty key for the DUMMY record. */
export class TwoskipEmptyKey extends Data.TaggedError("TwoskipEmptyKey")<{}> {
  override get message(): string {
    return "empty key"
  }
}

export type TwoskipError =
  | TwoskipIoError
  | TwoskipNotFound
  | TwoskipCorrupt
  | TwoskipLockError
  | TwoskipKeyExists
  | TwoskipEmptyKey
