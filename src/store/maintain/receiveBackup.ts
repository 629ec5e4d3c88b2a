/**
 * A new backup made from its data file's bytes as they arrive (a pull from the object store,
 * docs/storage.md, "Rebuilding a host"), in one pass instead of "write the file, then
 * reindex it": the bytes go to a work file (`work`) through the thread pool, in batches of
 * about 1 MiB, hashed on the way (the file's resumable SHA-1, whose state the index keeps, or
 * node's SHA-1 when the sender supplies that state: `end`), and the index is rebuilt at the same time by `rebuildIndex`, which reads the work file
 * behind its writer (each read waits until its bytes are written), so the index is the one
 * a reindex of the finished file builds. Writeback starts early (an fdatasync every 32 MiB),
 * so the last one is short.
 *
 * Nothing is in place before `complete`: it fdatasyncs the data file, takes the index
 * (SQLite commits with synchronous = FULL), links both under their names (never over an
 * existing file) and fsyncs the directory. A failure, or a scope closed before `complete`,
 * removes the work files.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import nodePath from "node:path"
import { Effect, Fiber, type Scope } from "effect"
import { indexPathOf } from "../openBackup.js"
import { BackupIoError, ioError, type BackupIndexError } from "../errors.js"
import { openIndexDb } from "../index/db.js"
import { digestOfSavedState, newSha1, peekDigest, saveState, stateToHex } from "../format/sha1State.js"
import { fsyncDirectory } from "../../util/fsyncDirectory.js"
import { rebuildIndex, type RebuildResult } from "./reindex.js"

export interface ReceiveOptions {
  /** Where the backup goes (must not exist, nor its index; its directory must). */
  readonly target: string
  /** The work file (created exclusively; its index beside it). */
  readonly work: string
  /** How many bytes the data file will have. */
  readonly size: number
  /**
   * What the sender says the whole file hashes to: its SHA-1 and, optionally, the resumable
   * SHA-1 state (hex, hash-wasm's) the writer's index kept at that end. With the state, the
   * bytes are hashed with node's SHA-1 instead (about half the CPU), and the state goes into
   * the new index only if the received file's digest and the state's own digest both equal
   * `fileSha1`; otherwise the index is given no state and hashes the file itself.
   */
  readonly end?: { readonly fileSha1: string; readonly fileState?: string | undefined } | undefined
}

export interface BackupReceiver {
  /** The next bytes of the data file, in order (kept until written). Resolves when it may take more. */
  readonly write: (bytes: Uint8Array) => Promise<void>
  /** SHA-1 (hex) of every byte taken so far; noted, so that a chunk starting here is not hashed again. */
  readonly sha1: () => string
  /** Every byte written: the index finished, both files durable and in place. */
  readonly complete: Effect.Effect<ReceivedBackup, BackupIoError | BackupIndexError>
}

export interface ReceivedBackup extends RebuildResult {
  readonly bytes: number
  /** SHA-1 of the whole data file. */
  readonly sha1: string
}

const BATCH = 1 << 20
/** Bytes taken but not yet written before `write` makes its caller wait. */
const IN_FLIGHT = 8 << 20
const SYNC_EVERY = 32 << 20

/** The data file's running SHA-1, and the resumable state of the whole file for the index. */
interface FileHash {
  readonly update: (b: Uint8Array) => void
  /** The digest so far, the hash going on. */
  readonly peek: () => string
  /** The saved state (hex) once the whole file is hashed, or undefined if there is none to give. */
  readonly stateOfWhole: () => string | undefined
}

const wasmFileHash = Effect.map(newSha1, (h): FileHash => ({
  update: (b) => void h.update(b),
  peek: () => peekDigest(h),
  stateOfWhole: () => stateToHex(saveState(h))
}))

const nativeFileHash = (end: { readonly fileSha1: string; readonly fileState: string }) =>
  Effect.map(digestOfSavedState(end.fileState), (stateDigest): FileHash => {
    const h = createHash("sha1")
    const peek = () => h.copy().digest("hex")
    return { update: (b) => void h.update(b), peek, stateOfWhole: () => (stateDigest === end.fileSha1 && peek() === end.fileSha1 ? end.fileState : undefined) }
  })

const fsCall = <A>(f: (cb: (e: NodeJS.ErrnoException | null, a: A) => void) => void): Promise<A> =>
  new Promise((resolve, reject) => f((e, a) => (e ? reject(e) : resolve(a))))

export const receiveBackup = (options: ReceiveOptions): Effect.Effect<BackupReceiver, BackupIoError, Scope.Scope> =>
  Effect.gen(function*() {
    const { target, work, size } = options
    const workIndex = indexPathOf(work)
    const targetIndex = indexPathOf(target)
    let completed = false
    const removeWork = () => {
      for (const p of [work, workIndex, `${workIndex}-journal`]) fs.rmSync(p, { force: true })
    }
    const fd = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const fd = fs.openSync(work, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600)
          // the work name is ours now: an index left beside it by an earlier, broken run goes
          for (const p of [workIndex, `${workIndex}-journal`]) fs.rmSync(p, { force: true })
          return fd
        },
        catch: ioError(work, "create")
      }),
      (fd) =>
        // a write or sync still on the thread pool finishes before its descriptor is closed
        Effect.promise(async () => {
          failure ??= ioError(work, "write")(new Error("abandoned"))
          await Promise.allSettled([writing, syncing])
          fs.closeSync(fd)
          if (!completed) removeWork()
        })
    )

    const end = options.end
    const fileHash = yield* (end?.fileState !== undefined ? nativeFileHash({ fileSha1: end.fileSha1, fileState: end.fileState }) : wasmFileHash)
    const noted = new Map<number, string>()
    let taken = 0 // bytes handed to write (and hashed)
    let written = 0 // bytes in the file, contiguous from 0
    let failure: BackupIoError | undefined
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    let writing: Promise<void> | undefined
    let syncing: Promise<void> | undefined
    let syncedTo = 0
    // readers waiting for `written` to reach an offset, and writers waiting for room
    const gates: Array<{ end: number; resolve: () => void; reject: (e: unknown) => void }> = []
    let room: Array<() => void> = []

    const wake = () => {
      for (let i = gates.length - 1; i >= 0; i--) {
        const g = gates[i]!
        if (failure !== undefined) g.reject(failure)
        else if (written >= g.end) g.resolve()
        else continue
        gates.splice(i, 1)
      }
      if (failure !== undefined || taken - written < IN_FLIGHT) {
        const r = room
        room = []
        r.forEach((f) => f())
      }
    }
    const fail = (op: string) => (e: unknown) => {
      failure ??= ioError(work, op)(e)
      wake()
    }
    const startSync = () => {
      if (syncing !== undefined || written - syncedTo < SYNC_EVERY) return
      const to = written
      syncing = fsCall<void>((cb) => fs.fdatasync(fd, cb)).then(
        () => {
          syncedTo = to
          syncing = undefined
        },
        (e) => {
          syncing = undefined
          fail("fdatasync")(e)
        }
      )
    }
    // one writev at a time, of everything taken meanwhile
    const pump = () => {
      if (writing !== undefined || pendingBytes === 0 || failure !== undefined) return
      const batch = pending
      const at = written
      const n = pendingBytes
      pending = []
      pendingBytes = 0
      writing = (async () => {
        let off = 0
        while (off < n) {
          let skip = off
          const rest: Array<Uint8Array> = []
          for (const b of batch) {
            if (skip >= b.byteLength) skip -= b.byteLength
            else {
              rest.push(skip === 0 ? b : b.subarray(skip))
              skip = 0
            }
          }
          off += await fsCall<number>((cb) => fs.writev(fd, rest, at + off, cb))
        }
      })().then(
        () => {
          written += n
          writing = undefined
          startSync()
          wake()
          pump()
        },
        (e) => {
          writing = undefined
          fail("write")(e)
        }
      )
    }

    const gate = (end: number): Promise<void> =>
      failure !== undefined
        ? Promise.reject(failure)
        : written >= Math.min(end, size)
          ? Promise.resolve()
          : new Promise((resolve, reject) => gates.push({ end: Math.min(end, size), resolve, reject }))

    const write = (bytes: Uint8Array): Promise<void> => {
      if (failure !== undefined) return Promise.reject(failure)
      if (taken + bytes.byteLength > size) return Promise.reject(ioError(work, "write")(new Error(`more than the announced ${size} bytes`)))
      fileHash.update(bytes)
      taken += bytes.byteLength
      pending.push(bytes)
      pendingBytes += bytes.byteLength
      if (pendingBytes >= BATCH || taken === size) pump()
      return taken - written < IN_FLIGHT ? Promise.resolve() : new Promise<void>((resolve) => room.push(resolve))
    }

    const sha1 = () => {
      const d = fileHash.peek()
      noted.set(taken, d)
      return d
    }

    const indexer = yield* Effect.scoped(
      Effect.flatMap(openIndexDb(workIndex), (sql) =>
        rebuildIndex({ fd, path: work }, sql, workIndex, {
          size,
          gate,
          fileSha1: { digestAt: (o) => noted.get(o), stateOfWhole: () => (taken === size ? fileHash.stateOfWhole() : undefined) }
        })
      )
    ).pipe(
      // a failed index stops the download too (the failure itself is what complete reports)
      Effect.tapError((e) => Effect.sync(() => fail("index")(e))),
      Effect.forkScoped
    )

    const io = <A>(op: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => (e instanceof BackupIoError ? e : ioError(work, op)(e)) })

    const complete: BackupReceiver["complete"] = Effect.gen(function*() {
      if (taken !== size) return yield* Effect.fail(ioError(work, "write")(new Error(`${taken} bytes written, ${size} announced`)))
      pump()
      const result = yield* Fiber.join(indexer)
      yield* io("write", () => gate(size))
      yield* io("fdatasync", async () => {
        await syncing
        if (failure !== undefined) throw failure
        await fsCall<void>((cb) => fs.fdatasync(fd, cb))
      })
      const sha1 = fileHash.peek()
      yield* Effect.try({
        try: () => {
          // never over an existing file: link, then drop the work name
          fs.linkSync(work, target)
          try {
            fs.linkSync(workIndex, targetIndex)
          } catch (e) {
            fs.rmSync(target)
            throw e
          }
          completed = true
          fs.rmSync(workIndex)
          fs.rmSync(work)
          fsyncDirectory(nodePath.dirname(target))
        },
        catch: ioError(target, "link into place")
      })
      return { ...result, bytes: size, sha1 }
    })

    return { write, sha1, complete } satisfies BackupReceiver
  })
