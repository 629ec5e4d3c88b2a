/**
 * The live UserBackups: backups.db (twoskip) says where a key's backup is, Partitions place a
 * new one, and `openForAppend` locks and opens it.
 *
 * The writer (and with it SQLite, the index code and hash-wasm) is loaded by the first open, not
 * at start-up: a session that only asks about users without backups never needs it.
 */
import { Effect, Layer, Option } from "effect"
import { Config, type CyrusConfig } from "../../config/index.js"
import { Partitions } from "../../partitions/index.js"
import type { OpenForAppendOptions } from "../write/BackupWriter.js"
import { BackupsDb, type BackupsDbService } from "./BackupsDb.js"
import { BackupLocateError, UserBackups, type UserBackupsShape } from "./UserBackups.js"

const locateError = (key: string) => (e: { readonly _tag: string; readonly message?: string }) =>
  new BackupLocateError({ key, message: `${e._tag}${e.message ? `: ${e.message}` : ""}` })

/** What every writer opened here records beyond the Cyrus formats (BackupWriter's options). */
export interface WriterExtras {
  readonly memberDigests?: OpenForAppendOptions["memberDigests"]
}

export const makeUserBackups = (db: BackupsDbService, extras: WriterExtras = {}): UserBackupsShape => ({
  open: (key, { create }) =>
    Effect.gen(function* () {
      const location = create
        ? Option.some(yield* db.locateOrCreate(key).pipe(Effect.mapError(locateError(key))))
        : yield* db.lookup(key).pipe(Effect.mapError(locateError(key)))
      if (Option.isNone(location)) return Option.none()
      const { openForAppend } = yield* Effect.promise(() => import("../write/BackupWriter.js"))
      return Option.some(yield* openForAppend(location.value.dataPath, { create: true, memberDigests: extras.memberDigests }))
    })
})

/** From the effective imapd.conf (needs Config); `extras` picks the writers' extras from it. */
export const userBackupsLayer = (extras: (config: CyrusConfig) => WriterExtras = () => ({})) =>
  Layer.effect(UserBackups, Effect.gen(function* () {
    const db = yield* BackupsDb
    return makeUserBackups(db, extras(yield* Config))
  })).pipe(
  Layer.provide(BackupsDb.layerFromConfig),
  Layer.provide(Partitions.layerFromConfig())
)
