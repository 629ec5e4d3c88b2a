/**
 * The ctl_backups commands Cyrus 3.6.1 leaves unimplemented:
 * - delete: remove a backup's files (under its lock) and its backups.db entry;
 * - move: copy a backup to another partition under its lock, point backups.db at the copy,
 *   then remove the original (a crash in between leaves two copies, never none);
 * - reconstruct: rebuild backups.db from the data files found on the partitions.
 */
import { randomInt } from "node:crypto"
import fs from "node:fs"
import nodePath from "node:path"
import { Data, Effect, Option } from "effect"
import type { CyrusConfig } from "../config/index.js"
import { dirHash } from "../partitions/index.js"
import { indexPathOf, lockDataFile, type BackupsDbService } from "../store/index.js"
import { IMAP_IOERROR, IMAP_MAILBOX_EXISTS, IMAP_PARTITION_UNKNOWN } from "./cFormat.js"
import { JObject, jsonDump, jstring } from "./jansson.js"
import { openErrorCode } from "./openErrors.js"
import type { Target } from "./targets.js"
import type { Printer } from "./ToolIo.js"

/** A maintenance step failed; `code` is the Cyrus-style code for the status line. */
export class MaintenanceFailed extends Data.TaggedError("MaintenanceFailed")<{
  readonly code: number
  readonly message: string
}> {}

const fail = (code: number, message: string) => Effect.fail(new MaintenanceFailed({ code, message }))

const io = <A>(what: string, f: () => A) =>
  Effect.try({ try: f, catch: (e) => new MaintenanceFailed({ code: IMAP_IOERROR, message: `${what}: ${(e as Error).message}` }) })

const bytesPath = (p: string) => Buffer.from(p, "latin1")

/** backups.db keys whose value is this data file. */
const keysFor = (db: BackupsDbService, t: Target) =>
  Effect.map(Effect.orElseSucceed(db.list, () => []), (entries) => {
    const keys = entries.filter((e) => e.dataPath === t.dataPath).map((e) => e.userid)
    return t.userid !== undefined && !keys.includes(t.userid) ? [...keys, t.userid] : keys
  })

const mapOpenError = <A, E extends Parameters<typeof openErrorCode>[0], R>(eff: Effect.Effect<A, E, R>) =>
  Effect.mapError(eff, (e) => new MaintenanceFailed({ code: openErrorCode(e), message: e._tag }))

export const deleteBackup = (db: BackupsDbService, t: Target, opts: { readonly wait: boolean }) =>
  Effect.scoped(
    Effect.gen(function*() {
      yield* mapOpenError(lockDataFile(t.dataPath, { wait: opts.wait }))
      // while locked: no writer can be between its index and its data
      for (const p of [indexPathOf(t.dataPath), `${indexPathOf(t.dataPath)}-journal`]) {
        yield* io("unlink", () => fs.rmSync(bytesPath(p), { force: true }))
      }
      yield* io("unlink", () => fs.unlinkSync(bytesPath(t.dataPath)))
      for (const key of yield* keysFor(db, t)) {
        yield* Effect.mapError(db.remove(key), (e) => new MaintenanceFailed({ code: IMAP_IOERROR, message: e._tag }))
      }
    })
  )

const NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/** Gives `to` the owner and mode of `like` (root running a tool must not leave root-owned backups). */
const sameOwner = (like: string, to: string) => {
  const st = fs.statSync(bytesPath(like))
  if (process.getuid?.() === 0) fs.chownSync(bytesPath(to), st.uid, st.gid)
  fs.chmodSync(bytesPath(to), st.mode & 0o7777)
}

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

export const moveBackup = (
  db: BackupsDbService,
  config: CyrusConfig,
  t: Target,
  partition: string,
  opts: { readonly wait: boolean }
): Effect.Effect<string, MaintenanceFailed> =>
  Effect.scoped(
    Effect.gen(function*() {
      const root = config.partitions.get(partition)
      if (root === undefined) return yield* fail(IMAP_PARTITION_UNKNOWN, `no partition ${partition}`)
      yield* mapOpenError(lockDataFile(t.dataPath, { wait: opts.wait }))
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
      const undo = Effect.sync(() => {
        for (const p of [to, indexPathOf(to)]) fs.rmSync(bytesPath(p), { force: true })
      })
      yield* Effect.gen(function*() {
        yield* copyFile(t.dataPath, to)
        if (fs.existsSync(bytesPath(indexPathOf(t.dataPath)))) yield* copyFile(indexPathOf(t.dataPath), indexPathOf(to))
        if (fs.statSync(bytesPath(to)).size !== fs.statSync(bytesPath(t.dataPath)).size) {
          return yield* fail(IMAP_IOERROR, "copy is incomplete")
        }
        for (const key of keys) {
          yield* Effect.mapError(
            Effect.zipRight(db.remove(key), db.record(key, to)),
            (e) => new MaintenanceFailed({ code: IMAP_IOERROR, message: e._tag })
          )
        }
      }).pipe(Effect.tapError(() => undo))
      for (const p of [indexPathOf(t.dataPath), t.dataPath]) yield* io("unlink", () => fs.rmSync(bytesPath(p), { force: true }))
      return to
    })
  )

/** A data file's name: `<userid>_XXXXXX` (anything else — .index, .new, timestamped copies — is not one). */
const DATA_NAME = /^(.+)_[A-Za-z0-9]{6}$/

interface Found {
  readonly userid: string
  readonly dataPath: string
  readonly mtimeMs: number
}

const scanPartition = (root: string): Array<Found> => {
  const found: Array<Found> = []
  const walk = (dir: Buffer, depth: number) => {
    let entries: Array<fs.Dirent<Buffer>>
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true, encoding: "buffer" })
    } catch {
      return
    }
    for (const e of entries) {
      const full = Buffer.concat([dir, Buffer.from("/"), e.name])
      if (e.isDirectory() && depth < 3) walk(full, depth + 1)
      else if (e.isFile()) {
        const m = DATA_NAME.exec(e.name.toString("latin1"))
        if (m !== null) found.push({ userid: m[1]!, dataPath: full.toString("latin1"), mtimeMs: fs.statSync(full).mtimeMs })
      }
    }
  }
  walk(Buffer.from(root, "latin1"), 0)
  return found
}

export interface ReconstructOptions {
  readonly json: boolean
  readonly verbose: number
  readonly printer: Printer
}

/**
 * Points backups.db at the data files found on the partitions (for a userid with several,
 * the most recently written), and drops entries whose data file is gone. Returns 0, or
 * non-zero when something could not be recorded.
 */
export const reconstructBackupsDb = (db: BackupsDbService, config: CyrusConfig, opts: ReconstructOptions) =>
  Effect.gen(function*() {
    const best = new Map<string, Found>()
    const extra: Array<Found> = []
    for (const root of config.partitions.values()) {
      for (const f of scanPartition(root)) {
        const seen = best.get(f.userid)
        if (seen === undefined || f.mtimeMs > seen.mtimeMs) {
          if (seen !== undefined) extra.push(seen)
          best.set(f.userid, f)
        } else extra.push(f)
      }
    }
    const status = (userid: string, dataPath: string, text: string) =>
      opts.json
        ? opts.printer.outUtf8(
            jsonDump(new JObject().set("command", "reconstruct").set("userid", jstring(userid)).set("fname", jstring(dataPath)).set("status", text)) + "\n"
          )
        : opts.printer.out(`reconstruct ${userid}: ${text}\n`)
    let r = 0
    const existing = yield* Effect.orElseSucceed(db.list, () => [])
    for (const e of existing) {
      if (!best.has(e.userid) && !fs.existsSync(bytesPath(e.dataPath))) {
        const removed = yield* Effect.either(db.remove(e.userid))
        if (removed._tag === "Left") r = IMAP_IOERROR
        yield* status(e.userid, e.dataPath, removed._tag === "Left" ? "failed (System I/O error)" : "removed (data file missing)")
      }
    }
    for (const f of [...best.values()].sort((a, b) => (a.userid < b.userid ? -1 : 1))) {
      const current = yield* Effect.orElseSucceed(db.lookup(f.userid), () => Option.none())
      if (Option.isSome(current) && current.value.dataPath === f.dataPath) {
        if (opts.verbose > 0) yield* status(f.userid, f.dataPath, "ok")
        continue
      }
      const done = yield* Effect.either(
        Effect.zipRight(Option.isSome(current) ? db.remove(f.userid) : Effect.void, db.record(f.userid, f.dataPath))
      )
      if (done._tag === "Left") r = IMAP_IOERROR
      yield* status(f.userid, f.dataPath, done._tag === "Left" ? "failed (System I/O error)" : Option.isSome(current) ? "updated" : "added")
    }
    for (const f of extra) yield* opts.printer.err(`reconstruct: ignoring older backup ${f.dataPath} of ${f.userid}\n`)
    return r
  })
