/**
 * The object store as an Effect service: sealed chunks and per-user manifests in an
 * S3-compatible bucket, optionally age-encrypted, optionally under Object Lock
 * (docs/storage.md, "Object storage"; the operator's side is in docs/configuration.md and
 * docs/restore.md).
 *
 * Nothing happens when the service is made: the credentials, recipients and identity files
 * are read, the AWS SDK and age are imported, and the bucket is probed only when the first
 * operation runs (and again after a failed probe), so a program with the feature off or one
 * that never touches the store pays nothing for it.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import zlib from "node:zlib"
import type * as S3 from "@aws-sdk/client-s3"
import { Context, Effect, Either, Layer, Option, Stream } from "effect"
import { Config } from "../config/Config.js"
import { ciphertextSize, decryptBytes, decryptStream, encryptBytes, encryptStream, recipientOf } from "./age.js"
import {
  ObjectStoreConfigError,
  ObjectStoreIntegrityError,
  ObjectStoreLayoutError,
  ObjectStoreLockRefused,
  ObjectStoreSourceError,
  type ObjectStoreError
} from "./errors.js"
import {
  checkContiguous,
  decodeManifest,
  encodeManifest,
  endOf,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  MAX_CHAIN,
  resolveChain,
  type ChunkEntry,
  type DroppedObject,
  type Manifest,
  type ManifestEnd,
  type ManifestHead,
  type ResolvedManifest
} from "./Manifest.js"
import { clearNaming, keyedNaming, MARKER_NAME, MAX_SEQ, parseManifestName, USERS_DIR, type Naming } from "./Naming.js"
import { DEFAULT_RETRY, errorCode, errorStatus, loadSdk, makeClient, request, withRetry, type RetryPolicy, type Sdk } from "./s3.js"
import { MEMBER_PART_SIZE, readCredentials, readIdentities, readRecipients, objectStoreSettings, type ObjectStoreSettings } from "./settings.js"
import { checkSealedMember, memberFiller, memberRange, memberStream, openSource, scanMember, type ChunkMeta, type ChunkSource } from "./source.js"
import { putObjectFromSource, streamFiller } from "./upload.js"
import { partDigests } from "../store/index.js"
import { fsyncDirectory } from "../util/fsyncDirectory.js"

// --- the API ------------------------------------------------------------------------------

export interface StoreStatus {
  readonly endpoint: string
  readonly bucket: string
  readonly prefix: string
  readonly encrypted: boolean
  /** The bucket has Object Lock enabled (then it is versioned too). */
  readonly objectLock: boolean
  /** Retention given to new objects (0 when the bucket has no Object Lock or lock_days is 0). */
  readonly lockSeconds: number
  readonly versioning: "Enabled" | "Suspended" | "Off"
  /** Whether the prefix already holds our layout marker. */
  readonly initialised: boolean
}

export interface UploadedChunk {
  readonly entry: ChunkEntry
  /** True when the object was already in the store (a retry, or an unchanged chunk after compaction). */
  readonly reused: boolean
  /** Object Lock retention date of the object, when it has one. */
  readonly retainUntil: string | undefined
}

export interface ManifestInput {
  /** The user id: the backups.db key. */
  readonly user: string
  /** The data file path, as backups.db has it. */
  readonly dataFile: string
  /** Every sealed chunk of the data file, in file order, end to end from offset 0. */
  readonly chunks: ReadonlyArray<ChunkEntry>
  /** Objects dropped by compaction and not yet deleted (carried by full manifests). */
  readonly dropped?: ReadonlyArray<DroppedObject> | undefined
  /** What the previous putManifest for this user returned; absent = unknown (a full manifest is written). */
  readonly previous?: ManifestHead | undefined
  /** Write a full manifest even if an append would do (after compaction, or a changed `dropped` list). */
  readonly full?: boolean | undefined
  /** The file where the chunks end (its offset must be their end), written into the manifest. */
  readonly end?: ManifestEnd | undefined
}

export interface ManifestWritten {
  readonly head: ManifestHead
  /** Object name, relative to the prefix. */
  readonly object: string
  /** False when there was nothing new to describe (the previous head is returned). */
  readonly written: boolean
}

export interface VerifyResult {
  readonly object: string
  readonly ok: boolean
  readonly problems: ReadonlyArray<string>
  readonly retainUntil: string | undefined
}

export interface DeleteReport {
  readonly deleted: ReadonlyArray<string>
  /** The store refused: still under Object Lock retention. */
  readonly locked: ReadonlyArray<{ readonly object: string; readonly retainUntil: string | undefined; readonly message: string }>
  /** Not yet past `droppedAt` + backup_retention. */
  readonly notDue: ReadonlyArray<string>
  /** Already gone. */
  readonly missing: ReadonlyArray<string>
  /** What must still be remembered for a later run (not due + locked), for the next full manifest. */
  readonly remaining: ReadonlyArray<DroppedObject>
}

export interface StoredObject {
  /** Name relative to the prefix. */
  readonly object: string
  readonly size: number
  readonly lastModified: Date | undefined
}

export interface ObjectStoreShape {
  readonly settings: ObjectStoreSettings
  /** "object store <endpoint>, bucket <bucket>[, prefix <p>]": for log lines. */
  readonly where: string
  readonly encrypted: boolean
  /** Probes the bucket (credentials, existence, Object Lock, versioning, layout). */
  readonly status: Effect.Effect<StoreStatus, ObjectStoreError>
  /** The user's directory under users/ (a keyed hash when encrypted). */
  readonly userDir: (user: string) => Effect.Effect<string, ObjectStoreError>
  readonly listUserDirs: Effect.Effect<ReadonlyArray<string>, ObjectStoreError>
  /** Clear layout only: the user id of a directory (encrypted: read its manifest). */
  readonly userOfDir: (dir: string) => string | undefined
  /**
   * Uploads one sealed chunk (streamed; multipart when large; every body with a checksum the
   * store verifies: the signed payload SHA-256 in the clear layout, Content-MD5 when encrypted;
   * conditional create; retried): returns only once the store has confirmed the object.
   */
  readonly uploadChunk: (user: string, source: ChunkSource, meta: ChunkMeta) => Effect.Effect<UploadedChunk, ObjectStoreError>
  /** Writes the next manifest (append when `previous` allows it, else full); never replaces one. */
  readonly putManifest: (input: ManifestInput) => Effect.Effect<ManifestWritten, ObjectStoreError>
  /** Highest manifest seq of a user directory (0: none). Needs no identity. */
  readonly latestSeq: (dir: string) => Effect.Effect<number, ObjectStoreError>
  /** The newest manifest (or the newest with seq ≤ `atOrBefore`), resolved. Needs the identity when encrypted. */
  readonly latestManifest: (dir: string, options?: { readonly atOrBefore?: number }) => Effect.Effect<ResolvedManifest | undefined, ObjectStoreError>
  /** A chunk's member bytes, decrypted; fails at the end if size or SHA-256 differ from the entry. */
  readonly downloadChunk: (entry: ChunkEntry) => Stream.Stream<Uint8Array, ObjectStoreError>
  /**
   * Rebuilds a data file from a resolved manifest at `target` (must not exist; its directory
   * must): written to `<target>.pull`, every member and every chunk's file_sha1 checked,
   * fsynced, then linked into place. Returns the length and SHA-1 of the file.
   */
  readonly restoreDataFile: (manifest: ResolvedManifest, target: string) => Effect.Effect<{ readonly bytes: number; readonly sha1: string }, ObjectStoreError>
  /**
   * The bytes of the data file a resolved manifest describes, in order, into `sink`: every
   * member's size and SHA-256 checked as it arrives, and before each chunk its file_sha1
   * against `sink.sha1()`. Returns the number of bytes. (restoreDataFile's download; a pull
   * hands them to the store, which indexes them as they arrive: `receiveBackup`.)
   */
  readonly restoreInto: (manifest: ResolvedManifest, sink: RestoreSink) => Effect.Effect<number, ObjectStoreError>
  /** quick: HEAD (size, ETag). full: also download, decrypt, SHA-256, gunzip, length and data SHA-1. */
  readonly verifyObject: (entry: ChunkEntry, mode: "quick" | "full") => Effect.Effect<VerifyResult, ObjectStoreError>
  /** Deletes dropped objects past `droppedAt` + backup_retention (every version); lock refusals are reported. */
  readonly deleteExpired: (dropped: ReadonlyArray<DroppedObject>, now?: Date) => Effect.Effect<DeleteReport, ObjectStoreError>
  /** Deletes a user's manifests that no restore within backup_retention can need (see docs/storage.md). */
  readonly pruneManifests: (dir: string, now?: Date) => Effect.Effect<DeleteReport, ObjectStoreError>
  /** Pushes Object Lock retention of these objects to now + lock_days where less than half of it is left. */
  readonly extendLocks: (objects: ReadonlyArray<{ readonly object: string; readonly versionId?: string | undefined }>, now?: Date) => Effect.Effect<number, ObjectStoreError>
  /** Aborts multipart uploads under the prefix started more than `olderThanSeconds` ago (left by crashes). */
  readonly abortIncompleteUploads: (olderThanSeconds: number, now?: Date) => Effect.Effect<number, ObjectStoreError>
  /** The chunk objects of a user directory (orphan checks). */
  readonly listChunkObjects: (dir: string) => Effect.Effect<ReadonlyArray<StoredObject>, ObjectStoreError>
}

/** Where `restoreInto` puts a data file's bytes. */
export interface RestoreSink {
  /** The next bytes of the file, in order (not reused by the caller); a promise makes the download wait. */
  readonly write: (bytes: Uint8Array) => void | Promise<void>
  /** SHA-1 (hex) of every byte written so far. */
  readonly sha1: () => string
}

export interface ObjectStoreOptions {
  readonly retry?: RetryPolicy
  /** Multipart part size (bytes, ≥ 5 MiB); objects up to this size go in one PUT. Default 8 MiB. */
  readonly partSize?: number
  /** Parts in flight at once. Default 2 (memory ≈ (queueSize + 1) × partSize). */
  readonly queueSize?: number
  /**
   * Part buffers (≥ queueSize). Default queueSize + 1: the next part is read while the others
   * are sent. queueSize alone: the next part is read only once a buffer comes back.
   */
  readonly partBuffers?: number
  /**
   * Parts in flight at once in the clear layout, whose bodies are streamed from the file (no part
   * buffers: each costs only a stream's read-ahead). Default 4.
   */
  readonly streamedInFlight?: number
  readonly connectionTimeoutMs?: number
  readonly requestTimeoutMs?: number
}

/** The service; `None` when no `backup_objectstore_*` option is set. */
export class ObjectStore extends Context.Tag("ObjectStore")<ObjectStore, Option.Option<ObjectStoreShape>>() {
  /** From the Config service: cheap (no file, no import, no request). Fails on bad options only. */
  static layer(options: ObjectStoreOptions = {}): Layer.Layer<ObjectStore, ObjectStoreConfigError, Config> {
    return Layer.effect(
      ObjectStore,
      Effect.flatMap(Config, (config) =>
        Either.match(objectStoreSettings(config), {
          onLeft: (e) => Effect.fail(e),
          onRight: (s) => Effect.succeed(Option.map(s, (settings) => makeObjectStore(settings, options)))
        })
      )
    )
  }
}

// --- implementation -----------------------------------------------------------------------

const MARKER_FORMAT = "cyrus-backupd-objectstore"
const MIB = 1 << 20

interface Marker {
  readonly format: string
  readonly version: number
  readonly encrypted: boolean
  readonly keyCheck?: string
}

interface Ready {
  readonly sdk: Sdk
  readonly client: S3.S3Client
  readonly naming: Naming
  /** Recipients to encrypt to (undefined: clear layout). */
  readonly recipients: ReadonlyArray<string> | undefined
  readonly objectLock: boolean
  readonly versioning: "Enabled" | "Suspended" | "Off"
  readonly initialised: boolean
}

/** Runs `make` until it succeeds once, then keeps its value (failures are not remembered). */
const onceSuccessful = <A, E>(make: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  let value: Option.Option<A> = Option.none()
  const lock = Effect.unsafeMakeSemaphore(1)
  return Effect.suspend(() =>
    Option.isSome(value)
      ? Effect.succeed(value.value)
      : lock.withPermits(1)(
          Effect.suspend(() => (Option.isSome(value) ? Effect.succeed(value.value) : Effect.tap(make, (a) => Effect.sync(() => { value = Option.some(a) }))))
        )
  )
}

const fromPromise = <A>(subject: string, run: () => Promise<A>): Effect.Effect<A, ObjectStoreError> =>
  Effect.tryPromise({
    try: run,
    catch: (e) => (e instanceof ObjectStoreConfigError ? e : new ObjectStoreConfigError({ subject, message: `${subject}: ${(e as Error).message ?? String(e)}` }))
  })

const nodeToWeb = (body: unknown): ReadableStream<Uint8Array> => {
  const b = body as { transformToWebStream?: () => ReadableStream<Uint8Array> }
  if (typeof b?.transformToWebStream === "function") return b.transformToWebStream()
  if (body instanceof ReadableStream) return body as ReadableStream<Uint8Array>
  throw new Error("GetObject returned no body stream")
}

const bytesOf = (body: unknown): Promise<Uint8Array> => {
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> } | undefined
  if (typeof b?.transformToByteArray !== "function") return Promise.reject(new Error("GetObject returned no body"))
  return b.transformToByteArray()
}

const SHA256_HEX = /^[0-9a-f]{64}$/

/** The member's recorded digests when they can drive an upload: valid hashes, one per part of S3's sizes. */
const usableDigests = (meta: ChunkMeta) => {
  const d = meta.digests
  if (d === undefined || d.partSize < 5 * MIB || d.partSize > 5 * 1024 * MIB || !SHA256_HEX.test(d.sha256)) return undefined
  const parts = meta.size <= d.partSize ? 0 : Math.ceil(meta.size / d.partSize)
  if (parts > 10_000 || d.parts.length !== parts || !d.parts.every((h) => SHA256_HEX.test(h))) return undefined
  return d
}

class Mismatch extends Error {}

/**
 * One object's bytes as they arrive: counted and, given a SHA-256, hashed. `add` throws a
 * Mismatch past `size`; `end` throws one if the size or the SHA-256 differ.
 */
const objectCheck = (size: number, sha256: string | undefined) => {
  const h = sha256 === undefined ? undefined : createHash("sha256")
  let n = 0
  return {
    add: (b: Uint8Array) => {
      n += b.byteLength
      if (n > size) throw new Mismatch(`more than the expected ${size} bytes`)
      h?.update(b)
    },
    end: () => {
      if (n !== size) throw new Mismatch(`${n} bytes, expected ${size}`)
      if (h === undefined) return
      const got = h.digest("hex")
      if (got !== sha256) throw new Mismatch(`SHA-256 ${got}, expected ${sha256}`)
    }
  }
}

/** objectCheck as a web stream: the bytes pass through, and its end fails the stream on a mismatch. */
const verifying = (size: number, sha256: string | undefined) => {
  const c = objectCheck(size, sha256)
  return new TransformStream<Uint8Array, Uint8Array>({
    transform: (chunk, controller) => {
      c.add(chunk)
      controller.enqueue(chunk)
    },
    flush: c.end
  })
}

/** Gunzips a member stream, counting and SHA-1-hashing the uncompressed bytes. */
const inflateDigest = <E>(
  blocks: Stream.Stream<Uint8Array, E>
): Effect.Effect<{ readonly length: number; readonly sha1: string } | { readonly error: string }, E> =>
  Effect.gen(function*() {
    const gunzip = zlib.createGunzip()
    const sha1 = createHash("sha1")
    let length = 0
    let failure: Error | undefined
    let ended = false
    gunzip.on("data", (b: Buffer) => {
      sha1.update(b)
      length += b.length
    })
    gunzip.on("error", (e) => void (failure = e))
    gunzip.on("end", () => void (ended = true))
    // resumes when the gunzip stream takes more (or has failed)
    const whenReady = Effect.async<void>((resume) => {
      const go = () => {
        gunzip.off("drain", go)
        gunzip.off("error", go)
        resume(Effect.void)
      }
      gunzip.on("drain", go)
      gunzip.on("error", go)
    })
    yield* Effect.ensuring(
      Stream.runForEach(blocks, (b) => (failure !== undefined || gunzip.write(b) ? Effect.void : whenReady)),
      Effect.sync(() => {
        if (failure === undefined) gunzip.end()
      })
    )
    yield* Effect.async<void>((resume) => {
      if (ended || failure !== undefined) return resume(Effect.void)
      const go = () => resume(Effect.void)
      gunzip.once("end", go)
      gunzip.once("error", go)
    })
    return failure !== undefined ? { error: failure.message } : { length, sha1: sha1.digest("hex") }
  })

export const makeObjectStore = (settings: ObjectStoreSettings, options: ObjectStoreOptions = {}): ObjectStoreShape => {
  const policy = options.retry ?? DEFAULT_RETRY
  const retry = withRetry(policy)
  const partSize = Math.max(5 * MIB, options.partSize ?? MEMBER_PART_SIZE)
  const queueSize = Math.max(1, options.queueSize ?? 2)
  const partBuffers = Math.max(queueSize, options.partBuffers ?? queueSize + 1)
  const streamedInFlight = Math.max(1, options.streamedInFlight ?? 4)
  const { endpoint, bucket, prefix } = settings
  const where = `object store ${endpoint}, bucket ${bucket}${prefix === "" ? "" : `, prefix ${prefix}`}`
  const encrypted = settings.recipientsFile !== undefined || settings.identityFile !== undefined
  const ctx = (operation: string, key?: string) => ({ endpoint, bucket, operation, key })
  const full = (name: string) => prefix + name
  const integrity = (key: string, message: string) => new ObjectStoreIntegrityError({ endpoint, bucket, key, message: `${where}: ${key}: ${message}` })
  const layoutError = (message: string) => new ObjectStoreLayoutError({ endpoint, bucket, prefix, message: `${where}: ${message}` })

  const identities = onceSuccessful(
    Effect.suspend(() =>
      settings.identityFile === undefined
        ? Effect.fail(
            new ObjectStoreConfigError({
              subject: "backup_objectstore_identity",
              message: `backup_objectstore_identity: not set, but the objects in ${where} are encrypted and must be read`
            })
          )
        : fromPromise("backup_objectstore_identity", () => readIdentities(settings.identityFile!))
    )
  )

  /** The naming recipient: the first line of the recipients file, else the identity whose recipient the marker names. */
  const pickNaming = (recipients: ReadonlyArray<string> | undefined, marker: Marker | undefined): Effect.Effect<Naming, ObjectStoreError> =>
    Effect.gen(function*() {
      if (!encrypted) return clearNaming()
      if (recipients !== undefined) return keyedNaming(recipients[0]!)
      const ids = yield* identities
      const candidates = yield* fromPromise("backup_objectstore_identity", () => Promise.all(ids.map(recipientOf)))
      const namings = candidates.map(keyedNaming)
      if (marker?.keyCheck === undefined) return namings[0]!
      const hit = namings.find((n) => n.keyCheck === marker.keyCheck)
      if (hit === undefined) {
        return yield* Effect.fail(
          layoutError(
            "none of the identities in backup_objectstore_identity belongs to the recipient that names these objects (the first line of the recipients file that wrote them); add it, or set backup_objectstore_recipients to that file"
          )
        )
      }
      return hit
    })

  const probe: Effect.Effect<Ready, ObjectStoreError> = Effect.gen(function*() {
    const credentials = yield* fromPromise("backup_objectstore_credentials", () => readCredentials(settings.credentialsFile))
    const recipients = settings.recipientsFile === undefined ? undefined : yield* fromPromise("backup_objectstore_recipients", () => readRecipients(settings.recipientsFile!))
    const sdk = yield* Effect.promise(loadSdk)
    const client = makeClient(sdk, settings, credentials, {
      connectionTimeoutMs: options.connectionTimeoutMs ?? 5000,
      requestTimeoutMs: options.requestTimeoutMs ?? 120_000
    })
    const send = <O>(operation: string, command: object, key?: string) =>
      retry(request(ctx(operation, key), (abortSignal) => client.send(command as never, { abortSignal }) as Promise<O>))

    yield* send("HeadBucket", new sdk.s3.HeadBucketCommand({ Bucket: bucket }))
    const lockConfig = yield* Effect.catchIf(
      send<S3.GetObjectLockConfigurationOutput>("GetObjectLockConfiguration", new sdk.s3.GetObjectLockConfigurationCommand({ Bucket: bucket })),
      (e) => e._tag === "ObjectStoreRequestFailed" && (e.status === 404 || e.status === 400 || e.status === 501),
      () => Effect.succeed(undefined)
    )
    const objectLock = lockConfig?.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled"
    const v = yield* send<S3.GetBucketVersioningOutput>("GetBucketVersioning", new sdk.s3.GetBucketVersioningCommand({ Bucket: bucket }))
    const versioning = v.Status === "Enabled" ? "Enabled" : v.Status === "Suspended" ? "Suspended" : "Off"

    const markerKey = full(MARKER_NAME)
    const markerBytes = yield* Effect.catchIf(
      send<S3.GetObjectOutput>("GetObject", new sdk.s3.GetObjectCommand({ Bucket: bucket, Key: markerKey }), markerKey).pipe(
        Effect.flatMap((o) => Effect.tryPromise({ try: () => bytesOf(o.Body), catch: () => layoutError(`${MARKER_NAME}: the download broke off`) }))
      ),
      (e) => e._tag === "ObjectStoreRequestFailed" && e.status === 404,
      () => Effect.succeed(undefined)
    )
    let marker: Marker | undefined
    if (markerBytes !== undefined) {
      try {
        marker = JSON.parse(Buffer.from(markerBytes).toString("utf8")) as Marker
      } catch {
        return yield* Effect.fail(layoutError(`${MARKER_NAME} is not JSON`))
      }
      if (marker.format !== MARKER_FORMAT || marker.version !== 1) return yield* Effect.fail(layoutError(`${MARKER_NAME}: unknown layout ${marker.format} ${marker.version}`))
      if (marker.encrypted !== encrypted) {
        return yield* Effect.fail(
          layoutError(
            marker.encrypted
              ? "the objects under this prefix are encrypted, but neither backup_objectstore_recipients nor backup_objectstore_identity is set"
              : "the objects under this prefix are not encrypted, but backup_objectstore_recipients/identity are set: use another prefix"
          )
        )
      }
    }
    const naming = yield* pickNaming(recipients, marker)
    if (marker !== undefined && naming.keyCheck !== marker.keyCheck) {
      return yield* Effect.fail(
        layoutError("these objects were named for another recipient: the first line of backup_objectstore_recipients must be the one the prefix was set up with (or use another prefix)")
      )
    }
    return { sdk, client, naming, recipients, objectLock, versioning, initialised: marker !== undefined } satisfies Ready
  })

  const ready = onceSuccessful(probe)

  const sendWith = <O>(r: Ready, operation: string, command: object, key?: string): Effect.Effect<O, ObjectStoreError> =>
    retry(request(ctx(operation, key), (abortSignal) => r.client.send(command as never, { abortSignal }) as Promise<O>))

  const requireRecipients = (r: Ready) =>
    r.recipients !== undefined || !encrypted
      ? Effect.succeed(r.recipients)
      : Effect.fail(
          new ObjectStoreConfigError({
            subject: "backup_objectstore_recipients",
            message: `backup_objectstore_recipients: not set, but writing to ${where} needs it (the objects there are encrypted)`
          })
        )

  /** Creates the layout marker on first write (conditional create: a racing writer's copy is as good). */
  const markerWritten = onceSuccessful(
    Effect.gen(function*() {
      const r = yield* ready
      yield* requireRecipients(r)
      if (r.initialised) return
      const key = full(MARKER_NAME)
      const body = Buffer.from(
        JSON.stringify({ format: MARKER_FORMAT, version: 1, encrypted, ...(r.naming.keyCheck === undefined ? {} : { keyCheck: r.naming.keyCheck }) } satisfies Marker) + "\n"
      )
      yield* Effect.catchIf(
        sendWith(r, "PutObject", new r.sdk.s3.PutObjectCommand({ Bucket: bucket, Key: key, Body: body, IfNoneMatch: "*", ContentType: "application/json" }), key),
        (e) => e._tag === "ObjectStoreRequestFailed" && e.status === 412,
        () => Effect.void
      )
    })
  )

  const writable = Effect.zipRight(markerWritten, ready)

  const lockParams = (r: Ready) => {
    if (!r.objectLock || settings.lockSeconds <= 0) return {}
    return { ObjectLockMode: settings.lockMode, ObjectLockRetainUntilDate: new Date(Date.now() + settings.lockSeconds * 1000) }
  }

  interface Head {
    readonly size: number
    readonly etag: string
    readonly versionId: string | undefined
    readonly retainUntil: string | undefined
  }

  /** HEAD without retries (for use inside an operation that is retried as a whole). */
  const headOnce = (r: Ready, key: string): Effect.Effect<Head | undefined, ObjectStoreError> =>
    Effect.catchIf(
      Effect.map(
        request(ctx("HeadObject", key), (abortSignal) => r.client.send(new r.sdk.s3.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })),
        (h): Head | undefined => ({
        size: h.ContentLength ?? -1,
        etag: h.ETag ?? "",
        versionId: h.VersionId,
          retainUntil: h.ObjectLockRetainUntilDate?.toISOString()
        })
      ),
      (e) => e._tag === "ObjectStoreRequestFailed" && e.status === 404,
      () => Effect.succeed(undefined)
    )

  const head = (r: Ready, key: string) => retry(headOnce(r, key))

  const getBytes = (r: Ready, key: string) =>
    Effect.flatMap(sendWith<S3.GetObjectOutput>(r, "GetObject", new r.sdk.s3.GetObjectCommand({ Bucket: bucket, Key: key }), key), (o) =>
      Effect.tryPromise({
        try: () => bytesOf(o.Body),
        catch: () => integrity(key, "the download broke off")
      })
    )

  const listPage = (r: Ready, listPrefix: string, extra: { Delimiter?: string; StartAfter?: string; ContinuationToken?: string; MaxKeys?: number }) =>
    sendWith<S3.ListObjectsV2Output>(r, "ListObjectsV2", new r.sdk.s3.ListObjectsV2Command({ Bucket: bucket, Prefix: listPrefix, ...extra }), listPrefix)

  const listAll = (r: Ready, listPrefix: string, extra: { Delimiter?: string } = {}) =>
    Effect.gen(function*() {
      const objects: Array<S3._Object> = []
      const prefixes: Array<string> = []
      let token: string | undefined
      do {
        const page = yield* listPage(r, listPrefix, { ...extra, ...(token === undefined ? {} : { ContinuationToken: token }) })
        objects.push(...(page.Contents ?? []))
        prefixes.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix ?? "").filter((p) => p !== ""))
        token = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (token !== undefined)
      return { objects, prefixes }
    })

  // --- upload -------------------------------------------------------------------------------

  /** The pass over the member before an upload that has no recorded digests: its name, and (clear layout, multipart) every part's SHA-256. */
  const namingPass = (r: Ready, recipients: ReadonlyArray<string> | undefined, source: ChunkSource, fd: number, meta: ChunkMeta) =>
    Effect.gen(function*() {
      const hasher = r.naming.contentHasher()
      // clear layout, multipart: the SHA-256 of every part too, in the same pass; the upload sends
      // them as the signed payload hashes, so the store checks each part against these bytes
      const parts = recipients === undefined && meta.size > partSize ? partDigests(partSize) : undefined
      yield* scanMember(source, fd, meta, parts === undefined ? hasher.update : (b) => (hasher.update(b), parts.update(b)))
      return { ...hasher.digest(), partSha256: parts?.digests() }
    })

  const uploadChunk = (user: string, source: ChunkSource, meta: ChunkMeta): Effect.Effect<UploadedChunk, ObjectStoreError> =>
    Effect.scoped(
      Effect.gen(function*() {
        const r = yield* writable
        const recipients = yield* requireRecipients(r)
        const fd = yield* openSource(source)
        yield* checkSealedMember(source, fd, meta)
        // clear layout with the writer's digests of this member: its name and its parts' hashes
        // without reading it first (the store checks every part against them)
        const recorded = recipients === undefined ? usableDigests(meta) : undefined
        const { sha256, contentId, partSha256, uploadPartSize } = recorded !== undefined
          ? { sha256: recorded.sha256, contentId: recorded.sha256, partSha256: recorded.parts, uploadPartSize: recorded.partSize }
          : { ...(yield* namingPass(r, recipients, source, fd, meta)), uploadPartSize: partSize }
        const dir = r.naming.userDir(user)
        const object = r.naming.chunkName(dir, contentId)
        const key = full(object)
        const expected = recipients === undefined ? meta.size : yield* fromPromise("age", () => ciphertextSize(recipients, meta.size))

        const changed = () => {
          const at = source.path ?? `fd ${fd}`
          return new ObjectStoreSourceError({
            path: at,
            message: recorded === undefined
              ? `${at}: chunk ${meta.id} changed while it was uploaded`
              : `${at}: chunk ${meta.id} is not the member written at its seal (the SHA-256s its writer recorded in the index differ from the file's bytes): run ctl_backups verify`
          })
        }

        const entryFrom = (h: Head): ChunkEntry => ({
          id: meta.id,
          offset: meta.offset,
          size: meta.size,
          sha256,
          length: meta.length,
          dataSha1: meta.dataSha1,
          fileSha1: meta.fileSha1,
          tsStart: meta.tsStart,
          tsEnd: meta.tsEnd,
          object,
          stored: h.size,
          etag: h.etag,
          ...(h.versionId === undefined || h.versionId === "null" ? {} : { versionId: h.versionId })
        })
        const confirmed = (h: Head | undefined, reused: boolean): Effect.Effect<UploadedChunk, ObjectStoreError> =>
          h === undefined
            ? Effect.fail(integrity(key, "the store confirmed the upload but HEAD does not find the object"))
            : h.size !== expected
              ? Effect.fail(integrity(key, `the object has ${h.size} bytes, expected ${expected}`))
              : Effect.succeed({ entry: entryFrom(h), reused, retainUntil: h.retainUntil })

        // the age ciphertext of the member, re-hashed on the way (a changed file fails the stream before the commit)
        const encryptedFiller = (to: ReadonlyArray<string>) => {
          const again = createHash("sha256")
          const check = () => {
            if (again.digest("hex") !== sha256) throw changed()
          }
          return Effect.map(
            fromPromise("age", () => encryptStream(to, memberStream(fd, meta, (b) => void again.update(b), check), meta.size)),
            (e) => streamFiller(e.stream)
          )
        }

        // one attempt: HEAD (a retry may find that an earlier attempt did land), then a fresh read of
        // the file. Clear layout: the bytes go as they are read, each body signed with the SHA-256
        // computed above, so the store refuses any part that differs from the bytes that were named
        // (a changed file fails before the commit). Encrypted: re-hashed while encrypting.
        let reused = true
        const attempt = Effect.gen(function*() {
          if ((yield* headOnce(r, key)) !== undefined) return
          reused = false
          const fill = recipients === undefined ? memberFiller(fd, meta, () => undefined, () => undefined) : yield* encryptedFiller(recipients)
          yield* putObjectFromSource({
            sdk: r.sdk.s3,
            client: r.client,
            context: { endpoint, bucket },
            params: {
              Bucket: bucket,
              Key: key,
              ContentType: recipients === undefined ? "application/gzip" : "application/octet-stream",
              Metadata: recipients === undefined ? { "cyb-sha256": sha256 } : {},
              ...lockParams(r)
            },
            size: expected,
            fill,
            partSize: uploadPartSize,
            queueSize,
            buffers: partBuffers,
            // clear layout: the body is the member, hashed above (a single PUT's body is the whole
            // member), each body streamed from the file as it is sent
            ...(recipients === undefined
              ? { bodySha256: (n: number) => partSha256?.[n - 1] ?? sha256, range: memberRange(fd, meta), queueSize: streamedInFlight }
              : {})
          }).pipe(
            // the bytes read now are not those hashed before: the file changed under us
            Effect.catchIf(
              (e) => e._tag === "ObjectStoreRequestFailed" && e.code === "XAmzContentSHA256Mismatch" && recipients === undefined,
              () => Effect.fail(changed())
            )
          )
        })
        yield* Effect.catchIf(
          retry(attempt),
          // 412: the object appeared meanwhile (a racing writer); the same content id means the same content
          (e) => e._tag === "ObjectStoreRequestFailed" && e.status === 412,
          () => Effect.void
        )
        return yield* confirmed(yield* head(r, key), reused)
      })
    )

  // --- manifests ----------------------------------------------------------------------------

  const latestSeqWith = (r: Ready, dir: string) =>
    Effect.map(listPage(r, full(r.naming.manifestsDir(dir)), { MaxKeys: 1 }), (page) => {
      const k = page.Contents?.[0]?.Key
      return k === undefined ? 0 : (parseManifestName(k.slice(prefix.length))?.seq ?? 0)
    })

  const putManifest = (input: ManifestInput): Effect.Effect<ManifestWritten, ObjectStoreError> =>
    Effect.gen(function*() {
      const r = yield* writable
      const recipients = yield* requireRecipients(r)
      const gap = checkContiguous(input.chunks, 0)
      if (gap !== undefined) return yield* Effect.fail(new ObjectStoreSourceError({ path: input.dataFile, message: `${input.dataFile}: manifest chunks do not fit: ${gap}` }))
      if (input.end !== undefined && input.end.offset !== endOf(input.chunks)) {
        return yield* Effect.fail(new ObjectStoreSourceError({ path: input.dataFile, message: `${input.dataFile}: manifest end at ${input.end.offset}, its chunks end at ${endOf(input.chunks)}` }))
      }
      const dir = r.naming.userDir(input.user)
      const prev = input.previous
      if (prev !== undefined && !input.full && prev.chunkCount === input.chunks.length && prev.end === endOf(input.chunks)) {
        return { head: prev, object: r.naming.manifestName(dir, prev.seq, prev.kind), written: false }
      }
      const canAppend =
        prev !== undefined &&
        !input.full &&
        prev.chainLength < MAX_CHAIN &&
        prev.chunkCount < input.chunks.length &&
        endOf(input.chunks.slice(0, prev.chunkCount)) === prev.end

      let seq = prev !== undefined ? prev.seq + 1 : (yield* latestSeqWith(r, dir)) + 1
      let append = canAppend
      for (let attempt = 0; ; attempt++) {
        if (seq > MAX_SEQ) return yield* Effect.fail(integrity(r.naming.manifestsDir(dir), "manifest sequence exhausted"))
        const m: Manifest = {
          format: MANIFEST_FORMAT,
          version: MANIFEST_VERSION,
          user: input.user,
          seq,
          kind: append ? "append" : "full",
          ...(append ? { base: prev!.seq } : {}),
          start: append ? prev!.end : 0,
          created: new Date().toISOString(),
          host: settings.host,
          dataFile: input.dataFile,
          chunks: append ? input.chunks.slice(prev!.chunkCount) : [...input.chunks],
          ...(append ? {} : { dropped: [...(input.dropped ?? [])] }),
          ...(input.end === undefined ? {} : { end: input.end })
        }
        const object = r.naming.manifestName(dir, seq, m.kind)
        const key = full(object)
        const plain = encodeManifest(m)
        const body = recipients === undefined ? plain : yield* fromPromise("age", () => encryptBytes(recipients, plain))
        const put = sendWith(
          r,
          "PutObject",
          new r.sdk.s3.PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            IfNoneMatch: "*",
            ContentType: recipients === undefined ? "application/json" : "application/octet-stream",
            ...lockParams(r)
          }),
          key
        )
        const taken = yield* Effect.catchIf(
          Effect.as(put, false),
          (e) => e._tag === "ObjectStoreRequestFailed" && e.status === 412 && attempt < 3,
          () => Effect.succeed(true)
        )
        if (!taken) {
          const head: ManifestHead = {
            seq,
            kind: m.kind,
            chainLength: append ? prev!.chainLength + 1 : 1,
            chunkCount: input.chunks.length,
            end: endOf(input.chunks)
          }
          return { head, object, written: true }
        }
        // someone wrote this seq (another writer, or our own lost-answer retry): continue after the newest, in full
        seq = (yield* latestSeqWith(r, dir)) + 1
        append = false
      }
    })

  const readManifest = (r: Ready, key: string): Effect.Effect<Manifest, ObjectStoreError> =>
    Effect.gen(function*() {
      const bytes = yield* getBytes(r, key)
      const plain = encrypted
        ? yield* Effect.flatMap(identities, (ids) =>
            Effect.tryPromise({ try: () => decryptBytes(ids, bytes), catch: (e) => integrity(key, `cannot decrypt: ${(e as Error).message}`) })
          )
        : bytes
      return yield* Either.match(decodeManifest(plain), {
        onLeft: (why) => Effect.fail(integrity(key, `not a manifest: ${why}`)),
        onRight: (m) => Effect.succeed(m)
      })
    })

  const latestManifest = (dir: string, opts: { readonly atOrBefore?: number } = {}): Effect.Effect<ResolvedManifest | undefined, ObjectStoreError> =>
    Effect.gen(function*() {
      const r = yield* ready
      const dirPrefix = full(r.naming.manifestsDir(dir))
      // names sort newest first; to start at seq S, skip every name of a newer seq (a smaller R)
      const startAfter =
        opts.atOrBefore === undefined ? undefined : dirPrefix + (9_999_999_999_999_999n - BigInt(opts.atOrBefore) - 1n).toString().padStart(16, "0") + "~"
      const chain: Array<Manifest> = []
      let newest: string | undefined // the object of chain[0]
      let token: string | undefined
      let want: number | undefined // the seq the chain needs next
      for (;;) {
        const page = yield* listPage(r, dirPrefix, {
          MaxKeys: MAX_CHAIN + 1,
          ...(token !== undefined ? { ContinuationToken: token } : startAfter !== undefined ? { StartAfter: startAfter } : {})
        })
        for (const o of page.Contents ?? []) {
          const parsed = parseManifestName((o.Key ?? "").slice(prefix.length))
          if (parsed === undefined || parsed.dir !== dir) continue
          if (opts.atOrBefore !== undefined && parsed.seq > opts.atOrBefore) continue
          if (want !== undefined && parsed.seq > want) continue
          if (want !== undefined && parsed.seq < want) {
            return yield* Effect.fail(integrity(dirPrefix, `manifest ${want} is missing from the chain`))
          }
          const m = yield* readManifest(r, o.Key!)
          if (m.seq !== parsed.seq) return yield* Effect.fail(integrity(o.Key!, `holds seq ${m.seq}, its name says ${parsed.seq}`))
          chain.push(m)
          newest ??= o.Key!.slice(prefix.length)
          if (m.kind === "full") {
            const object = newest
            return yield* Either.match(resolveChain(chain), {
              onLeft: (why) => Effect.fail(integrity(dirPrefix, why)),
              onRight: (x): Effect.Effect<ResolvedManifest> => Effect.succeed({ ...x, object })
            })
          }
          want = m.base
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined
        if (token === undefined) break
      }
      if (chain.length === 0) return undefined
      return yield* Effect.fail(integrity(dirPrefix, `manifest chain from ${chain[0]!.seq} has no full manifest`))
    })

  // --- download, restore, verify ------------------------------------------------------------

  /** GetObject of a chunk's object (the version the manifest names, if any). */
  const getChunkObject = (entry: ChunkEntry) =>
    Effect.gen(function*() {
      const r = yield* ready
      const key = full(entry.object)
      const o = yield* sendWith<S3.GetObjectOutput>(
        r,
        "GetObject",
        new r.sdk.s3.GetObjectCommand({ Bucket: bucket, Key: key, ...(entry.versionId === undefined ? {} : { VersionId: entry.versionId }) }),
        key
      )
      return { key, o }
    })

  /** `sha256: false`: the size is checked, the SHA-256 is left to a caller that checks the bytes otherwise. */
  const downloadChunk = (entry: ChunkEntry, check: { readonly sha256: boolean } = { sha256: true }): Stream.Stream<Uint8Array, ObjectStoreError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const { key, o } = yield* getChunkObject(entry)
        const raw = nodeToWeb(o.Body)
        const plain = encrypted
          ? yield* Effect.flatMap(identities, (ids) =>
              Effect.tryPromise({ try: () => decryptStream(ids, raw), catch: (e) => integrity(key, `cannot decrypt: ${(e as Error).message}`) })
            )
          : raw
        const checked = plain.pipeThrough(verifying(entry.size, check.sha256 ? entry.sha256 : undefined))
        return Stream.fromReadableStream({
          evaluate: () => checked,
          onError: (e): ObjectStoreError =>
            e instanceof Mismatch
              ? integrity(key, e.message)
              : encrypted && e instanceof Error && !/socket|ECONN|aborted|terminated/i.test(e.message)
                ? integrity(key, `cannot decrypt: ${e.message}`)
                : integrity(key, `the download broke off: ${(e as Error).message ?? String(e)}`)
        })
      })
    )

  /**
   * A chunk's member bytes handed to `onBlock` as they arrive, checked like downloadChunk's
   * (size and SHA-256 at the end). Clear layout: straight from the response's Node stream, with
   * no web stream or Effect stream per block between (restoreDataFile's path: the cost per byte
   * that matters in a pull); encrypted: through downloadChunk (age decrypts a web stream).
   */
  const downloadInto = (entry: ChunkEntry, check: { readonly sha256: boolean }, onBlock: (b: Uint8Array) => void | Promise<void>): Effect.Effect<void, ObjectStoreError> =>
    encrypted
      ? Stream.runForEach(downloadChunk(entry, check), (b) =>
          Effect.tryPromise({ try: async () => await onBlock(b), catch: (e) => (e instanceof ObjectStoreSourceError ? e : integrity(full(entry.object), String(e))) })
        )
      : Effect.gen(function*() {
          const { key, o } = yield* getChunkObject(entry)
          const body = o.Body as AsyncIterable<Uint8Array> | undefined
          if (body === undefined || typeof body[Symbol.asyncIterator] !== "function") return yield* Effect.fail(integrity(key, "GetObject returned no body stream"))
          const c = objectCheck(entry.size, check.sha256 ? entry.sha256 : undefined)
          yield* Effect.tryPromise({
            try: async (signal) => {
              // an interrupted fiber ends the download (the loop below then fails)
              signal.addEventListener("abort", () => (body as { destroy?: () => void }).destroy?.(), { once: true })
              for await (const b of body) {
                c.add(b)
                const wait = onBlock(b)
                if (wait !== undefined) await wait
              }
              c.end()
            },
            catch: (e) =>
              e instanceof ObjectStoreSourceError
                ? e
                : e instanceof Mismatch
                  ? integrity(key, e.message)
                  : integrity(key, `the download broke off: ${(e as Error).message ?? String(e)}`)
          })
        })

  const sinkError = (e: unknown) =>
    e instanceof ObjectStoreSourceError
      ? e
      : ((x: { path?: string; op?: string; message?: string }) =>
          new ObjectStoreSourceError({ path: x.path ?? "", message: [x.path, x.op, x.message ?? String(e)].filter((p) => p !== undefined && p !== "").join(": ") }))(e as object)

  /**
   * The file's SHA-1 is checked before the first chunk and after every chunk (against the next
   * chunk's file_sha1, or the manifest's `end` after the last), a failure naming the chunk just
   * received. With `end`, that chain covers every byte, so a member's SHA-256 is not computed
   * as well; without it (older manifests), the last chunk's bytes rest on its SHA-256.
   */
  const restoreInto = (manifest: ResolvedManifest, sink: RestoreSink): Effect.Effect<number, ObjectStoreError> =>
    Effect.gen(function*() {
      const end: ManifestEnd | undefined = manifest.end
      const check = { sha256: end === undefined }
      const first = manifest.chunks[0]
      if (first !== undefined) {
        const sofar = sink.sha1()
        if (sofar !== first.fileSha1) return yield* Effect.fail(integrity(first.object, `file_sha1 before chunk ${first.id} is ${sofar}, the index said ${first.fileSha1}`))
      }
      let at = 0
      for (const [i, c] of manifest.chunks.entries()) {
        if (c.offset !== at) return yield* Effect.fail(integrity(c.object, `starts at ${c.offset}, the file is ${at} bytes long`))
        yield* downloadInto(c, check, (block) => {
          at += block.byteLength
          // the sink's own failure (a local write) is not the download's
          let wait: void | Promise<void>
          try {
            wait = sink.write(block)
          } catch (e) {
            throw sinkError(e)
          }
          return wait === undefined ? undefined : wait.catch((e: unknown) => Promise.reject(sinkError(e)))
        })
        const next = manifest.chunks[i + 1]
        const want = next?.fileSha1 ?? end?.fileSha1
        if (want !== undefined) {
          const sofar = sink.sha1()
          if (sofar !== want) {
            return yield* Effect.fail(integrity(c.object, `file_sha1 after chunk ${c.id} is ${sofar}, the manifest says ${want} (${next === undefined ? "the file's end" : `chunk ${next.id}'s file_sha1`})`))
          }
        }
      }
      return at
    })

  const restoreDataFile = (manifest: ResolvedManifest, target: string) =>
    Effect.gen(function*() {
      const tmp = `${target}.pull`
      const ioFail = (op: string) => (e: unknown) => new ObjectStoreSourceError({ path: target, message: `${target}: ${op}: ${(e as Error).message}` })
      if (fs.existsSync(target)) return yield* Effect.fail(new ObjectStoreSourceError({ path: target, message: `${target} exists; not overwriting it` }))
      const fd = yield* Effect.acquireRelease(
        Effect.try({ try: () => fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600), catch: ioFail("create") }),
        (fd, exit) =>
          Effect.sync(() => {
            fs.closeSync(fd)
            if (exit._tag === "Failure") fs.rmSync(tmp, { force: true })
          })
      )
      const fileSha1 = createHash("sha1")
      let at = 0
      const bytes = yield* restoreInto(manifest, {
        // SHA-1 of the file so far (a copy: the running hash goes on)
        sha1: () => fileSha1.copy().digest("hex"),
        write: (block) => {
          let off = 0
          try {
            while (off < block.byteLength) off += fs.writeSync(fd, block, off, block.byteLength - off, at + off)
          } catch (e) {
            throw ioFail("write")(e)
          }
          fileSha1.update(block)
          at += block.byteLength
        }
      })
      yield* Effect.try({ try: () => fs.fsyncSync(fd), catch: ioFail("fsync") })
      yield* Effect.try({
        try: () => {
          fs.linkSync(tmp, target)
          fs.rmSync(tmp)
          fsyncDirectory(path.dirname(target))
        },
        catch: ioFail("link into place")
      })
      return { bytes, sha1: fileSha1.digest("hex") }
    }).pipe(Effect.scoped)

  const verifyObject = (entry: ChunkEntry, mode: "quick" | "full"): Effect.Effect<VerifyResult, ObjectStoreError> =>
    Effect.gen(function*() {
      const r = yield* ready
      const key = full(entry.object)
      const problems: Array<string> = []
      const h = yield* head(r, key)
      if (h === undefined) return { object: entry.object, ok: false, problems: ["missing from the store"], retainUntil: undefined }
      if (h.size !== entry.stored) problems.push(`size ${h.size}, the manifest says ${entry.stored}`)
      if (h.etag !== entry.etag) problems.push(`ETag ${h.etag}, the manifest says ${entry.etag}`)
      if (mode === "full" && problems.length === 0) {
        const inflated = yield* Effect.either(inflateDigest(downloadChunk(entry)))
        if (Either.isLeft(inflated)) {
          if (inflated.left._tag !== "ObjectStoreIntegrityError") return yield* Effect.fail(inflated.left)
          problems.push(inflated.left.message)
        } else if ("error" in inflated.right) {
          problems.push(`gunzip: ${inflated.right.error}`)
        } else {
          if (inflated.right.length !== entry.length) problems.push(`uncompressed ${inflated.right.length} bytes, the index says ${entry.length}`)
          if (inflated.right.sha1 !== entry.dataSha1) problems.push(`data SHA-1 ${inflated.right.sha1}, the index says ${entry.dataSha1}`)
        }
      }
      return { object: entry.object, ok: problems.length === 0, problems, retainUntil: h.retainUntil }
    })

  // --- deletion, locks, housekeeping --------------------------------------------------------

  type DeleteOutcome = { readonly _tag: "deleted" } | { readonly _tag: "missing" } | { readonly _tag: "locked"; readonly retainUntil: string | undefined; readonly message: string }

  const deleteAllVersions = (r: Ready, object: string): Effect.Effect<DeleteOutcome, ObjectStoreError> =>
    Effect.gen(function*() {
      const key = full(object)
      const versions: Array<string | undefined> = []
      if (r.versioning === "Off") {
        if ((yield* head(r, key)) === undefined) return { _tag: "missing" } as const
        versions.push(undefined)
      } else {
        let keyMarker: string | undefined
        let versionMarker: string | undefined
        for (;;) {
          const page = yield* sendWith<S3.ListObjectVersionsOutput>(
            r,
            "ListObjectVersions",
            new r.sdk.s3.ListObjectVersionsCommand({
              Bucket: bucket,
              Prefix: key,
              ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker, VersionIdMarker: versionMarker })
            }),
            key
          )
          for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) if (v.Key === key) versions.push(v.VersionId ?? "null")
          if (!page.IsTruncated) break
          keyMarker = page.NextKeyMarker
          versionMarker = page.NextVersionIdMarker
        }
        if (versions.length === 0) return { _tag: "missing" } as const
      }
      for (const versionId of versions) {
        const res = yield* Effect.either(
          sendWith(r, "DeleteObject", new r.sdk.s3.DeleteObjectCommand({ Bucket: bucket, Key: key, ...(versionId === undefined ? {} : { VersionId: versionId }) }), key)
        )
        if (Either.isLeft(res)) {
          const e = res.left
          if (e._tag === "ObjectStoreAccessDenied" && r.objectLock) {
            const ret = yield* Effect.either(
              sendWith<S3.GetObjectRetentionOutput>(
                r,
                "GetObjectRetention",
                new r.sdk.s3.GetObjectRetentionCommand({ Bucket: bucket, Key: key, ...(versionId === undefined ? {} : { VersionId: versionId }) }),
                key
              )
            )
            const until = Either.isRight(ret) ? ret.right.Retention?.RetainUntilDate?.toISOString() : undefined
            const lock = new ObjectStoreLockRefused({
              endpoint,
              bucket,
              key,
              retainUntil: until,
              message: `${where}: the store refused to delete ${key}${versionId === undefined ? "" : ` (version ${versionId})`}: Object Lock${until === undefined ? "" : ` until ${until}`}`
            })
            return { _tag: "locked", retainUntil: until, message: lock.message } as const
          }
          return yield* Effect.fail(e)
        }
      }
      return { _tag: "deleted" } as const
    })

  const deleteObjects = (r: Ready, items: ReadonlyArray<DroppedObject>, due: (d: DroppedObject) => boolean) =>
    Effect.gen(function*() {
      const deleted: Array<string> = []
      const locked: Array<{ object: string; retainUntil: string | undefined; message: string }> = []
      const notDue: Array<string> = []
      const missing: Array<string> = []
      const remaining: Array<DroppedObject> = []
      for (const d of items) {
        if (!due(d)) {
          notDue.push(d.object)
          remaining.push(d)
          continue
        }
        const out = yield* deleteAllVersions(r, d.object)
        if (out._tag === "deleted") deleted.push(d.object)
        else if (out._tag === "missing") missing.push(d.object)
        else {
          locked.push({ object: d.object, retainUntil: out.retainUntil, message: out.message })
          remaining.push(d)
        }
      }
      return { deleted, locked, notDue, missing, remaining } satisfies DeleteReport
    })

  const deleteExpired = (dropped: ReadonlyArray<DroppedObject>, now = new Date()) =>
    Effect.flatMap(ready, (r) =>
      deleteObjects(r, dropped, (d) => {
        const t = Date.parse(d.droppedAt)
        return Number.isFinite(t) && t + settings.retentionSeconds * 1000 <= now.getTime()
      })
    )

  const pruneManifests = (dir: string, now = new Date()) =>
    Effect.gen(function*() {
      const r = yield* ready
      const { objects } = yield* listAll(r, full(r.naming.manifestsDir(dir)))
      const list = objects
        .map((o) => ({ o, p: parseManifestName((o.Key ?? "").slice(prefix.length)) }))
        .filter((x): x is { o: S3._Object; p: NonNullable<typeof x.p> } => x.p !== undefined && x.p.dir === dir)
        .sort((a, b) => b.p.seq - a.p.seq)
      const horizon = now.getTime() - settings.retentionSeconds * 1000
      // manifests that were current at some time within the retention window: the recent ones,
      // plus the newest older one (current at the window's start)
      const keep = new Set<number>()
      let i = 0
      for (; i < list.length && (list[i]!.o.LastModified?.getTime() ?? now.getTime()) >= horizon; i++) keep.add(i)
      if (i < list.length) keep.add(i)
      // and every manifest their chains need, down to the nearest full one
      for (const k of [...keep]) for (let j = k; j < list.length; j++) {
        keep.add(j)
        if (list[j]!.p.kind === "full") break
      }
      const victims = list.filter((_, j) => !keep.has(j)).map((x) => ({ object: (x.o.Key ?? "").slice(prefix.length), droppedAt: new Date(0).toISOString() }))
      return yield* deleteObjects(r, victims, () => true)
    })

  const extendLocks = (objects: ReadonlyArray<{ readonly object: string; readonly versionId?: string | undefined }>, now = new Date()) =>
    Effect.gen(function*() {
      const r = yield* ready
      if (!r.objectLock || settings.lockSeconds <= 0) return 0
      const until = new Date(now.getTime() + settings.lockSeconds * 1000)
      const renewBefore = now.getTime() + (settings.lockSeconds * 1000) / 2
      let extended = 0
      for (const o of objects) {
        const key = full(o.object)
        const version = o.versionId === undefined ? {} : { VersionId: o.versionId }
        const cur = yield* sendWith<S3.GetObjectRetentionOutput>(r, "GetObjectRetention", new r.sdk.s3.GetObjectRetentionCommand({ Bucket: bucket, Key: key, ...version }), key).pipe(
          Effect.catchIf((e) => e._tag === "ObjectStoreRequestFailed" && (e.status === 404 || e.status === 400), () => Effect.succeed(undefined))
        )
        const t = cur?.Retention?.RetainUntilDate?.getTime() ?? 0
        if (t >= renewBefore) continue
        yield* sendWith(
          r,
          "PutObjectRetention",
          new r.sdk.s3.PutObjectRetentionCommand({ Bucket: bucket, Key: key, ...version, Retention: { Mode: settings.lockMode, RetainUntilDate: until } }),
          key
        )
        extended++
      }
      return extended
    })

  const abortIncompleteUploads = (olderThanSeconds: number, now = new Date()) =>
    Effect.gen(function*() {
      const r = yield* ready
      let aborted = 0
      let keyMarker: string | undefined
      let uploadMarker: string | undefined
      for (;;) {
        const page = yield* sendWith<S3.ListMultipartUploadsOutput>(
          r,
          "ListMultipartUploads",
          new r.sdk.s3.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker, UploadIdMarker: uploadMarker }) })
        )
        for (const u of page.Uploads ?? []) {
          const started = u.Initiated?.getTime() ?? 0
          if (started > now.getTime() - olderThanSeconds * 1000 || u.Key === undefined || u.UploadId === undefined) continue
          yield* Effect.catchIf(
            sendWith(r, "AbortMultipartUpload", new r.sdk.s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }), u.Key),
            (e) => e._tag === "ObjectStoreRequestFailed" && e.status === 404,
            () => Effect.void
          )
          aborted++
        }
        if (!page.IsTruncated) break
        keyMarker = page.NextKeyMarker
        uploadMarker = page.NextUploadIdMarker
      }
      return aborted
    })

  const listChunkObjects = (dir: string) =>
    Effect.gen(function*() {
      const r = yield* ready
      const { objects } = yield* listAll(r, full(r.naming.chunksDir(dir)))
      return objects.map((o): StoredObject => ({ object: (o.Key ?? "").slice(prefix.length), size: o.Size ?? 0, lastModified: o.LastModified }))
    })

  const listUserDirs = Effect.gen(function*() {
    const r = yield* ready
    const { prefixes } = yield* listAll(r, full(USERS_DIR), { Delimiter: "/" })
    return prefixes.map((p) => p.slice(full(USERS_DIR).length).replace(/\/$/, "")).filter((d) => d !== "")
  })

  return {
    settings,
    where,
    encrypted,
    status: Effect.map(ready, (r) => ({
      endpoint,
      bucket,
      prefix,
      encrypted,
      objectLock: r.objectLock,
      lockSeconds: r.objectLock ? settings.lockSeconds : 0,
      versioning: r.versioning,
      initialised: r.initialised
    })),
    userDir: (user) => Effect.map(ready, (r) => r.naming.userDir(user)),
    listUserDirs,
    userOfDir: (dir) => (encrypted ? undefined : clearNaming().userFromDir(dir)),
    uploadChunk,
    putManifest,
    latestSeq: (dir) => Effect.flatMap(ready, (r) => latestSeqWith(r, dir)),
    latestManifest,
    downloadChunk,
    restoreDataFile,
    restoreInto,
    verifyObject,
    deleteExpired,
    pruneManifests,
    extendLocks,
    abortIncompleteUploads,
    listChunkObjects
  }
}

/** S3 error code and HTTP status of an SDK failure, for callers that inspect raw SDK errors. */
export { errorCode, errorStatus }
