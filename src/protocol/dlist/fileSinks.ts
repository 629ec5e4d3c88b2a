/**
 * Where the bytes of `%{partition guid size}` file literals go while the dlist parser reads
 * them: the parser's state machine knows nothing of files; it asks a FileSink. Three sinks
 * exist: `discardSink` keeps nothing (verify needs offsets and hashes, not files),
 * `skipSink` does not even hash (reindex needs only offsets and sizes) and `stagingSink`
 * writes each literal to `<stagingDir>/sync./<pid>/<guid>`, as backupd stages uploads and
 * compaction stages the messages it writes again.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as path from "node:path"
import { Effect, type Scope } from "effect"

/** What to do with the bytes of file literals, as a parse option. */
export type FileHandling =
  /** Write them to `<stagingDir>/sync./<pid>/<guid>` (as backupd stages uploads). */
  | { readonly _tag: "Stage"; readonly stagingDir: string; readonly pid?: number }
  /** Only hash and count them (verify needs offsets and hashes, not files). */
  | { readonly _tag: "Discard" }
  /** Only count them: the file value's `sha1` is "" (reindex needs offsets, not hashes). */
  | { readonly _tag: "Skip" }

/** Writes one chunk of a literal's bytes to where the sink opened. */
export type FileWrite = (chunk: Uint8Array) => Effect.Effect<void, unknown>

export interface FileSink {
  /** The file a literal with this GUID is written to; "" when its bytes are only hashed. */
  readonly pathOf: (guid: string) => string
  /**
   * Makes `path` ready (its directory made, an older file there removed) and opens it for the
   * scope. A failure here or in a write is reported by the parser once the literal has been
   * read to its end, so that the stream stays in step.
   */
  readonly open: (path: string) => Effect.Effect<FileWrite, unknown, FileSystem.FileSystem | Scope.Scope>
  /** Removes a file of a parse that failed (nothing of it is kept). */
  readonly remove: (path: string) => Effect.Effect<void, never, FileSystem.FileSystem>
  /** false: a literal that goes to no file is not hashed either (its `sha1` is ""). */
  readonly hashes?: boolean
}

/** Where a message with this GUID is staged: `<stagingDir>/sync./<pid>/<guid-hex>`. */
export const stagingPath = (stagingDir: string, guidHex: string, pid: number = process.pid): string =>
  path.join(stagingDir, "sync.", String(pid), guidHex.toLowerCase())

const removeFile = (p: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.ignore(fs.remove(p)))

/** Keeps nothing: every literal is only hashed. */
export const discardSink: FileSink = {
  pathOf: () => "",
  open: () => Effect.succeed(() => Effect.void),
  remove: removeFile
}

/** Keeps nothing and hashes nothing: only the literals' offsets and sizes are known. */
export const skipSink: FileSink = { ...discardSink, hashes: false }

/** Stages every literal to `stagingPath(stagingDir, guid, pid)`. */
export const stagingSink = (stagingDir: string, pid?: number): FileSink => ({
  pathOf: (guid) => stagingPath(stagingDir, guid, pid),
  open: (target) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      yield* fs.makeDirectory(path.dirname(target), { recursive: true, mode: 0o755 })
      yield* fs.remove(target).pipe(Effect.catchTag("SystemError", (e) => (e.reason === "NotFound" ? Effect.void : Effect.fail(e))))
      const file = yield* fs.open(target, { flag: "w+" })
      // No fsync (Cyrus does one per staged file): a staged file is scratch space. Whoever
      // stores it reads it back and checks size and SHA-1, and the durable copy is the
      // data file, which is synced before an APPLY is acknowledged.
      return (chunk: Uint8Array) => file.writeAll(chunk)
    }),
  remove: removeFile
})

/** The sink a parse option names. */
export const fileSinkOf = (files: FileHandling | FileSink): FileSink =>
  !("_tag" in files) ? files : files._tag === "Discard" ? discardSink : files._tag === "Skip" ? skipSink : stagingSink(files.stagingDir, files.pid)
