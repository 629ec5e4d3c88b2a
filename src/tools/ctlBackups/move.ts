/**
 * `ctl_backups move`: a backup copied to another partition under its lock, backups.db
 * pointed at the copy, then the original removed (a crash in between leaves two copies, never
 * none).
 */
import { randomInt } from "node:crypto"
import fs from "node:fs"
import nodePath from "node:path"
import { Effect } from "effect"
import { dirHash } from "../../partitions/index.js"
import { indexPathOf, lockDataFile } from "../../store/index.js"
import { IMAP_IOERROR, IMAP_MAILBOX_EXISTS, IMAP_PARTITION_UNKNOWN } from "../cFormat.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"
import { bytesPath, dbFailed, fail, io, keysFor, mapOpenError, sameOwner, type MaintenanceFailed } from "./maintenance.js"
import type { Run } from "./Run.js"

/** The status code of the move (0 or the Cyrus-style code of what failed) and, when moved, where to. */
export interface MoveResult {
  readonly code: number
  readonly movedTo: string | undefined
}

const NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/** Copies `from` over the new file `to` (same owner and mode) and syncs it. */
const copyFile = (from: string, to: string) =>
  io("copy", () => {
    fs.copyFileSync(bytesPath(from), bytesPath(to))
    sameOwner(from, to)
    const fd = fs.openSync(bytesPath(to), "r+")
    try {
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  })

const moveBackup = (run: Run, t: Target, partition: string): Effect.Effect<string, MaintenanceFailed> =>
  Effect.scoped(
    Effect.gen(function*() {
      const { config, db } = run
      const root = config.partitions.get(partition)
      if (root === undefined) return yield* fail(IMAP_PARTITION_UNKNOWN, `no partition ${partition}`)
      yield* mapOpenError(lockDataFile(t.dataPath, { wait: run.args.wait }))
      const keys = yield* keysFor(db, t)
      const base = nodePath.basename(t.dataPath)
      const owner = keys[0] ?? base.replace(/_[A-Za-z0-9]{6}$/, "")
      const dir = nodePath.join(root, dirHash(owner, config.fulldirhash))
      if (nodePath.resolve(nodePath.dirname(t.dataPath)) === nodePath.resolve(dir)) {
        return yield* fail(IMAP_MAILBOX_EXISTS, "already on that partition")
      }
      yield* io("mkdir", () => {
        if (!fs.existsSync(dir)) {
          fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
          sameOwner(nodePath.dirname(t.dataPath), dir)
        }
      })
      // a fresh unique name, created exclusively and locked like a new backup
      let target: string | undefined
      for (let i = 0; i < 100 && target === undefined; i++) {
        let suffix = ""
        for (let j = 0; j < 6; j++) suffix += NAME_CHARS[randomInt(NAME_CHARS.length)]
        const candidate = nodePath.join(dir, `${owner}_${suffix}`)
        const made = yield* Effect.either(lockDataFile(candidate, { create: true, exclusive: true }))
        if (made._tag === "Right") target = candidate
        else if (made.left._tag !== "BackupExists") return yield* fail(openErrorCode(made.left), made.left._tag)
      }
      if (target === undefined) return yield* fail(IMAP_IOERROR, "no unique file name")
      const to = target
      // best effort: the copy's own failure is the one reported
      const undo = Effect.ignore(
        io("unlink", () => {
          for (const p of [to, indexPathOf(to)]) fs.rmSync(bytesPath(p), { force: true })
        })
      )
      yield* Effect.gen(function*() {
        yield* copyFile(t.dataPath, to)
        if (fs.existsSync(bytesPath(indexPathOf(t.dataPath)))) yield* copyFile(indexPathOf(t.dataPath), indexPathOf(to))
        const sizes = yield* io("stat", () => [fs.statSync(bytesPath(to)).size, fs.statSync(bytesPath(t.dataPath)).size])
        if (sizes[0] !== sizes[1]) return yield* fail(IMAP_IOERROR, "copy is incomplete")
        for (const key of keys) yield* Effect.mapError(Effect.zipRight(db.remove(key), db.record(key, to)), dbFailed)
      }).pipe(Effect.tapError(() => undo))
      for (const p of [indexPathOf(t.dataPath), t.dataPath]) yield* io("unlink", () => fs.rmSync(bytesPath(p), { force: true }))
      return to
    })
  )

export const moveOne = (partition: string) => (run: Run, t: Target): Effect.Effect<MoveResult> =>
  moveBackup(run, t, partition).pipe(
    Effect.map((to) => ({ code: 0, movedTo: to })),
    Effect.catchAll((e) => Effect.succeed({ code: e.code, movedTo: undefined }))
  )
