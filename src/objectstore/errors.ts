/**
 * Errors of the object store. Every one that comes from the store names the endpoint and the
 * bucket in its `message`, so a log line or a tool's error output says where to look; none
 * carries a stack trace. `transient` errors are the ones the retry schedule retries.
 */
import { Data } from "effect"

/** The `backup_objectstore_*` settings or the files they name are unusable. */
export class ObjectStoreConfigError extends Data.TaggedError("ObjectStoreConfigError")<{
  /** The option or file at fault. */
  readonly subject: string
  readonly message: string
}> {}

/** No answer from the store: connection refused or reset, DNS, timeout. Retried. */
export class ObjectStoreUnreachable extends Data.TaggedError("ObjectStoreUnreachable")<{
  readonly endpoint: string
  readonly bucket: string
  readonly operation: string
  readonly message: string
}> {}

/** The store refused the credentials (unknown key id, bad signature) or the request (access denied). */
export class ObjectStoreAccessDenied extends Data.TaggedError("ObjectStoreAccessDenied")<{
  readonly endpoint: string
  readonly bucket: string
  readonly operation: string
  /** The S3 error code: InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied… */
  readonly code: string
  readonly message: string
}> {}

/** The configured bucket does not exist. */
export class ObjectStoreNoSuchBucket extends Data.TaggedError("ObjectStoreNoSuchBucket")<{
  readonly endpoint: string
  readonly bucket: string
  readonly message: string
}> {}

/** A delete (or retention change) the store refused because of Object Lock retention. */
export class ObjectStoreLockRefused extends Data.TaggedError("ObjectStoreLockRefused")<{
  readonly endpoint: string
  readonly bucket: string
  readonly key: string
  /** ISO time the object is locked until, when the store told us. */
  readonly retainUntil: string | undefined
  readonly message: string
}> {}

/** Any other refusal or failure of a request. `transient` ones (5xx, throttling) are retried. */
export class ObjectStoreRequestFailed extends Data.TaggedError("ObjectStoreRequestFailed")<{
  readonly endpoint: string
  readonly bucket: string
  readonly operation: string
  readonly key: string | undefined
  readonly status: number | undefined
  readonly code: string | undefined
  readonly transient: boolean
  readonly message: string
}> {}

/** An object is not what the manifest says: size, checksum, age decryption, gzip. */
export class ObjectStoreIntegrityError extends Data.TaggedError("ObjectStoreIntegrityError")<{
  readonly endpoint: string
  readonly bucket: string
  readonly key: string
  readonly message: string
}> {}

/** The bucket prefix was set up differently (encryption on/off, other recipients, unknown format). */
export class ObjectStoreLayoutError extends Data.TaggedError("ObjectStoreLayoutError")<{
  readonly endpoint: string
  readonly bucket: string
  readonly prefix: string
  readonly message: string
}> {}

/** The local chunk cannot be read or is not a sealed gzip member of the expected size. */
export class ObjectStoreSourceError extends Data.TaggedError("ObjectStoreSourceError")<{
  readonly path: string
  readonly message: string
}> {}

export type ObjectStoreError =
  | ObjectStoreConfigError
  | ObjectStoreUnreachable
  | ObjectStoreAccessDenied
  | ObjectStoreNoSuchBucket
  | ObjectStoreLockRefused
  | ObjectStoreRequestFailed
  | ObjectStoreIntegrityError
  | ObjectStoreLayoutError
  | ObjectStoreSourceError

/** Whether the retry schedule should try again after this error. */
export const isTransient = (e: ObjectStoreError): boolean =>
  e._tag === "ObjectStoreUnreachable" || (e._tag === "ObjectStoreRequestFailed" && e.transient)

/** The host's own upload state (the index, the data file's size) cannot be read or written. */
export class ObjectStoreLocalError extends Data.TaggedError("ObjectStoreLocalError")<{
  readonly path: string
  readonly message: string
}> {}

/** An ObjectStoreLocalError for `path` from whatever failed. */
export const localError = (path: string) => (e: unknown): ObjectStoreLocalError =>
  new ObjectStoreLocalError({ path, message: `${path}: ${(e as { message?: string }).message ?? String(e)}` })
