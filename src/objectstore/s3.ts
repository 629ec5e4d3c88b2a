/**
 * The S3 side: the AWS SDK for JavaScript v3 loaded on first use, one client per store,
 * errors of the SDK mapped to our tagged errors (every message names the endpoint and the
 * bucket), and the retry schedule (exponential backoff with jitter, Effect `Schedule`).
 *
 * Checksums: every PutObject and UploadPart body goes with one checksum the store verifies.
 * Ceph 16's radosgw ignores the newer `x-amz-checksum-*` headers, so the SDK's own checksum
 * calculation is switched to "when required". A body whose SHA-256 the caller already put in
 * `x-amz-content-sha256` (upload.ts, clear layout: hashes computed while the member was named)
 * is covered by SigV4, which signs that header, and radosgw (like AWS S3) refuses a body that
 * does not match it (400 XAmzContentSHA256Mismatch): such a request gets no Content-MD5, which
 * would only check the same bytes again at a third of SHA-256's speed. Every other request with
 * a body in memory (encrypted parts, manifests, DeleteObjects, retention) gets `Content-MD5`,
 * which radosgw verifies (400 BadDigest); the SDK's signer then signs its own SHA-256 as well.
 */
import { createHash } from "node:crypto"
import type * as S3 from "@aws-sdk/client-s3"
import { Duration, Effect, Schedule } from "effect"
import {
  isTransient,
  ObjectStoreAccessDenied,
  ObjectStoreNoSuchBucket,
  ObjectStoreRequestFailed,
  ObjectStoreUnreachable,
  type ObjectStoreError
} from "./errors.js"
import type { Credentials, ObjectStoreSettings } from "./settings.js"

export interface Sdk {
  readonly s3: typeof S3
}

let sdkLoad: Promise<Sdk> | undefined
/** Imports the SDK once; the first call pays for it (the module graph is large). */
export const loadSdk = (): Promise<Sdk> => {
  // the SDK warns on stderr under Node < 22; our tools' output must stay as documented
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"
  return (sdkLoad ??= import("@aws-sdk/client-s3").then((s3) => ({ s3 })))
}

export interface ClientOptions {
  /** Time allowed to open a connection (ms). */
  readonly connectionTimeoutMs: number
  /** Socket inactivity allowed during a request (ms). */
  readonly requestTimeoutMs: number
}

const md5Base64 = (body: Uint8Array | string) => createHash("md5").update(body).digest("base64")

const SIGNED_SHA256 = /^[0-9a-f]{64}$/i

/**
 * True when the request's body is already covered by a payload SHA-256 that SigV4 will sign: a
 * 64-hex `x-amz-content-sha256` set before signing (not UNSIGNED-PAYLOAD, not a streaming one).
 */
const hasSignedPayloadHash = (headers: Record<string, string>): boolean =>
  Object.entries(headers).some(([h, v]) => h.toLowerCase() === "x-amz-content-sha256" && SIGNED_SHA256.test(v))

const ignore = () => undefined
const quietLogger = { trace: ignore, debug: ignore, info: ignore, warn: ignore, error: ignore }

export const makeClient = (sdk: Sdk, settings: ObjectStoreSettings, credentials: Credentials, options: ClientOptions): S3.S3Client => {
  const client = new sdk.s3.S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials,
    // our Schedule retries whole operations; one attempt per SDK call
    maxAttempts: 1,
    // failures are reported by us, classified (the SDK's default logger would print its own
    // warning to the console when a request with a stream body fails)
    logger: quietLogger,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { connectionTimeout: options.connectionTimeoutMs, requestTimeout: options.requestTimeoutMs }
  })
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { headers?: Record<string, string>; body?: unknown }
      if (req.headers !== undefined && !Object.keys(req.headers).some((h) => h.toLowerCase() === "content-md5") && !hasSignedPayloadHash(req.headers)) {
        if (req.body instanceof Uint8Array || (typeof req.body === "string" && req.body !== "")) {
          req.headers["content-md5"] = md5Base64(req.body)
        }
      }
      return next(args)
    },
    // low priority: runs after every normal/high build middleware, so it sees the payload hash
    // a command's own middleware (upload.ts) adds; the signer comes later (finalizeRequest)
    { step: "build", priority: "low", name: "cyrusBackupdContentMd5" }
  )
  return client
}

// --- errors -------------------------------------------------------------------------------

interface SdkErrorShape {
  readonly name?: string
  readonly code?: string
  readonly Code?: string
  readonly message?: string
  readonly $metadata?: { readonly httpStatusCode?: number }
  readonly cause?: unknown
}

const ACCESS_CODES = new Set(["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed"])
const TRANSIENT_CODES = new Set(["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "ThrottlingException", "RequestTimeTooSkewed"])

/** The S3 error code of an SDK failure (HEAD answers have none: their status names them). */
export const errorCode = (e: unknown): string | undefined => {
  const x = e as SdkErrorShape | null
  const code = x?.Code ?? x?.name
  return code === "UnknownError" || code === "Error" ? undefined : code
}
export const errorStatus = (e: unknown): number | undefined => (e as SdkErrorShape | null)?.$metadata?.httpStatusCode

const detail = (e: unknown): string => {
  const x = e as SdkErrorShape | null
  const parts = [x?.code, x?.message].filter((p): p is string => typeof p === "string" && p !== "" && p !== "UnknownError")
  if (parts.length === 0 && x?.cause !== undefined) return detail(x.cause)
  return parts.length === 0 ? String(e) : [...new Set(parts)].join(": ")
}

export interface RequestContext {
  readonly endpoint: string
  readonly bucket: string
  readonly operation: string
  readonly key?: string | undefined
}

const where = (c: RequestContext) => `object store ${c.endpoint}, bucket ${c.bucket}`

/** Maps any failure of an SDK call to one of our errors. */
export const classify = (c: RequestContext) => (e: unknown): ObjectStoreError => {
  // our own errors (a source that failed mid-upload) pass through unchanged
  if (typeof (e as { _tag?: unknown } | null)?._tag === "string" && String((e as { _tag: string })._tag).startsWith("ObjectStore")) {
    return e as ObjectStoreError
  }
  const status = errorStatus(e)
  const code = errorCode(e)
  const on = c.key === undefined ? c.operation : `${c.operation} ${c.key}`
  if (status === undefined) {
    return new ObjectStoreUnreachable({
      endpoint: c.endpoint,
      bucket: c.bucket,
      operation: c.operation,
      message: `${where(c)}: unreachable (${on}): ${detail(e)}`
    })
  }
  if (code === "NoSuchBucket" || (status === 404 && c.operation === "HeadBucket")) {
    return new ObjectStoreNoSuchBucket({
      endpoint: c.endpoint,
      bucket: c.bucket,
      message: `${where(c)}: the bucket does not exist (create it, or fix backup_objectstore_bucket)`
    })
  }
  if (status === 403 || (code !== undefined && ACCESS_CODES.has(code))) {
    const why = code ?? `HTTP ${status}`
    const hint = code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch" || c.operation === "HeadBucket"
      ? "; check backup_objectstore_credentials"
      : ""
    return new ObjectStoreAccessDenied({
      endpoint: c.endpoint,
      bucket: c.bucket,
      operation: c.operation,
      code: why,
      message: `${where(c)}: access denied (${why}) for ${on}${hint}`
    })
  }
  const transient = status >= 500 || status === 429 || (code !== undefined && TRANSIENT_CODES.has(code))
  return new ObjectStoreRequestFailed({
    endpoint: c.endpoint,
    bucket: c.bucket,
    operation: c.operation,
    key: c.key,
    status,
    code,
    transient,
    message: `${where(c)}: ${on} failed: HTTP ${status}${code === undefined ? "" : ` ${code}`}${transient ? " (will retry)" : ""}`
  })
}

/** One SDK call: a promise given the fiber's abort signal, failures classified. */
export const request = <A>(c: RequestContext, run: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, ObjectStoreError> =>
  Effect.tryPromise({ try: run, catch: classify(c) })

// --- retries --------------------------------------------------------------------------------

export interface RetryPolicy {
  /** First delay; each next one doubles (with jitter), capped at `maxDelay`. */
  readonly base: Duration.DurationInput
  readonly maxDelay: Duration.DurationInput
  /** Retries after the first attempt. */
  readonly retries: number
}

/** About 1 minute of trying: 0.25 s, 0.5 s, 1 s, … capped at 15 s, 8 retries. */
export const DEFAULT_RETRY: RetryPolicy = { base: "250 millis", maxDelay: "15 seconds", retries: 8 }

export const retrySchedule = (p: RetryPolicy) =>
  Schedule.exponential(p.base, 2).pipe(
    Schedule.jittered,
    Schedule.union(Schedule.spaced(p.maxDelay)),
    Schedule.intersect(Schedule.recurs(p.retries))
  )

/** Retries transient failures (unreachable, 5xx, throttling) by the policy. */
export const withRetry = (p: RetryPolicy) => <A, R>(self: Effect.Effect<A, ObjectStoreError, R>): Effect.Effect<A, ObjectStoreError, R> =>
  Effect.retry(self, { schedule: retrySchedule(p), while: isTransient })
