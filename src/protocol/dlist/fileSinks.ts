/**
 * Where the bytes of `%{partition guid size}` file literals go while the dlist parser reads
 * them: the parser's state machine knows nothing of files; it asks a FileSink. Three sinks
 * exist: `discardSink` keeps nothing (verify needs offsets and hashes, not files),
 * `skipSink` does not even hash (reindex needs only offsets and sizes) and `stagingSink`
 * writes each literal to `<stagingDir>/sync./<pid>/<guid>`, as backupd stages uploads and
 * compaction stages the messages it writes again.
 *
 * A sink's file is written synchronously, one `write(2)` per piece of input the reader holds,
 * inside the parser's byte loop: the parser waits for each write before it reads on anyway, so
 * a thread-pool round trip and an Effect step per piece bought no overlap, only cost (a staged
 * file is scratch space in the page cache; nothing is synced). The staging directory is made
 * once, not per file.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"

/** What to do with the bytes of file literals, as a parse option. */
export type FileHandling =
  /** Write them to `<stagingDir>/sync./<pid>/<guid>` (as backupd stages uploads). */
  | { readonly _tag: "Stage"; readonly stagingDir: string; readonly pid?: number }
  /** Only hash and count them (verify needs offsets and hashes, not files). */
  | { readonly _tag: "Discard" }
  /** Only count them: the file value's `sha1` is "" (reindex needs offsets, not hashes). */
  | { readonly _tag: "Skip" }

/** An open file of a sink: written piece by piece, synchronously; closed once. */
export interface FileWriter {
  /** Writes all of `chunk` (throws on failure). */
  readonly write: (chunk: Uint8Array) => void
  /** Closes the file (never throws). */
  readonly close: () => void
}

export interface FileSink {
  /** The file a literal with this GUID is written to; "" when its bytes are only hashed. */
  readonly pathOf: (guid: string) => string
  /**
   * Makes `path` ready (its directory made, an older file there replaced) and opens it
   * (throws on failure). A failure here or in a write is reported by the parser once the
   * literal has been read to its end, so that the stream stays in step.
   */
  readonly open: (path: string) => FileWriter
  /** Removes a file of a parse that failed (nothing of it is kept). */
  readonly remove: (path: string) => Effect.Effect<void, never, FileSystem.FileSystem>
  /** false: a literal that goes to no file is not hashed either (its `sha1` is ""). */
  readonly hashes?: boolean
}

/** Where a message with this GUID is staged: `<stagingDir>/sync./<pid>/<guid-hex>`. */
export const stagingPath = (stagingDir: string, guidHex: string, pid: number = process.pid): string =>
  path.join(stagingDir, "sync.", String(pid), guidHex.toLowerCase())

const removeFile = (p: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.ignore(fs.remove(p)))

const NO_FILE: FileWriter = { write: () => {}, close: () => {} }

/** Keeps nothing: every literal is only hashed. */
export const discardSink: FileSink = {
  pathOf: () => "",
  open: () => NO_FILE,
  remove: removeFile
}

/** Keeps nothing and hashes nothing: only the literals' offsets and sizes are known. */
export const skipSink: FileSink = { ...discardSink, hashes: false }

/** A new file at `target`: one that was there is replaced (unlinked, not written through). */
const CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL

/**
 * Staging directories made (or found) in this process. One that went away since (a session's
 * directory is removed when it ends) is made again when a file cannot be created in it.
 */
const made = new Set<string>()

const isCode = (e: unknown, code: string) => (e as NodeJS.ErrnoException | undefined)?.code === code

/** Stages every literal to `stagingPath(stagingDir, guid, pid)`. */
export const stagingSink = (stagingDir: string, pid?: number): FileSink => {
  const create = (target: string): number => {
    const dir = path.dirname(target)
    if (!made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
      made.add(dir)
    }
    try {
      return fs.openSync(target, CREATE, 0o666)
    } catch (e) {
      if (isCode(e, "EEXIST")) {
        fs.unlinkSync(target)
      } else if (isCode(e, "ENOENT")) {
        // the directory went away under us: make it again
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
      } else {
        throw e
      }
      return fs.openSync(target, CREATE, 0o666)
    }
  }
  return {
    pathOf: (guid) => stagingPath(stagingDir, guid, pid),
    open: (target) => {
      const fd = create(target)
      // No fsync (Cyrus does one per staged file): a staged file is scratch space. Whoever
      // stores it reads it back and checks size and SHA-1, and the durable copy is the
      // data file, which is synced before an APPLY is acknowledged.
      return {
        write: (chunk) => {
          for (let off = 0; off < chunk.byteLength; ) off += fs.writeSync(fd, chunk, off, chunk.byteLength - off)
        },
        close: () => {
          try {
            fs.closeSync(fd)
          } catch {
            // nothing was promised about a staged file before the parse ends
          }
        }
      }
    },
    remove: removeFile
  }
}

/** The sink a parse option names. */
export const fileSinkOf = (files: FileHandling | FileSink): FileSink =>
  !("_tag" in files) ? files : files._tag === "Discard" ? discardSink : files._tag === "Skip" ? skipSink : stagingSink(files.stagingDir, files.pid)
