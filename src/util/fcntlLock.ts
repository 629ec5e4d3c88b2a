/**
 * Whole-file POSIX record locks (fcntl F_SETLK / F_SETLKW, start 0, length 0), the kind Cyrus
 * takes on backup data files, twoskip databases and accept-lock files, so that Cyrus's own
 * programs and ours see each other's locks. fs-ext's asynchronous fcntl is used (its
 * synchronous variant passes no lock structure); blocking waits run on libuv's thread pool.
 *
 * Classic POSIX locks belong to the process and are dropped when *any* descriptor of the
 * file is closed by it: never open and close a second descriptor of a locked file.
 */
import { Data, Effect } from "effect"
import fsExt from "fs-ext"

export class LockBusy extends Data.TaggedError("LockBusy")<{ readonly fd: number }> {
  override get message(): string {
    return `fd ${this.fd}: locked by another process`
  }
}
export class LockFailed extends Data.TaggedError("LockFailed")<{ readonly fd: number; readonly message: string }> {}

type Kind = "read" | "write" | "unlock"

const lockType = (kind: Kind): number => {
  const c = fsExt.constants
  return kind === "read" ? c["F_RDLCK"]! : kind === "write" ? c["F_WRLCK"]! : c["F_UNLCK"]!
}

/**
 * Sets a lock of `kind` on the whole file. With `wait`, blocks until it is granted; without,
 * fails at once with `LockBusy` when another process holds a conflicting lock.
 */
export const fcntlLock = (fd: number, kind: Kind, wait: boolean): Effect.Effect<void, LockBusy | LockFailed> =>
  Effect.async<void, LockBusy | LockFailed>((resume) => {
    fsExt.fcntl(fd, wait ? "setlkw" : "setlk", lockType(kind), (err: NodeJS.ErrnoException | null) => {
      if (err === null || err === undefined) resume(Effect.void)
      else if (err.code === "EAGAIN" || err.code === "EACCES" || err.code === "EWOULDBLOCK") resume(Effect.fail(new LockBusy({ fd })))
      else resume(Effect.fail(new LockFailed({ fd, message: err.message })))
    })
  })
