/**
 * The last step of compaction: putting the new data file and index in place of the originals
 * while the original's lock is still held, so that no reader or writer ever sees one without
 * the other. Each step is a typed failure (BackupIoError); a failed swap leaves the originals
 * under their names.
 */
import fs from "node:fs"
import { Effect } from "effect"
import { ioError, type BackupIoError } from "../errors.js"

/** The files of a compaction: the original pair, and the new pair built beside it. */
export interface SwapFiles {
  readonly dataPath: string
  readonly indexPath: string
  /** The new data file (`<data>.new`). */
  readonly newPath: string
  /** The name the new index is given before the swap (`<data>.index.new`). */
  readonly newIndex: string
  /** Where the new index was built (the append path keeps an index beside its data file). */
  readonly buildIndex: string
}

/** Gives `to` the owner (when we are root) and mode of `like`. */
const sameOwner = (like: string, to: string) => {
  const st = fs.statSync(like)
  if (process.getuid?.() === 0) fs.chownSync(to, st.uid, st.gid)
  fs.chmodSync(to, st.mode & 0o7777)
}

const fsyncPath = (p: string) => {
  const fd = fs.openSync(p, "r+")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Swaps the compacted files in: the built index is named `newIndex`, both new files get the
 * originals' owner and mode and the new data file is synced; the originals are hard-linked to
 * `<name>.<now>`; then the new files are renamed over the originals (if that fails, the
 * originals are linked back). The `<name>.<now>` links are removed unless `keepPrevious`.
 */
export const swapFiles = (f: SwapFiles, now: number, keepPrevious: boolean): Effect.Effect<void, BackupIoError> =>
  Effect.gen(function*() {
    const tsData = `${f.dataPath}.${now}`
    const tsIndex = `${f.indexPath}.${now}`
    yield* Effect.try({
      try: () => {
        fs.rmSync(`${f.buildIndex}-journal`, { force: true })
        fs.renameSync(f.buildIndex, f.newIndex)
        sameOwner(f.dataPath, f.newPath)
        sameOwner(f.indexPath, f.newIndex)
        fsyncPath(f.newPath)
      },
      catch: ioError(f.newPath, "sync")
    })
    yield* Effect.try({
      try: () => {
        try {
          fs.linkSync(f.dataPath, tsData)
          fs.linkSync(f.indexPath, tsIndex)
        } catch (e) {
          fs.rmSync(tsData, { force: true })
          fs.rmSync(tsIndex, { force: true })
          throw e
        }
      },
      catch: ioError(tsData, "link")
    })
    yield* Effect.try({
      try: () => {
        try {
          fs.renameSync(f.newPath, f.dataPath)
          fs.renameSync(f.newIndex, f.indexPath)
        } catch (e) {
          // put the originals back under their names
          fs.rmSync(f.dataPath, { force: true })
          fs.rmSync(f.indexPath, { force: true })
          fs.linkSync(tsData, f.dataPath)
          fs.linkSync(tsIndex, f.indexPath)
          throw e
        }
      },
      catch: ioError(f.dataPath, "rename")
    })
    if (!keepPrevious) {
      yield* Effect.try({
        try: () => {
          fs.rmSync(tsData, { force: true })
          fs.rmSync(tsIndex, { force: true })
        },
        catch: ioError(tsData, "unlink")
      })
    }
  })
