/**
 * backups.db: the shared map userid → backup data file path (Cyrus 3.6 `backup_get_paths`).
 * Keys are userid bytes (`%SHARED` for shared mailboxes), values the data file path bytes;
 * both are byte strings here (latin1, one char per byte). The index is `<data file>.index`.
 *
 * Like Cyrus, every operation opens the database (creating it if needed), works inside one
 * lock and closes it again: the lock is never held while a backup is in use.
 */
import * as fsp from "node:fs/promises"
import { Context, Data, Effect, Layer, Option } from "effect"
import { Config } from "../../config/Config.js"
import type { PartitionError } from "../../partitions/errors.js"
import { Partitions } from "../../partitions/Partitions.js"
import * as Twoskip from "../twoskip/index.js"

/** backup_db names a Cyrus backend other than twoskip. */
export class UnsupportedBackend extends Data.TaggedError("UnsupportedBackend")<{
  readonly backend: string
}> {
  override get message(): string {
    return `backup_db: ${this.backend} is not supported (only twoskip is implemented)`
  }
}

/** A mapping exists but its path is empty (Cyrus treats this as an internal error). */
export class EmptyBackupPath extends Data.TaggedError("EmptyBackupPath")<{
  readonly userid: string
}> {
  override get message(): string {
    return `backups.db maps ${this.userid} to an empty path`
  }
}

/** `record` of a userid that already has a backup. */
export class BackupMappingExists extends Data.TaggedError("BackupMappingExists")<{
  readonly userid: string
}> {
  override get message(): string {
    return `backups.db already has a backup of ${this.userid}`
  }
}

export type BackupsDbError = Twoskip.TwoskipError | EmptyBackupPath | BackupMappingExists

export interface BackupLocation {
  readonly userid: string
  /** Data file path (byte string). */
  readonly dataPath: string
  /** `<dataPath>.index`. */
  readonly indexPath: string
}

export interface LocateResult extends BackupLocation {
  /** True when this call created the data file and the mapping. */
  readonly created: boolean
}

export interface BackupsDbService {
  /** The database file. */
  readonly path: string
  /** Where `userid`'s backup lives, if it has one. */
  readonly lookup: (userid: string) => Effect.Effect<Option.Option<BackupLocation>, BackupsDbError>
  /** Every mapping, in key (byte) order. */
  readonly list: Effect.Effect<ReadonlyArray<BackupLocation>, BackupsDbError>
  /** Records a mapping for a userid that has none. */
  readonly record: (userid: string, dataPath: string) => Effect.Effect<BackupLocation, BackupsDbError>
  /** Removes a mapping (not the files); false when there was none. */
  readonly remove: (userid: string) => Effect.Effect<boolean, BackupsDbError>
  /**
   * The backup of `userid`, creating it when absent: a new data file on a partition chosen by
   * `Partitions`, recorded in the same write transaction as the lookup; the file is unlinked
   * again when recording fails.
   */
  readonly locateOrCreate: (userid: string) => Effect.Effect<LocateResult, BackupsDbError | PartitionError>
}

export interface BackupsDbOptions {
  /** backup_db_path, or `<configdirectory>/backups.db`. */
  readonly path: string
  /** backup_db (default twoskip). */
  readonly backend?: string
  /** Passed to the twoskip layer (tests: deterministic levels, no fsync). */
  readonly twoskip?: Omit<Twoskip.TwoskipOptions, "create">
}

const bytes = (s: string) => Buffer.from(s, "latin1")
const text = (b: Buffer) => b.toString("latin1")

const location = (userid: string, dataPath: string): BackupLocation => ({
  userid,
  dataPath,
  indexPath: `${dataPath}.index`
})

const make = (options: BackupsDbOptions) =>
  Effect.gen(function* () {
    const backend = options.backend ?? "twoskip"
    if (backend !== "twoskip") return yield* Effect.fail(new UnsupportedBackend({ backend }))
    const partitions = yield* Partitions
    const path = options.path
    const withDb = <A, E>(f: (db: Twoskip.TwoskipDb) => Effect.Effect<A, E>) =>
      Effect.scoped(Effect.flatMap(Twoskip.open(path, { ...options.twoskip, create: true }), f))

    const found = (userid: string, value: Buffer): Effect.Effect<BackupLocation, EmptyBackupPath> =>
      value.length === 0 ? Effect.fail(new EmptyBackupPath({ userid })) : Effect.succeed(location(userid, text(value)))

    const lookup = (userid: string) =>
      withDb((db) =>
        db.fetch(bytes(userid)).pipe(
          Effect.flatMap(
            Option.match({
              onNone: () => Effect.succeed(Option.none<BackupLocation>()),
              onSome: (value) => Effect.map(found(userid, value), Option.some)
            })
          )
        )
      )

    const list = withDb((db) => db.foreach()).pipe(
      Effect.map((entries) => entries.map((e) => location(text(e.key), text(e.value))))
    )

    const record = (userid: string, dataPath: string) =>
      withDb((db) => db.create(bytes(userid), bytes(dataPath))).pipe(
        Effect.catchTag("TwoskipKeyExists", () => Effect.fail(new BackupMappingExists({ userid }))),
        Effect.as(location(userid, dataPath))
      )

    const remove = (userid: string) => withDb((db) => db.delete(bytes(userid)))

    const locateOrCreate = (userid: string): Effect.Effect<LocateResult, BackupsDbError | PartitionError> =>
      Effect.gen(function* () {
        let createdFile: string | undefined
        const outcome = yield* withDb((db) =>
          db.transaction((txn) =>
            Effect.gen(function* () {
              const existing = yield* txn.fetch(bytes(userid))
              if (Option.isSome(existing)) {
                const loc = yield* found(userid, existing.value)
                return { ...loc, created: false }
              }
              createdFile = yield* partitions.createDataFile(userid)
              yield* txn.create(bytes(userid), bytes(createdFile))
              return { ...location(userid, createdFile), created: true }
            })
          )
        ).pipe(Effect.either)
        if (outcome._tag === "Left") {
          // the mapping was not committed: the new file would never be used
          const orphan = createdFile
          if (orphan !== undefined) yield* Effect.promise(() => fsp.unlink(bytes(orphan)).catch(() => undefined))
          return yield* Effect.fail(outcome.left)
        }
        return outcome.right
      })

    const service: BackupsDbService = { path, lookup, list, record, remove, locateOrCreate }
    return service
  })

export class BackupsDb extends Context.Tag("BackupsDb")<BackupsDb, BackupsDbService>() {
  /** From an explicit path and backend name; needs `Partitions` for `locateOrCreate`. */
  static readonly layer = (options: BackupsDbOptions) => Layer.effect(BackupsDb, make(options))

  /** From the effective imapd.conf (backup_db, backup_db_path / configdirectory). */
  static readonly layerFromConfig = Layer.effect(
    BackupsDb,
    Effect.flatMap(Config, (config) => make({ path: config.backupDbPath, backend: config.backupDb }))
  )
}
