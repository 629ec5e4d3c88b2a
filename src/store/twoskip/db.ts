/**
 * A Cyrus 3.6 twoskip database as an Effect resource.
 *
 * `open` gives a handle for the lifetime of a Scope. Reads take a shared fcntl lock for
 * their duration, `transaction` takes the exclusive lock and commits when its body
 * succeeds, aborts (rolls back to the last commit) when it fails or is interrupted.
 * An unfinished transaction left by a crashed process (ours or Cyrus's) is rolled back
 * the next time anyone locks the file.
 *
 * Inside one process, all handles of a path are serialised (one open handle at a time):
 * POSIX locks do not exclude fds of the same process, and closing any fd of the file would
 * drop the process's lock. Do not open the same path twice from one fiber: it would wait on
 * itself.
 */
import type { FileHandle } from "node:fs/promises"
import * as fsp from "node:fs/promises"
import { constants as fsConstants, writeSync } from "node:fs"
import * as nodePath from "node:path"
import { Effect, Exit, Option, Scope } from "effect"
import { Engine, Image, type IoStep, type RandomSource } from "./Engine.js"
import {
  TwoskipCorrupt,
  TwoskipEmptyKey,
  type TwoskipError,
  TwoskipIoError,
  TwoskipKeyExists,
  TwoskipNotFound
} from "./errors.js"
import { decodeHeader, HEADER_SIZE, MIN_REWRITE } from "./format.js"
import { type LockKind, lockFile, unlockFile } from "./lock.js"

export interface TwoskipOptions {
  /** Create the file (and missing parent directories, mode 0755 & ~umask) when absent. */
  readonly create?: boolean
  /** Coin for new record levels (default Math.random); inject for reproducible files. */
  readonly random?: RandomSource
  /** Rewrite the file after a commit once it has grown enough, as Cyrus does (default true). */
  readonly autoCheckpoint?: boolean
  /** fdatasync at Cyrus's sync points (default true). Only tests should turn it off. */
  readonly sync?: boolean
}

export interface TwoskipEntry {
  readonly key: Buffer
  readonly value: Buffer
}

export interface TwoskipInfo {
  readonly generation: number
  readonly numRecords: number
  readonly repackSize: number
  readonly currentSize: number
}

export interface TwoskipReader {
  /** The value stored under `key`, if any. */
  readonly fetch: (key: Uint8Array) => Effect.Effect<Option.Option<Buffer>, TwoskipError>
  /** Every pair whose key starts with `prefix` (all pairs when omitted), in key order. */
  readonly foreach: (prefix?: Uint8Array) => Effect.Effect<ReadonlyArray<TwoskipEntry>, TwoskipError>
}

export interface TwoskipTxn extends TwoskipReader {
  /** Insert or replace. */
  readonly store: (key: Uint8Array, value: Uint8Array) => Effect.Effect<void, TwoskipError>
  /** Insert only; fails with TwoskipKeyExists when the key is present. */
  readonly create: (key: Uint8Array, value: Uint8Array) => Effect.Effect<void, TwoskipError>
  /** Remove; false when the key was absent. */
  readonly delete: (key: Uint8Array) => Effect.Effect<boolean, TwoskipError>
}

export interface TwoskipDb extends TwoskipTxn {
  readonly path: string
  /** Runs `body` in one write transaction (store/create/delete above are one-operation transactions). */
  readonly transaction: <A, E, R>(
    body: (txn: TwoskipTxn) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | TwoskipError, R>
  /** Rewrites the file with only the live records (generation + 1), as `cyr_dbtool repack`. */
  readonly checkpoint: Effect.Effect<void, TwoskipError>
  /** Full structural check; fails with TwoskipCorrupt when anything is off. */
  readonly consistent: Effect.Effect<void, TwoskipError>
  readonly info: Effect.Effect<TwoskipInfo, TwoskipError>
}

interface Handle {
  readonly path: string
  fh: FileHandle
  image: Image | undefined
}

interface Settings {
  readonly random: RandomSource
  readonly autoCheckpoint: boolean
  readonly sync: boolean
}

// One gate per absolute path: see the module comment.
const gates = new Map<string, Effect.Semaphore>()
const gateFor = (path: string): Effect.Semaphore => {
  let gate = gates.get(path)
  if (gate === undefined) {
    gate = Effect.unsafeMakeSemaphore(1)
    gates.set(path, gate)
  }
  return gate
}

const errnoOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code

const io = <A>(path: string, operation: string, f: () => Promise<A>): Effect.Effect<A, TwoskipIoError> =>
  Effect.tryPromise({
    try: f,
    catch: (e) => new TwoskipIoError({ path, operation, reason: errnoOf(e) ?? String(e) })
  })

/** Runs synchronous engine code, turning anything it throws into a tagged failure. */
const attempt = <A>(path: string, f: () => A): Effect.Effect<A, TwoskipCorrupt> =>
  Effect.try({
    try: f,
    catch: (e) =>
      e instanceof TwoskipCorrupt ? e : new TwoskipCorrupt({ path, offset: 0, reason: e instanceof Error ? e.message : String(e) })
  })

// Plain pwrite into the page cache: a synchronous call is far cheaper than a thread-pool
// round trip per record head, and durability comes from the (asynchronous) fdatasync steps.
const writeAll = (fh: FileHandle, data: Buffer, position: number): void => {
  let done = 0
  while (done < data.length) {
    done += writeSync(fh.fd, data, done, data.length - done, position + done)
  }
}

/** Replays queued engine I/O onto a file, in order. */
const flushTo = (
  fh: FileHandle,
  path: string,
  sync: boolean,
  steps: ReadonlyArray<IoStep>
): Effect.Effect<void, TwoskipIoError> => {
  if (steps.length === 0) return Effect.void
  let operation = "write"
  return io(path, "write", async () => {
    for (const step of steps) {
      operation = step._tag.toLowerCase()
      if (step._tag === "Write") writeAll(fh, step.data, step.offset)
      else if (step._tag === "Truncate") await fh.truncate(step.size)
      else if (sync) await fh.datasync()
    }
  }).pipe(Effect.mapError((e) => new TwoskipIoError({ ...e, operation })))
}

const openFile = (path: string, create: boolean): Effect.Effect<FileHandle, TwoskipIoError | TwoskipNotFound> =>
  Effect.tryPromise({
    try: () => fsp.open(path, fsConstants.O_RDWR),
    catch: (e) => e
  }).pipe(
    Effect.catchAll((e): Effect.Effect<FileHandle, TwoskipIoError | TwoskipNotFound> => {
      if (errnoOf(e) !== "ENOENT") {
        return Effect.fail(new TwoskipIoError({ path, operation: "open", reason: errnoOf(e) ?? String(e) }))
      }
      if (!create) return Effect.fail(new TwoskipNotFound({ path }))
      return io(path, "mkdir", () => fsp.mkdir(nodePath.dirname(path), { recursive: true, mode: 0o755 })).pipe(
        Effect.zipRight(io(path, "create", () => fsp.open(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644)))
      )
    })
  )

const makeOps = (handle: Handle, settings: Settings) => {
  const path = handle.path

  const flush = (steps: ReadonlyArray<IoStep>): Effect.Effect<void, TwoskipIoError> =>
    Effect.suspend(() => flushTo(handle.fh, path, settings.sync, steps))

  /** Locks the file behind `handle.fh`, reopening when the path now names another inode (checkpoint). */
  const lock = (kind: LockKind): Effect.Effect<void, TwoskipError> =>
    Effect.gen(function* () {
      for (;;) {
        yield* lockFile(handle.fh.fd, kind, path)
        const held = yield* io(path, "fstat", () => handle.fh.stat())
        const named = yield* io(path, "stat", () => fsp.stat(path)).pipe(
          Effect.tapError(() => unlockFile(handle.fh.fd, path).pipe(Effect.ignore))
        )
        if (held.ino === named.ino && held.dev === named.dev) return
        const fresh = yield* io(path, "open", () => fsp.open(path, fsConstants.O_RDWR)).pipe(
          Effect.tapError(() => unlockFile(handle.fh.fd, path).pipe(Effect.ignore))
        )
        const old = handle.fh
        handle.fh = fresh
        handle.image = undefined
        yield* io(path, "close", () => old.close()).pipe(Effect.ignore)
      }
    })

  const unlock = Effect.suspend(() => unlockFile(handle.fh.fd, path)).pipe(Effect.ignore)

  /** The current bytes of the file, reusing the cached image when size and header match. */
  const loadImage: Effect.Effect<Image, TwoskipIoError> = Effect.gen(function* () {
    const { size } = yield* io(path, "fstat", () => handle.fh.stat())
    const cached = handle.image
    if (cached !== undefined && cached.size === size && size >= HEADER_SIZE) {
      const head = Buffer.alloc(HEADER_SIZE)
      yield* io(path, "read", () => handle.fh.read(head, 0, HEADER_SIZE, 0))
      if (head.equals(cached.buf.subarray(0, HEADER_SIZE))) return cached
    }
    const buf = Buffer.alloc(Math.max(size, 4096))
    let done = 0
    while (done < size) {
      const { bytesRead } = yield* io(path, "read", () => handle.fh.read(buf, done, size - done, done))
      if (bytesRead === 0) break
      done += bytesRead
    }
    const image = new Image(buf, done)
    handle.image = image
    return image
  })

  const engineFor = (image: Image): Effect.Effect<Engine, TwoskipCorrupt> =>
    attempt(path, () => new Engine(path, image, decodeHeader(image.buf, image.size, path), settings.random))

  const step = <A>(engine: Engine, f: (engine: Engine) => A): Effect.Effect<A, TwoskipError> =>
    attempt(path, () => f(engine)).pipe(Effect.tap(() => flush(engine.image.drain())))

  const rewrite = (engine: Engine): Effect.Effect<void, TwoskipError> =>
    Effect.gen(function* () {
      const newPath = `${path}.NEW`
      yield* io(newPath, "unlink", () => fsp.unlink(newPath)).pipe(Effect.catchAll(() => Effect.void))
      const fresh = yield* io(newPath, "create", () => fsp.open(newPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644))
      const outcome = yield* Effect.gen(function* () {
        yield* lockFile(fresh.fd, "write", newPath)
        const target = yield* attempt(path, () => {
          engine.checkConsistent()
          const copy = Engine.create(newPath, settings.random)
          for (const [key, value] of engine.entries(Buffer.alloc(0))) copy.store(key, value, false)
          copy.checkConsistent()
          copy.header.repackSize = copy.end
          copy.header.generation = engine.header.generation + 1
          copy.commit()
          return copy
        })
        yield* flushTo(fresh, newPath, settings.sync, target.image.drain())
        yield* io(path, "rename", () => fsp.rename(newPath, path))
        const dir = yield* io(path, "open directory", () => fsp.open(nodePath.dirname(path), "r"))
        yield* io(path, "fsync directory", () => dir.sync()).pipe(Effect.ensuring(Effect.promise(() => dir.close())))
        return target.image
      }).pipe(Effect.exit)
      if (Exit.isFailure(outcome)) {
        yield* Effect.promise(() => fresh.close())
        yield* Effect.promise(() => fsp.unlink(newPath).catch(() => undefined))
        return yield* outcome
      }
      // the new file is in place and we hold its lock; the old fd (and its lock) can go
      const old = handle.fh
      handle.fh = fresh
      handle.image = outcome.value
      yield* Effect.promise(() => old.close())
    })

  /** A write-locked session: recovery first if needed, then body, then commit or abort. */
  const writeSession = <A, E, R>(
    body: (engine: Engine) => Effect.Effect<A, E, R>,
    forceCheckpoint = false
  ): Effect.Effect<A, E | TwoskipError, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        yield* restore(lock("write"))
        const result = yield* Effect.gen(function* () {
          const image = yield* loadImage
          if (image.size === 0) {
            // an empty file (just created by someone): give it a header and DUMMY
            const created = Engine.create(path, settings.random)
            handle.image = created.image
            yield* flush(created.image.drain())
          }
          const engine = yield* engineFor(handle.image!)
          if (!engine.isClean()) yield* step(engine, (e) => e.recover())
          const exit = yield* Effect.exit(restore(body(engine)))
          if (Exit.isFailure(exit)) {
            yield* step(engine, (e) => e.abort()).pipe(Effect.ignore)
            return yield* exit
          }
          yield* step(engine, (e) => e.commit()).pipe(
            Effect.tapError(() => step(engine, (e) => e.abort()).pipe(Effect.ignore))
          )
          if (forceCheckpoint || (settings.autoCheckpoint && engine.wantsCheckpoint(MIN_REWRITE))) {
            yield* rewrite(engine)
          }
          return exit.value
        }).pipe(
          Effect.tapErrorCause(() => Effect.sync(() => (handle.image = undefined))),
          Effect.ensuring(unlock)
        )
        return result
      })
    )

  /** A read-locked session; a file left dirty by a crash is repaired under a write lock first. */
  const readSession = <A>(f: (engine: Engine) => A): Effect.Effect<A, TwoskipError> =>
    Effect.gen(function* () {
      for (;;) {
        const outcome = yield* Effect.uninterruptibleMask((restore) =>
          restore(lock("read")).pipe(
            Effect.zipRight(
              Effect.gen(function* () {
                const image = yield* loadImage
                if (image.size === 0) return Option.none<A>()
                const engine = yield* engineFor(image)
                if (!engine.isClean()) return Option.none<A>()
                return Option.some(yield* attempt(path, () => f(engine)))
              }).pipe(Effect.ensuring(unlock))
            )
          )
        )
        if (Option.isSome(outcome)) return outcome.value
        yield* writeSession(() => Effect.void)
      }
    })

  return { flush, writeSession, readSession }
}

const checkKey = (key: Uint8Array): Effect.Effect<void, TwoskipEmptyKey> =>
  key.length === 0 ? Effect.fail(new TwoskipEmptyKey()) : Effect.void

const txnOver = (
  engine: Engine,
  path: string,
  flush: (steps: ReadonlyArray<IoStep>) => Effect.Effect<void, TwoskipIoError>
): TwoskipTxn => {
  const run = <A>(f: () => A) => attempt(path, f).pipe(Effect.tap(() => flush(engine.image.drain())))
  return {
    fetch: (key) => checkKey(key).pipe(Effect.zipRight(run(() => Option.fromNullable(engine.fetch(key))))),
    foreach: (prefix) =>
      run(() => engine.entries(prefix ?? Buffer.alloc(0)).map(([key, value]) => ({ key, value }))),
    store: (key, value) => checkKey(key).pipe(Effect.zipRight(run(() => void engine.store(key, value, true)))),
    create: (key, value) =>
      checkKey(key).pipe(
        Effect.zipRight(run(() => engine.store(key, value, false))),
        Effect.flatMap((r) => (r === "exists" ? Effect.fail(new TwoskipKeyExists({ key: Buffer.from(key) })) : Effect.void))
      ),
    delete: (key) => checkKey(key).pipe(Effect.zipRight(run(() => engine.delete(key))))
  }
}

/**
 * Opens (optionally creating) a twoskip file for the lifetime of the current Scope.
 * A new file is written exactly as Cyrus does (header + DUMMY, 336 bytes); a file left
 * dirty by a crash is recovered before this returns.
 */
export const open = (
  path: string,
  options: TwoskipOptions = {}
): Effect.Effect<TwoskipDb, TwoskipError, Scope.Scope> =>
  Effect.gen(function* () {
    const absolute = nodePath.resolve(path)
    const settings: Settings = {
      random: options.random ?? Math.random,
      autoCheckpoint: options.autoCheckpoint ?? true,
      sync: options.sync ?? true
    }
    const gate = gateFor(absolute)
    yield* Effect.acquireRelease(gate.take(1), () => gate.release(1))
    const handle = yield* Effect.acquireRelease(
      openFile(absolute, options.create ?? false).pipe(
        Effect.map((fh): Handle => ({ path: absolute, fh, image: undefined }))
      ),
      (h) => Effect.promise(() => h.fh.close()).pipe(Effect.ignore)
    )
    const ops = makeOps(handle, settings)
    // creates the header of an empty file, recovers a dirty one
    yield* ops.readSession(() => undefined)

    const transaction = <A, E, R>(body: (txn: TwoskipTxn) => Effect.Effect<A, E, R>) =>
      ops.writeSession((engine) => body(txnOver(engine, absolute, ops.flush)))

    const db: TwoskipDb = {
      path: absolute,
      fetch: (key) =>
        checkKey(key).pipe(Effect.zipRight(ops.readSession((e) => Option.fromNullable(e.fetch(key))))),
      foreach: (prefix) =>
        ops.readSession((e) => e.entries(prefix ?? Buffer.alloc(0)).map(([key, value]) => ({ key, value }))),
      store: (key, value) => transaction((t) => t.store(key, value)),
      create: (key, value) => transaction((t) => t.create(key, value)),
      delete: (key) => transaction((t) => t.delete(key)),
      transaction,
      checkpoint: ops.writeSession(() => Effect.void, true),
      consistent: ops.readSession((e) => e.checkConsistent()),
      info: ops.readSession((e) => ({
        generation: e.header.generation,
        numRecords: e.header.numRecords,
        repackSize: e.header.repackSize,
        currentSize: e.header.currentSize
      }))
    }
    return db
  })
