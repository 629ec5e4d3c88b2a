/**
 * backupd's background upload of sealed chunks to the object store (docs/storage.md, "Driving
 * the library", "Uploads from backupd").
 *
 * When a session closes a user's backup (its chunk is then sealed and its lock released), the
 * user is queued; one worker fiber uploads queued backups one after another. No answer ever
 * waits for it, and a failing store only delays: the failure is logged, the user is tried
 * again later, and the lag is visible as pending chunks (`ctl_backups list`, metrics).
 *
 * Lock safety. The data file's lock belongs to the session; POSIX drops a process's lock when
 * *any* of its descriptors of the file is closed. So the worker:
 * 1. takes the lock briefly (the store's own opening) to read the plan from the index and to
 *    open a read-only descriptor of the locked inode, then releases the lock;
 * 2. uploads without the lock, reading through that descriptor (sealed byte ranges never
 *    change; a compaction by another process renames a new file in, and the descriptor keeps
 *    the old inode, whose bytes are the planned ones), and writes the manifest;
 * 3. takes the lock briefly again to record the manifest, if the index still has the planned
 *    chunks.
 * The read-only descriptor is closed only at a moment when no backup of that file is held in
 * this process (checked and closed synchronously), else later. A session that opens a backup
 * during one of the short windows of steps 1 and 3 waits for the window to end (milliseconds,
 * no network inside), instead of failing with "mailbox locked".
 *
 * On exit, `finish` waits for the queue to drain for at most EXIT_WAIT; what is left is
 * logged and left to `ctl_backups push`.
 */
import fs from "node:fs"
import { Duration, Effect, Either, Fiber, Option, Predicate, Queue, Schedule, type Scope } from "effect"
import type { CyrusConfig } from "../config/index.js"
import { memberDigestsFor, objectStoreSettings } from "../objectstore/settings.js"
import { isHeldInProcess, type BackupFiles, type UserBackupsShape, type WriterExtras } from "../store/index.js"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import { UploadSourceUnreadable } from "./errors.js"

/** How long an exiting backupd waits for queued uploads. */
export const EXIT_WAIT = Duration.seconds(20)
/** A user whose upload failed is tried again after this long (and at its next session). */
export const RETRY_AFTER = Duration.seconds(30)

export interface Uploader {
  /** `UserBackups` for the sessions: closing a backup queues its upload. */
  readonly backups: UserBackupsShape
  /** Waits (at most `within`) for the queue to drain, then stops the worker. */
  readonly finish: (within?: Duration.DurationInput) => Effect.Effect<void>
  /** Users queued or uploading now. */
  readonly busy: () => number
}

interface Job {
  readonly key: string
  readonly dataPath: string
}

/**
 * backupd's uploads run in the background, where their speed hardly matters and their memory is
 * added to the session's. Clear layout: the parts are streamed from the file (no part buffers),
 * two in flight, of the size the writer hashed them at (`memberDigestsFor`; 5 MiB for a member
 * without digests). Encrypted: S3's smallest part (5 MiB), one part in flight and one part buffer
 * (the next part is read from the page cache once the last one is sent, a few milliseconds),
 * instead of the library's default three 8 MiB buffers. Measured: docs/benchmarks.md, "Object
 * storage: backupd and the tools".
 */
const BACKGROUND_UPLOAD = { partSize: 5 * 1024 * 1024, queueSize: 1, partBuffers: 1, streamedInFlight: 2 } as const

/** What the sessions' writers record for the uploads (settings.ts, `memberDigestsFor`). */
export const writerExtras = (config: CyrusConfig): WriterExtras => ({ memberDigests: memberDigestsFor(config) })

/** Without object storage: the sessions' UserBackups as they are. */
const off = (backups: UserBackupsShape): Uploader => ({ backups, finish: () => Effect.void, busy: () => 0 })

export const startUploader = (config: CyrusConfig, inner: UserBackupsShape, log: ServiceLog): Effect.Effect<Uploader> =>
  Effect.gen(function*() {
    const settings = objectStoreSettings(config)
    if (Either.isLeft(settings)) {
      log.error(`object storage disabled: ${settings.left.message}`)
      return off(inner)
    }
    if (Option.isNone(settings.right)) return off(inner)
    const { makeObjectStore } = yield* Effect.promise(() => import("../objectstore/ObjectStore.js"))
    const { planUpload, runUpload, recordUpload, pendingOf } = yield* Effect.promise(() => import("../objectstore/backupUpload.js"))
    const { openBackup, dataFileSize } = yield* Effect.promise(() => import("./uploadStore.js"))
    const store = makeObjectStore(settings.right.value, BACKGROUND_UPLOAD)

    const queue = yield* Queue.unbounded<Job>()
    const queued = new Map<string, Job>()
    let running: string | undefined
    /** Keys whose lock the worker holds right now (steps 1 and 3). */
    const windows = new Set<string>()
    /** Read-only descriptors waiting for a moment when their file's lock is not held here. */
    const toClose: Array<{ readonly fd: number; readonly path: string }> = []
    const sweep = () => {
      for (let i = toClose.length - 1; i >= 0; i--) {
        const c = toClose[i]!
        if (isHeldInProcess(c.path)) continue
        // (a descriptor of ours, opened read-only: closing it cannot fail but for EBADF, a bug)
        try {
          fs.closeSync(c.fd)
        } catch (e) {
          log.error(`object store: closing the upload descriptor of ${c.path}: ${(e as Error).message}`)
        }
        toClose.splice(i, 1)
      }
    }
    const closeLater = (fd: number, path: string) => {
      toClose.push({ fd, path })
      sweep()
    }

    const enqueue = (job: Job) =>
      Effect.suspend(() => {
        if (queued.has(job.key)) return Effect.void
        queued.set(job.key, job)
        return Queue.offer(queue, job)
      })

    /** Runs `body` holding the backup's lock, marked as a window sessions wait for. */
    const inWindow = <A, E>(key: string, body: Effect.Effect<A, E, Scope.Scope>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => windows.add(key)),
        () => Effect.scoped(body),
        () => Effect.sync(() => void windows.delete(key))
      )

    /**
     * `body` on the opened backup inside a window; while another process holds the lock (a
     * ctl_backups run), tried again every 200 ms for up to 10 s. A session of this process
     * holding it is not waited for: its close queues the user again.
     */
    const withLock = <A, E>(job: Job, body: (files: BackupFiles) => Effect.Effect<A, E>) =>
      inWindow(job.key, Effect.flatMap(openBackup(job.dataPath), body)).pipe(
        Effect.retry({
          while: (e) => Predicate.isTagged(e, "BackupLocked") && !isHeldInProcess(job.dataPath),
          schedule: Schedule.intersect(Schedule.spaced("200 millis"), Schedule.recurs(50))
        })
      )

    /** Uploads done whose record waits for a session of this process to release the lock. */
    const parked = new Map<string, Effect.Effect.Success<ReturnType<typeof runUpload>>>()
    const heldHere = (job: Job) => (e: unknown) => Predicate.isTagged(e, "BackupLocked") && isHeldInProcess(job.dataPath)

    const uploadOne = (job: Job) =>
      Effect.gen(function*() {
        const started = Date.now()
        const waiting = parked.get(job.key)
        if (waiting !== undefined) {
          // the last upload's manifest is in the bucket: record it first, then look for more
          yield* withLock(job, (files) => recordUpload(files.sql, files.indexPath, waiting))
          parked.delete(job.key)
        }
        const planned = yield* withLock(job, (files) =>
          Effect.gen(function*() {
            const end = yield* dataFileSize(files)
            const plan = yield* planUpload(files.sql, files.indexPath, job.key, job.dataPath, end)
            const pending = pendingOf(plan)
            if (pending.chunks === 0 && plan.head !== undefined) return undefined
            // a second descriptor of the locked inode, for reading after the lock is released
            const fd = yield* Effect.try({
              try: () => fs.openSync(job.dataPath, "r"),
              catch: (e) => new UploadSourceUnreadable({ path: job.dataPath, reason: (e as Error).message })
            })
            return { plan, fd, pending }
          })
        )
        if (planned === undefined) return
        const { plan, fd, pending } = planned
        const outcome = yield* runUpload(store, plan, fd).pipe(Effect.ensuring(Effect.sync(() => closeLater(fd, job.dataPath))))
        // a session that opened the backup meanwhile holds the lock: record when it closes
        const recorded = yield* withLock(job, (files) => recordUpload(files.sql, files.indexPath, outcome)).pipe(
          Effect.catchIf(heldHere(job), () => Effect.sync(() => (parked.set(job.key, outcome), "parked" as const)))
        )
        const secs = ((Date.now() - started) / 1000).toFixed(3)
        const note = recorded === "parked" ? " (recorded when the open session closes)" : recorded ? "" : " (index changed meanwhile: not recorded)"
        log.info(
          `object store: ${job.key}: ${outcome.uploaded} chunks (${outcome.uploadedBytes} bytes) uploaded, ${outcome.reused} found, of ${pending.chunks} pending;` +
            ` manifest ${outcome.manifest?.head.seq ?? "unchanged"}${note}; ${secs}s`
        )
      })

    const retryLater = (job: Job) => Effect.forkDaemon(Effect.delay(enqueue(job), RETRY_AFTER))

    const worker = Effect.forever(
      Effect.gen(function*() {
        const job = yield* Queue.take(queue)
        queued.delete(job.key)
        running = job.key
        const r = yield* Effect.either(uploadOne(job))
        running = undefined
        sweep()
        if (Either.isRight(r)) return
        const e = r.left
        if (Predicate.isTagged(e, "BackupLocked")) {
          // a session of this process has it: its close queues it again; another process: retry
          if (!isHeldInProcess(job.dataPath)) yield* retryLater(job)
          return
        }
        if (Predicate.isTagged(e, "BackupNotFound")) return
        const reason = Predicate.hasProperty(e, "message") && typeof e.message === "string" ? e.message : String(e)
        log.warning(`object store: upload of ${job.key} delayed (tried again in ${Duration.format(RETRY_AFTER)}, or by ctl_backups push): ${reason}`)
        yield* retryLater(job)
      })
    )
    const fiber = yield* Effect.forkDaemon(worker)

    const backups: UserBackupsShape = {
      open: (key, options) =>
        Effect.gen(function*() {
          let dataPath: string | undefined
          // runs after the backup's own finalizers (sealed, unlocked): finalizers run in reverse
          yield* Effect.addFinalizer(() => (dataPath === undefined ? Effect.void : enqueue({ key, dataPath })))
          const opened = yield* inner.open(key, options).pipe(
            Effect.retry({ while: (e) => Predicate.isTagged(e, "BackupLocked") && windows.has(key), schedule: Schedule.spaced("2 millis") })
          )
          if (Option.isSome(opened)) dataPath = opened.value.dataPath
          return opened
        })
    }

    const busy = () => queued.size + (running === undefined ? 0 : 1)
    const finish = (within: Duration.DurationInput = EXIT_WAIT) =>
      Effect.gen(function*() {
        if (busy() > 0) {
          log.info(`object store: finishing ${busy()} queued uploads (at most ${Duration.format(within)})`)
          yield* Effect.repeat(Effect.sync(busy), { until: (n) => n === 0, schedule: Schedule.spaced("50 millis") }).pipe(Effect.timeout(within), Effect.ignore)
        }
        const left = busy()
        if (left > 0) log.notice(`object store: ${left} uploads left to ctl_backups push at exit`)
        yield* Fiber.interrupt(fiber)
        sweep()
      })
    return { backups, finish, busy }
  })
