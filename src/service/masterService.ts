/**
 * The contract between Cyrus's `master` and a service process (docs/operations.md, "How it behaves under master"), for backupd:
 *
 *   fd 3  status pipe to master: 8-byte `{ int message; pid_t pid; }` in host byte order
 *   fd 4  the listening socket, shared with master and sibling processes
 *
 * One connection at a time: take the accept lock, accept exactly one connection, release the
 * lock, tell master UNAVAILABLE then CONNECTION, serve the session, tell master AVAILABLE and
 * loop — until `-U` uses are spent, `-T` passes without a connection, the program file
 * changes, or a signal asks us to stop.
 *
 * Node has no accept(2); libuv accepts for us. To accept exactly one connection per round we
 * listen on a dup(2) of fd 4 and close that duplicate from inside the connection callback,
 * which stops libuv's accept loop before it can take a second connection. fd 4 itself stays
 * open for the next round.
 */
import { Data, Deferred, Effect, Option, Schedule } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import { endianness } from "node:os"
import { posix } from "../util/posix.js"
import { fcntlLock, LockBusy } from "../util/fcntlLock.js"
import type { StopReason } from "../session/StopReason.js"
import { Signals } from "./Signals.js"

export const STATUS_FD = 3
export const LISTEN_FD = 4

export const MasterStatus = {
  AVAILABLE: 0x01,
  UNAVAILABLE: 0x02,
  CONNECTION: 0x03
} as const
export type MasterStatus = (typeof MasterStatus)[keyof typeof MasterStatus]

export class MasterServiceError extends Data.TaggedError("MasterServiceError")<{
  readonly message: string
  /** sysexits code the process should end with. */
  readonly exitCode: number
}> {}

/** The 8 bytes master reads from the status pipe. */
export const statusMessage = (message: MasterStatus, pid: number): Buffer => {
  const b = Buffer.alloc(8)
  if (endianness() === "LE") {
    b.writeInt32LE(message, 0)
    b.writeInt32LE(pid, 4)
  } else {
    b.writeInt32BE(message, 0)
    b.writeInt32BE(pid, 4)
  }
  return b
}

/** Tells master our state. A failed or short write is only logged, as in Cyrus. */
export const tellMaster = (message: MasterStatus, log: (line: string) => void): Effect.Effect<void> =>
  Effect.sync(() => {
    try {
      const n = fs.writeSync(STATUS_FD, statusMessage(message, process.pid))
      if (n !== 8) log(`unable to tell master ${message.toString(16)}: short write`)
    } catch (e) {
      log(`unable to tell master ${message.toString(16)}: ${(e as Error).message}`)
    }
  })

export interface AcceptLoopOptions {
  readonly maxUses: number
  /** Seconds; 0 = wait forever. The wait is randomised in [t, 2t) as Cyrus does. */
  readonly reuseTimeout: number
  /** The accept lock file, or undefined to run without one. */
  readonly lockPath: string | undefined
  /** The program files whose change (inode, size, mtime) ends the process: an upgrade was installed. */
  readonly programFiles: ReadonlyArray<string>
  readonly log: (line: string) => void
}

type Accepted =
  | { readonly _tag: "Connection"; readonly socket: net.Socket }
  | { readonly _tag: "Stop"; readonly why: "timeout" | "program changed" | "signal" }

/** inode, size and mtime of each file; a file that cannot be stat'ed counts as changed. */
const filesIdentity = (paths: ReadonlyArray<string>): string =>
  paths
    .map((p) => {
      try {
        const st = fs.statSync(p)
        return `${st.ino}:${st.size}:${st.mtimeMs}`
      } catch {
        return `missing:${Math.random()}`
      }
    })
    .join("|")

/** Waits for exactly one connection on fd 4 (see the module comment for how). */
const acceptOne = (
  timeoutMs: number | undefined,
  programFiles: ReadonlyArray<string>,
  programId: string,
  stop: Deferred.Deferred<StopReason>
): Effect.Effect<Accepted, MasterServiceError> => {
  // Cyrus looks at the program file before every accept: a changed binary never serves again.
  if (programFiles.length > 0 && filesIdentity(programFiles) !== programId) {
    return Effect.succeed({ _tag: "Stop", why: "program changed" })
  }
  const wait = Effect.async<Accepted, MasterServiceError>((resume) => {
    let fd: number
    try {
      fd = posix().dup(LISTEN_FD)
    } catch (e) {
      resume(Effect.fail(new MasterServiceError({ message: `can't use listening socket: ${(e as Error).message}`, exitCode: 71 })))
      return
    }
    const server = net.createServer({ pauseOnConnect: true })
    let done = false
    const timers: Array<NodeJS.Timeout> = []
    const finish = (outcome: Effect.Effect<Accepted, MasterServiceError>) => {
      if (done) return
      done = true
      timers.forEach((t) => clearTimeout(t))
      server.close()
      resume(outcome)
    }
    server.on("connection", (socket) => finish(Effect.succeed({ _tag: "Connection", socket })))
    server.on("error", (e) =>
      finish(Effect.fail(new MasterServiceError({ message: `accept failed: ${e.message}`, exitCode: 71 })))
    )
    server.listen({ fd })
    if (timeoutMs !== undefined) {
      timers.push(setTimeout(() => finish(Effect.succeed({ _tag: "Stop", why: "timeout" })), timeoutMs))
    }
    if (programFiles.length > 0) {
      const check = setInterval(() => {
        if (filesIdentity(programFiles) !== programId) {
          finish(Effect.succeed({ _tag: "Stop", why: "program changed" }))
        }
      }, 2000)
      timers.push(check)
    }
    return Effect.sync(() => finish(Effect.succeed({ _tag: "Stop", why: "signal" })))
  })
  return Effect.raceFirst(wait, Deferred.await(stop).pipe(Effect.as<Accepted>({ _tag: "Stop", why: "signal" })))
}

/**
 * Takes the accept lock. Polled with non-blocking F_SETLK rather than a blocking F_SETLKW: a
 * blocking wait would sit in libuv's thread pool where a stop signal cannot interrupt it.
 * Returns false when a stop was requested first.
 */
const takeAcceptLock = (lockFd: number, stop: Deferred.Deferred<StopReason>): Effect.Effect<boolean, MasterServiceError> =>
  Effect.raceFirst(
    fcntlLock(lockFd, "write", false).pipe(
      Effect.retry({ schedule: Schedule.spaced("20 millis"), while: (e) => e instanceof LockBusy }),
      Effect.mapError((e) => new MasterServiceError({ message: `can't take the accept lock: ${e._tag}`, exitCode: 71 })),
      Effect.as(true)
    ),
    Deferred.await(stop).pipe(Effect.as(false))
  )

/**
 * Runs the accept loop under master. `serve` handles one session on the accepted socket and
 * returns when it has ended (the socket closed). Returns the exit code the process should use:
 * 0 when uses, reuse timeout, SIGHUP or a changed program end it; 75 after SIGTERM/SIGINT/SIGQUIT.
 */
export const acceptLoop = <E, R>(
  options: AcceptLoopOptions,
  serve: (socket: net.Socket) => Effect.Effect<void, E, R>
): Effect.Effect<number, MasterServiceError, R | Signals> =>
  Effect.gen(function* () {
    const signals = yield* Signals
    const lockFd = options.lockPath === undefined ? undefined : openLockFile(options.lockPath, options.log)
    const programId = filesIdentity(options.programFiles)
    const exitFor = (reason: Option.Option<StopReason>) => (Option.isSome(reason) && reason.value === "terminate" ? 75 : 0)
    let uses = 0
    while (true) {
      const timeoutMs =
        uses > 0 && options.reuseTimeout > 0
          ? Math.floor((options.reuseTimeout + Math.random() * options.reuseTimeout) * 1000)
          : undefined
      if (lockFd !== undefined && !(yield* takeAcceptLock(lockFd, signals.stopRequested))) {
        return exitFor(yield* signals.poll)
      }
      const accepted = yield* acceptOne(timeoutMs, options.programFiles, programId, signals.stopRequested).pipe(
        Effect.ensuring(lockFd === undefined ? Effect.void : fcntlLock(lockFd, "unlock", false).pipe(Effect.ignore))
      )
      if (accepted._tag === "Stop") {
        if (accepted.why === "program changed") options.log("process file has changed")
        return exitFor(yield* signals.poll)
      }
      yield* tellMaster(MasterStatus.UNAVAILABLE, options.log)
      accepted.socket.setKeepAlive(true)
      yield* tellMaster(MasterStatus.CONNECTION, options.log)
      uses++
      yield* serve(accepted.socket).pipe(
        Effect.catchAllCause((cause) => Effect.sync(() => options.log(`session ended with an error: ${cause}`)))
      )
      const reason = yield* signals.poll
      if (Option.isSome(reason)) return exitFor(reason)
      // As in Cyrus, -U 0 still serves one connection.
      if (uses >= options.maxUses) return 0
      yield* tellMaster(MasterStatus.AVAILABLE, options.log)
    }
  })

const openLockFile = (path: string, log: (line: string) => void): number | undefined => {
  try {
    return fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_RDWR, 0o600)
  } catch (e) {
    log(`locking disabled: couldn't open socket lockfile ${path}: ${(e as Error).message}`)
    return undefined
  }
}
