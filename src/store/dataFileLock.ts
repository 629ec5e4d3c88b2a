/**
 * Opening and locking a backup data file as Cyrus does (`backup_real_open`): open read-write,
 * whole-file fcntl write lock, then check that the path still names the inode we locked (a
 * compact may have renamed a new file over it meanwhile) and start again if not.
 *
 * POSIX locks belong to the process, so a second open in this process would "succeed" and
 * closing its descriptor would silently drop the first one's lock. An in-process registry of
 * held paths makes a second open fail with BackupLocked before any descriptor is opened.
 */
import fs from "node:fs"
import nodePath from "node:path"
import { Effect, ExecutionStrategy, Exit, Option, Schedule, Scope } from "effect"
import { fcntlLock } from "../util/fcntlLock.js"
import { BackupExists, BackupIoError, BackupLocked, BackupNotFound, ioError } from "./errors.js"

export interface LockedDataFile {
  readonly path: string
  /** The locked descriptor; all reads and writes of the data file go through it. */
  readonly fd: number
}

export interface LockOptions {
  /** Create the file (mode 0600) if it does not exist. */
  readonly create?: boolean
  /** Fail with BackupExists if it does exist (with `create`). */
  readonly exclusive?: boolean
  /** Wait for the lock instead of failing with BackupLocked (polls, as cyr_backup blocks). */
  readonly wait?: boolean
}

const held = new Set<string>()

/** True while this process holds the lock of the data file at `path`. */
export const isHeldInProcess = (path: string): boolean => held.has(nodePath.resolve(path))

const openFd = (path: string, opts: LockOptions) =>
  Effect.async<number, BackupNotFound | BackupExists | BackupIoError>((resume) => {
    const flags = fs.constants.O_RDWR | (opts.create ? fs.constants.O_CREAT : 0) | (opts.create && opts.exclusive ? fs.constants.O_EXCL : 0)
    fs.open(path, flags, 0o600, (err, fd) => {
      if (!err) return resume(Effect.succeed(fd))
      if (err.code === "ENOENT") return resume(Effect.fail(new BackupNotFound({ path })))
      if (err.code === "EEXIST") return resume(Effect.fail(new BackupExists({ path })))
      resume(Effect.fail(ioError(path, "open")(err)))
    })
  })

const closeFd = (fd: number) => Effect.async<void>((resume) => fs.close(fd, () => resume(Effect.void)))

/** Same inode at the path as behind the descriptor? */
const samePathInode = (path: string, fd: number) =>
  Effect.try({
    try: () => {
      const a = fs.fstatSync(fd)
      try {
        const b = fs.statSync(path)
        return a.ino === b.ino && a.dev === b.dev
      } catch {
        return false
      }
    },
    catch: ioError(path, "fstat")
  })

/**
 * Runs `effect` in a scope of its own, a child of the caller's. The child stays open (and
 * closes with the caller's scope) when `keep` holds for the result; on failure, interruption
 * or a result not kept it is closed at once. What `effect` acquired is thus released exactly
 * once, either now or with the caller's scope.
 */
const ownScope = <A, E, R>(effect: Effect.Effect<A, E, R | Scope.Scope>, keep: (a: A) => boolean = () => true) =>
  Effect.flatMap(Effect.scope, (outer) =>
    Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (child) =>
      Scope.extend(effect, child).pipe(
        Effect.onExit((exit) => (Exit.isSuccess(exit) && keep(exit.value) ? Effect.void : Scope.close(child, Exit.void)))
      )
    )
  )

/**
 * One attempt: open, lock, check that the path still names the locked inode. The descriptor
 * is a resource of the attempt's scope, so it is closed once whatever happens: at once if the
 * lock is busy, fails or the file was replaced, else when the caller's scope closes.
 */
const attempt = (path: string, opts: LockOptions) =>
  ownScope(
    Effect.gen(function*() {
      const fd = yield* Effect.acquireRelease(openFd(path, opts), closeFd)
      yield* fcntlLock(fd, "write", false).pipe(
        Effect.catchTags({
          LockBusy: () => Effect.fail(new BackupLocked({ path })),
          LockFailed: (e) => Effect.fail(new BackupIoError({ path, op: "fcntl", message: e.message }))
        })
      )
      return (yield* samePathInode(path, fd)) ? Option.some(fd) : Option.none<number>()
    }),
    Option.isSome
  )

const lockOnce = (path: string, opts: LockOptions) =>
  Effect.gen(function*() {
    for (;;) {
      const fd = yield* attempt(path, opts)
      if (Option.isSome(fd)) return fd.value
      // Replaced under us; an exclusive create must not fail on our own first attempt.
      opts = { ...opts, exclusive: false }
    }
  })

/** Opens and locks the data file for the lifetime of the scope; closing the scope unlocks. */
export const lockDataFile = (
  path: string,
  opts: LockOptions = {}
): Effect.Effect<LockedDataFile, BackupLocked | BackupNotFound | BackupExists | BackupIoError, Scope.Scope> => {
  const key = nodePath.resolve(path)
  // The in-process claim is released after the descriptor is closed (finalizers run in reverse).
  const claim = Effect.acquireRelease(
    Effect.suspend(() => (held.has(key) ? Effect.fail(new BackupLocked({ path })) : Effect.sync(() => void held.add(key)))),
    () => Effect.sync(() => void held.delete(key))
  )
  const locked = opts.wait
    ? lockOnce(path, opts).pipe(Effect.retry({ while: (e) => e._tag === "BackupLocked", schedule: Schedule.spaced("100 millis") }))
    : lockOnce(path, opts)
  return ownScope(Effect.zipRight(claim, Effect.map(locked, (fd) => ({ path, fd }))))
}
