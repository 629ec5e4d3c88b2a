/**
 * The backup partitions (`backuppartition-<name>` options) and the creation of a new,
 * uniquely named backup data file on one of them, as Cyrus 3.6 backupd does it:
 * `<partition>/<dirhash>/<userid>_XXXXXX`, created exclusively with mode 0600, write-locked
 * once (proving nobody else holds it) and closed.
 */
import { randomInt } from "node:crypto"
import { constants as fsConstants } from "node:fs"
import * as fsp from "node:fs/promises"
import * as nodePath from "node:path"
import { Context, Effect, Layer } from "effect"
import { Config } from "../config/Config.js"
import { fcntlLock } from "../util/fcntlLock.js"
import { dirHash } from "./dirHash.js"
import { NoPartitionAvailable, NoPartitionConfigured, type PartitionError, PartitionNotWritable } from "./errors.js"
import {
  parseExcluded,
  PartitionSelector,
  type SelectMode,
  type SpaceFigures
} from "./selection.js"

export interface PartitionsOptions {
  /** partition_select_mode (default freespace-most). */
  readonly mode?: SelectMode
  /** partition_select_exclude: names to leave out. */
  readonly exclude?: ReadonlyArray<string> | string
  /** partition_select_soft_usage_limit (percent, default 0 = off). */
  readonly softUsageLimit?: number
  /** partition_select_usage_reinit (default 0 = measure once). */
  readonly usageReinit?: number
  /** fulldirhash (default false). */
  readonly fulldirhash?: boolean
  /** Random source for selection modes that draw (default Math.random). */
  readonly random?: () => number
  /** How to measure a partition (default: statfs + stat of the path). Tests inject figures. */
  readonly measure?: (path: string) => Effect.Effect<SpaceFigures | undefined>
}

export interface PartitionsService {
  /** name → path, in configuration order, exclusions applied. */
  readonly partitions: ReadonlyMap<string, string>
  /** The partition path a new backup would go to now. */
  readonly select: Effect.Effect<string, NoPartitionConfigured | NoPartitionAvailable>
  /** The hashed subdirectory letter for `userid`. */
  readonly hashDir: (userid: string) => string
  /**
   * Creates a new empty data file for `userid` (a byte string) and returns its path as a byte
   * string (latin1; open it with `Buffer.from(path, "latin1")`). The caller records it in
   * backups.db and must unlink it if that fails.
   */
  readonly createDataFile: (userid: string) => Effect.Effect<string, PartitionError>
}

const NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const MAX_NAME_TRIES = 100

const errnoOf = (e: unknown): string => (e as NodeJS.ErrnoException | undefined)?.code ?? String(e)

/** statvfs figures in KiB and the device as file-system id; creates a missing partition directory. */
export const measurePartition = (path: string): Effect.Effect<SpaceFigures | undefined> =>
  Effect.promise(async () => {
    const figures = async (): Promise<SpaceFigures | undefined> => {
      const [fs, st] = await Promise.all([fsp.statfs(path), fsp.stat(path)])
      if (fs.blocks <= 0) return undefined
      return {
        fsId: st.dev,
        availableKiB: Math.floor(fs.bavail * (fs.bsize / 1024)),
        totalKiB: Math.floor(fs.blocks * (fs.bsize / 1024))
      }
    }
    try {
      return await figures()
    } catch (e) {
      if (errnoOf(e) !== "ENOENT") return undefined
      try {
        await fsp.mkdir(path, { recursive: true, mode: 0o755 })
        return await figures()
      } catch {
        return undefined
      }
    }
  })

const makeService = (
  configured: ReadonlyMap<string, string>,
  options: PartitionsOptions
): Effect.Effect<PartitionsService> =>
  Effect.gen(function* () {
    const excluded = new Set(typeof options.exclude === "string" ? parseExcluded(options.exclude) : (options.exclude ?? []))
    const partitions = new Map([...configured].filter(([name]) => name.length > 0 && !excluded.has(name)))
    const measure = options.measure ?? measurePartition
    const mode = options.mode ?? "freespace-most"
    const fulldirhash = options.fulldirhash ?? false
    const figures = new Map<string, SpaceFigures | undefined>()
    const selector = new PartitionSelector(
      [...partitions],
      { mode, softUsageLimit: options.softUsageLimit ?? 0, usageReinit: options.usageReinit ?? 0 },
      (path) => figures.get(path),
      options.random ?? Math.random
    )
    const gate = yield* Effect.makeSemaphore(1)

    const select = gate.withPermits(1)(
      Effect.gen(function* () {
        if (partitions.size === 0) return yield* Effect.fail(new NoPartitionConfigured())
        // measure up front (statfs is asynchronous); the selector uses the figures only when
        // it (re)computes its quotas, as Cyrus does
        if (mode !== "random") {
          for (const path of partitions.values()) figures.set(path, yield* measure(path))
        }
        const chosen = selector.select()
        if (chosen === undefined) {
          return yield* Effect.fail(new NoPartitionAvailable({ reason: "couldn't select partition" }))
        }
        return chosen.path
      })
    )

    const hashDir = (userid: string) => dirHash(userid, fulldirhash)

    const createDataFile = (userid: string): Effect.Effect<string, PartitionError> =>
      Effect.gen(function* () {
        if (userid.includes("/") || userid.includes("\x00")) {
          return yield* Effect.fail(
            new PartitionNotWritable({ path: userid, operation: "name", reason: "userid unusable in a file name" })
          )
        }
        const partition = yield* select
        const dir = nodePath.join(partition, hashDir(userid))
        yield* Effect.tryPromise({
          try: () => fsp.mkdir(dir, { recursive: true, mode: 0o755 }),
          catch: (e) => new PartitionNotWritable({ path: dir, operation: "mkdir", reason: errnoOf(e) })
        })
        for (let attempt = 0; attempt < MAX_NAME_TRIES; attempt++) {
          let suffix = ""
          for (let i = 0; i < 6; i++) suffix += NAME_CHARS[randomInt(NAME_CHARS.length)]
          // the userid is a byte string: keep its bytes exactly in the file name
          const file = Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(`${userid}_${suffix}`, "latin1")])
          const opened = yield* Effect.tryPromise({
            try: () => fsp.open(file, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600),
            catch: (e) => e
          }).pipe(
            Effect.map((fh) => ({ fh })),
            Effect.catchAll((e) =>
              errnoOf(e) === "EEXIST"
                ? Effect.succeed(undefined)
                : Effect.fail(new PartitionNotWritable({ path: file.toString("latin1"), operation: "create", reason: errnoOf(e) }))
            )
          )
          if (opened === undefined) continue
          const locked = yield* fcntlLock(opened.fh.fd, "write", true).pipe(
            Effect.mapError(
              (e) => new PartitionNotWritable({ path: file.toString("latin1"), operation: "lock", reason: e._tag })
            ),
            Effect.either
          )
          yield* Effect.promise(() => opened.fh.close())
          if (locked._tag === "Left") return yield* Effect.fail(locked.left)
          return file.toString("latin1")
        }
        return yield* Effect.fail(new PartitionNotWritable({ path: dir, operation: "create", reason: "no unique name found" }))
      })

    return { partitions, select, hashDir, createDataFile }
  })

export class Partitions extends Context.Tag("Partitions")<Partitions, PartitionsService>() {
  /** From a plain name → path map (the `backuppartition-<name>` options) plus selection options. */
  static readonly layer = (partitions: ReadonlyMap<string, string>, options: PartitionsOptions = {}) =>
    Layer.effect(Partitions, makeService(partitions, options))

  /** From the effective imapd.conf. */
  static readonly layerFromConfig = (overrides: Pick<PartitionsOptions, "random" | "measure"> = {}) =>
    Layer.effect(
      Partitions,
      Effect.flatMap(Config, (config) =>
        makeService(config.partitions, {
          mode: config.partitionSelectMode,
          exclude: config.partitionSelectExcluded,
          softUsageLimit: config.partitionSelectSoftUsageLimit,
          usageReinit: config.partitionSelectUsageReinit,
          fulldirhash: config.fulldirhash,
          ...overrides
        })
      )
    )
}
