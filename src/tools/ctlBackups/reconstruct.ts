/**
 * `ctl_backups reconstruct`: backups.db rebuilt from the data files found on the partitions
 * (for a userid with several, the most recently written), dropping entries whose data file
 * is gone.
 */
import fs from "node:fs"
import { Effect, Option } from "effect"
import type { CyrusConfig } from "../../config/index.js"
import type { BackupsDbService } from "../../store/index.js"
import { IMAP_IOERROR } from "../cFormat.js"
import type { Progress } from "../Progress.js"
import { bytesPath, io, type MaintenanceFailed } from "./maintenance.js"

/** A data file's name: `<userid>_XXXXXX` (anything else — .index, .new, timestamped copies — is not one). */
const DATA_NAME = /^(.+)_[A-Za-z0-9]{6}$/

export interface FoundBackup {
  readonly userid: string
  readonly dataPath: string
  readonly mtimeMs: number
}

/** What was done for one userid: `status` is the text of its status line. */
export interface ReconstructEntry {
  readonly userid: string
  readonly dataPath: string
  readonly status: string
}

export interface ReconstructResult {
  /** In the order they were done (removed entries first, then the found backups by userid). */
  readonly entries: ReadonlyArray<ReconstructEntry>
  /** Older data files of a userid that has a newer one. */
  readonly ignored: ReadonlyArray<FoundBackup>
  /** 0, or non-zero when something could not be recorded. */
  readonly code: number
}

const scanPartition = (root: string): Array<FoundBackup> => {
  const found: Array<FoundBackup> = []
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

/** `verbose`: also report the userids whose entry was right already ("ok"). */
export const reconstructBackupsDb = (
  db: BackupsDbService,
  config: CyrusConfig,
  verbose: number,
  progress?: Progress
): Effect.Effect<ReconstructResult, MaintenanceFailed> =>
  Effect.gen(function*() {
    const best = new Map<string, FoundBackup>()
    const ignored: Array<FoundBackup> = []
    for (const root of config.partitions.values()) {
      for (const f of yield* io("scan", () => scanPartition(root))) {
        const seen = best.get(f.userid)
        if (seen === undefined || f.mtimeMs > seen.mtimeMs) {
          if (seen !== undefined) ignored.push(seen)
          best.set(f.userid, f)
        } else ignored.push(f)
      }
    }
    const entries: Array<ReconstructEntry> = []
    const status = (userid: string, dataPath: string, text: string) => void entries.push({ userid, dataPath, status: text })
    let code = 0
    const existing = yield* Effect.orElseSucceed(db.list, () => [])
    for (const e of existing) {
      if (!best.has(e.userid) && !fs.existsSync(bytesPath(e.dataPath))) {
        const removed = yield* Effect.either(db.remove(e.userid))
        if (removed._tag === "Left") code = IMAP_IOERROR
        status(e.userid, e.dataPath, removed._tag === "Left" ? "failed (System I/O error)" : "removed (data file missing)")
      }
    }
    const found = [...best.values()].sort((a, b) => (a.userid < b.userid ? -1 : 1))
    for (const [i, f] of found.entries()) {
      progress?.step(i, found.length, f.userid)
      const current = yield* Effect.orElseSucceed(db.lookup(f.userid), () => Option.none())
      if (Option.isSome(current) && current.value.dataPath === f.dataPath) {
        if (verbose > 0) status(f.userid, f.dataPath, "ok")
        continue
      }
      const done = yield* Effect.either(
        Effect.zipRight(Option.isSome(current) ? db.remove(f.userid) : Effect.void, db.record(f.userid, f.dataPath))
      )
      if (done._tag === "Left") code = IMAP_IOERROR
      status(f.userid, f.dataPath, done._tag === "Left" ? "failed (System I/O error)" : Option.isSome(current) ? "updated" : "added")
    }
    return { entries, ignored, code }
  })
