/**
 * Whole-file POSIX record locks (fcntl F_SETLK/F_SETLKW, start 0, len 0), the locks Cyrus
 * takes on a twoskip file. fs-ext's asynchronous fcntl runs the blocking call on the libuv
 * thread pool; its synchronous variant is broken, so it is never used.
 *
 * Classic POSIX locks belong to the process: two fds of the same file in one process do not
 * exclude each other, and closing any of them drops the process's lock. `db.ts` therefore
 * serialises all users of one path inside the process before it ever takes these locks.
 */
import { Effect } from "effect"
import fsExt from "fs-ext"
import { TwoskipLockError } from "./errors.js"

export type LockKind = "read" | "write"

const fcntl = (fd: number, cmd: "setlk" | "setlkw", arg: number) =>
  new Promise<void>((resolve, reject) => fsExt.fcntl(fd, cmd, arg, (err) => (err ? reject(err) : resolve())))

/**
 * Takes a blocking whole-file lock. If the waiting fiber is interrupted, the lock that may
 * still be granted later is released at once, so an abandoned wait never leaks a lock.
 */
export const lockFile = (fd: number, kind: LockKind, path: string): Effect.Effect<void, TwoskipLockError> =>
  Effect.async<void, TwoskipLockError>((resume) => {
    let abandoned = false
    const type = kind === "read" ? fsExt.constants.F_RDLCK : fsExt.constants.F_WRLCK
    fsExt.fcntl(fd, "setlkw", type, (err) => {
      if (abandoned) {
        if (!err) fsExt.fcntl(fd, "setlk", fsExt.constants.F_UNLCK, () => {})
        return
      }
      resume(err ? Effect.fail(new TwoskipLockError({ path, reason: `${kind} lock: ${err.code ?? err.message}` })) : Effect.void)
    })
    return Effect.sync(() => {
      abandoned = true
    })
  })

/** Releases this process's lock on the file. */
export const unlockFile = (fd: number, path: string): Effect.Effect<void, TwoskipLockError> =>
  Effect.tryPromise({
    try: () => fcntl(fd, "setlk", fsExt.constants.F_UNLCK),
    catch: (e) => new TwoskipLockError({ path, reason: `unlock: ${(e as NodeJS.ErrnoException).code ?? String(e)}` })
  })
