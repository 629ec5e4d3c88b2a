/**
 * `ctl_backups push` and `ctl_backups verify -O`: the backups of backups.db against their copy
 * in the object store (docs/storage.md, "Object storage"; docs/tools.md).
 *
 * * push: for each backup, under its lock (reads go through the locked descriptor), every
 *   pending sealed chunk uploaded, the next manifest, dropped objects past retention deleted,
 *   Object Lock extended, old manifests pruned; at the end, multipart uploads older than a day
 *   aborted. One line per backup: userid, chunks and bytes sent, chunks found in the store,
 *   the manifest seq, chunks and bytes still pending.
 * * verify -O: every chunk the recorded manifest lists, checked in the store: quick (HEAD:
 *   size and ETag), with -F full (download, decrypt, SHA-256, gunzip, length and data SHA-1).
 *
 * With no `backup_objectstore_*` option the feature is off: a line says so and the exit code is
 * 0 (an EVENTS entry on a host without the feature must not fail). A store that cannot be used
 * at all (wrong credentials, missing bucket, unreachable) ends the run at once with a line
 * naming the endpoint and a sysexits code (objectStoreExit).
 */
import { Effect, Either, Option } from "effect"
import {
  localError,
  objectStoreSettings,
  makeObjectStore,
  pendingOf,
  planUpload,
  pushLocked,
  readUploadState,
  type DroppedObject,
  type ObjectStoreError,
  type ObjectStoreLocalError,
  type ObjectStoreShape,
  type PushReport,
  type VerifyResult
} from "../../objectstore/index.js"
import { dataFileSize } from "../../store/index.js"
import { EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_UNAVAILABLE } from "../../util/sysexits.js"
import { JObject, jsonDump, jstring } from "../jansson.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { openToolBackup } from "../ToolBackup.js"
import { settle, who, type Run } from "./Run.js"

/** The sysexits code of a store failure. */
export const objectStoreExit = (e: ObjectStoreError | ObjectStoreLocalError): number => {
  switch (e._tag) {
    case "ObjectStoreConfigError":
    case "ObjectStoreLayoutError":
    case "ObjectStoreNoSuchBucket":
      return EX_CONFIG
    case "ObjectStoreAccessDenied":
      return EX_NOPERM
    case "ObjectStoreUnreachable":
      return EX_UNAVAILABLE
    case "ObjectStoreIntegrityError":
      return EX_DATAERR
    case "ObjectStoreLocalError":
    case "ObjectStoreSourceError":
      return EX_SOFTWARE
    case "ObjectStoreLockRefused":
    case "ObjectStoreRequestFailed":
      return EX_TEMPFAIL
  }
}

/** Failures that make every further request pointless: the run stops at the first. */
const fatal = (e: ObjectStoreError | ObjectStoreLocalError) =>
  e._tag === "ObjectStoreAccessDenied" || e._tag === "ObjectStoreNoSuchBucket" || e._tag === "ObjectStoreConfigError" || e._tag === "ObjectStoreLayoutError" || e._tag === "ObjectStoreUnreachable"

export const FEATURE_OFF = "object storage is off (no backup_objectstore_* option is set in imapd.conf)"

/** The store of the run's configuration: Right(None) when the feature is off. */
export const storeOf = (run: Pick<Run, "config">) => Either.map(objectStoreSettings(run.config), Option.map((s) => makeObjectStore(s)))

/**
 * The run's store, or the exit code that ends the command before any backup: a configuration
 * error (EX_CONFIG) or the feature off (EX_OK, "nothing to do"); messages prefixed by the command.
 */
export const storeOrExit = (run: Pick<Run, "config" | "p" | "args">): Effect.Effect<Either.Either<ObjectStoreShape, number>> =>
  Effect.gen(function*() {
    const s = storeOf(run)
    if (Either.isLeft(s)) {
      yield* run.p.err(`${run.args.command}: ${s.left.message}\n`)
      return Either.left(EX_CONFIG)
    }
    if (Option.isNone(s.right)) {
      yield* run.p.err(`${run.args.command}: ${FEATURE_OFF}: nothing to do\n`)
      return Either.left(EX_OK)
    }
    return Either.right(s.right.value)
  })

type One = (run: Run, t: Target) => Effect.Effect<number>

export interface StoreCommand {
  /** Before any backup: a code ends the run (feature off, store unusable). */
  readonly start: Effect.Effect<number | undefined>
  readonly one: One
  /** After the last backup: the run's exit code. */
  readonly finish: (r: number) => Effect.Effect<number>
}

const line = (run: Run, o: JObject, text: string) => (run.args.json ? run.p.outUtf8(jsonDump(o) + "\n") : run.p.out(text))

/** The commands of this module for `run`, undefined for any other. */
export const storeCommand = (run: Run): StoreCommand | undefined => {
  const { args } = run
  if (args.command !== "push" && !(args.command === "verify" && args.objectStore)) return undefined
  let store: ObjectStoreShape | undefined
  let worst = EX_OK
  let stop: ObjectStoreError | ObjectStoreLocalError | undefined
  const failed = (t: Target, e: ObjectStoreError | ObjectStoreLocalError) =>
    Effect.gen(function*() {
      yield* run.p.err(`${who(t)}: ${e.message}\n`)
      if (worst === EX_OK) worst = objectStoreExit(e)
      if (!fatal(e)) return settle(run, 1)
      // the store cannot be used at all: stop the loop
      stop = e
      run.skipsFails++
      return objectStoreExit(e)
    })
  const start = Effect.gen(function*() {
    const s = yield* storeOrExit(run)
    if (Either.isLeft(s)) return s.left
    store = s.right
    const probed = yield* Effect.either(store.status)
    if (Either.isLeft(probed)) {
      yield* run.p.err(`${args.command}: ${probed.left.message}\n`)
      return objectStoreExit(probed.left)
    }
    return undefined
  })
  const pushOne: One = (run, t) =>
    Effect.scoped(
      Effect.gen(function*() {
        const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
        if (Either.isLeft(opened)) {
          yield* run.p.err(`${who(t)}: cannot open ${t.dataPath}: ${opened.left._tag}\n`)
          return settle(run, openErrorCode(opened.left))
        }
        const r = yield* Effect.either(pushLocked(store!, t.userid ?? t.dataPath, opened.right))
        if (Either.isLeft(r)) return yield* failed(t, r.left)
        yield* printPush(run, t, r.right)
        return 0
      })
    )
  const verifyOne: One = (run, t) =>
    Effect.scoped(
      Effect.gen(function*() {
        const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
        if (Either.isLeft(opened)) return settle(run, openErrorCode(opened.left))
        const b = opened.right
        const end = yield* Effect.orElseSucceed(dataFileSize(b), () => 0)
        const plan = yield* Effect.either(planUpload(b.sql, b.indexPath, t.userid ?? t.dataPath, t.dataPath, end))
        if (Either.isLeft(plan)) return yield* failed(t, localError(b.indexPath)(plan.left))
        const mode = run.args.force ? "full" : "quick"
        let bad = 0
        let checked = 0
        const pending = pendingOf(plan.right).chunks
        for (const c of plan.right.chunks) {
          if (!c.sealed || c.known === undefined) continue
          const v = yield* Effect.either(store!.verifyObject(c.known, mode))
          if (Either.isLeft(v)) return yield* failed(t, v.left)
          checked++
          if (!v.right.ok) {
            bad++
            yield* reportBad(run, t, c.meta.id, v.right)
          }
        }
        const status = bad === 0 ? "ok" : "failed"
        yield* line(
          run,
          new JObject().set("command", "verify-objects").set("userid", jstring(t.userid)).set("fname", jstring(t.dataPath)).set("mode", mode).set("checked", checked).set("bad", bad).set("pending", pending).set("status", status),
          `${who(t)}\t${mode}\tchecked ${checked}\tbad ${bad}\tpending ${pending}\t${status}\n`
        )
        if (bad > 0 && worst === EX_OK) worst = EX_DATAERR
        return settle(run, bad > 0 ? 1 : 0)
      })
    )
  return {
    start,
    one: (run, t) => (stop !== undefined ? Effect.succeed(objectStoreExit(stop)) : args.command === "push" ? pushOne(run, t) : verifyOne(run, t)),
    finish: (r) =>
      Effect.gen(function*() {
        if (store !== undefined && stop === undefined && args.command === "push") {
          const aborted = yield* Effect.either(store.abortIncompleteUploads(24 * 3600))
          if (Either.isLeft(aborted)) yield* run.p.err(`push: ${aborted.left.message}\n`)
          else if (aborted.right > 0) yield* run.p.err(`push: aborted ${aborted.right} incomplete multipart uploads older than a day\n`)
        }
        if (worst !== EX_OK) return worst
        return r !== 0 || run.skipsFails > 0 ? EX_TEMPFAIL : EX_OK
      })
  }
}

const reportBad = (run: Run, t: Target, chunk: number, v: VerifyResult) => run.p.err(`${who(t)}: chunk ${chunk}: ${v.object}: ${v.problems.join("; ")}\n`)

const printPush = (run: Run, t: Target, r: PushReport) =>
  Effect.gen(function*() {
    const o = r.outcome
    const seq = o.manifest?.head.seq ?? r.outcome.plan.head?.seq ?? 0
    for (const l of r.deleted?.locked ?? []) yield* run.p.err(`${who(t)}: kept ${l.object}: ${l.message}\n`)
    for (const l of r.pruned?.locked ?? []) yield* run.p.err(`${who(t)}: kept ${l.object}: ${l.message}\n`)
    yield* line(
      run,
      new JObject()
        .set("command", "push")
        .set("userid", jstring(t.userid))
        .set("fname", jstring(t.dataPath))
        .set("uploaded_chunks", o.uploaded)
        .set("uploaded_bytes", o.uploadedBytes)
        .set("reused_chunks", o.reused)
        .set("manifest_seq", seq)
        .set("deleted_objects", (r.deleted?.deleted.length ?? 0) + (r.pruned?.deleted.length ?? 0))
        .set("kept_locked", (r.deleted?.locked.length ?? 0) + (r.pruned?.locked.length ?? 0))
        .set("pending_chunks", r.pending.chunks)
        .set("pending_bytes", r.pending.bytes),
      `${who(t)}\tuploaded ${o.uploaded}\t${o.uploadedBytes}\treused ${o.reused}\tmanifest ${seq}\tpending ${r.pending.chunks}\t${r.pending.bytes}\n`
    )
  })

/** One store per run (its first use probes the bucket once). */
const stores = new WeakMap<Run, ObjectStoreShape | undefined>()
const runStore = (run: Run): ObjectStoreShape | undefined => {
  if (!stores.has(run)) stores.set(run, Option.getOrUndefined(Either.getOrElse(storeOf(run), () => Option.none<ObjectStoreShape>())))
  return stores.get(run)
}

/** What the bucket held for a backup before its compaction (undefined: feature off or nothing recorded). */
export interface BeforeCompact {
  readonly objects: ReadonlyArray<{ readonly object: string; readonly versionId?: string | undefined }>
  readonly dropped: ReadonlyArray<DroppedObject>
}

/** Read before `compact` rebuilds the index (which loses our tables): the objects the manifest lists, the dropped list. */
export const beforeCompact = (run: Run, t: Target): Effect.Effect<BeforeCompact | undefined> =>
  runStore(run) === undefined
    ? Effect.succeed(undefined)
    : Effect.scoped(
        Effect.gen(function*() {
          const b = yield* openToolBackup(t.dataPath, { wait: run.args.wait })
          const s = yield* readUploadState(b.sql)
          return { objects: [...s.objects.values()].map((o) => ({ object: o.entry.object, versionId: o.entry.versionId })), dropped: s.dropped }
        })
      ).pipe(Effect.orElseSucceed(() => undefined))

/**
 * After a compaction: the new file pushed (its unchanged leading chunks cost one HEAD each, the
 * rewritten tail goes up), the old objects it does not use dropped now, a full manifest, and
 * the housekeeping (objects past retention deleted; a lock refusal is reported and the object
 * kept). Failures are reported on stderr; the compaction itself stands.
 */
export const afterCompact = (run: Run, t: Target, before: BeforeCompact | undefined): Effect.Effect<void> =>
  Effect.gen(function*() {
    const store = runStore(run)
    if (store === undefined) return
    const r = yield* Effect.either(
      Effect.scoped(
        Effect.flatMap(
          Effect.mapError(openToolBackup(t.dataPath, { wait: true }), localError(t.dataPath)),
          (b) => pushLocked(store, t.userid ?? t.dataPath, b, { full: true, dropFrom: before?.objects ?? [], carryDropped: before?.dropped ?? [] })
        )
      )
    )
    if (Either.isLeft(r)) return yield* run.p.err(`${who(t)}: object store not updated after compaction (ctl_backups push will): ${r.left.message}\n`)
    for (const l of [...(r.right.deleted?.locked ?? []), ...(r.right.pruned?.locked ?? [])]) yield* run.p.err(`${who(t)}: kept ${l.object}: ${l.message}\n`)
    if (run.args.verbose > 0) {
      const o = r.right.outcome
      yield* run.p.out(`object store: ${o.uploaded} chunks uploaded, ${o.reused} unchanged, manifest ${o.manifest?.head.seq ?? "-"}, ${r.right.deleted?.deleted.length ?? 0} dropped objects deleted\n`)
    }
  })
