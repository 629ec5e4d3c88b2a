/**
 * Compacting a backup (`ctl_backups compact`, docs/storage.md, Compaction): a new data file
 * and index are built beside the original as `<data>.new` / `<data>.index.new`, holding what
 * the live state still needs, then swapped in for the original while its lock is held.
 *
 * Chunk by chunk we follow Cyrus's rules (compactRules.ts: which chunks are live, which
 * MESSAGE files and MAILBOX records a kept chunk still needs, combining and splitting by
 * size), with one difference made for offsite copies: the leading run of chunks that would
 * lose no message data and need no combining or splitting is copied byte for byte (stale
 * MAILBOX records in it are left as they are), so that an rsync of the compacted file resends
 * only what follows. The steps: find that prefix, copy it, re-index it, write the remaining
 * kept chunks line by line through the ordinary append path, swap the files (fileSwap.ts).
 */
import fs from "node:fs"
import nodePath from "node:path"
import { Data, Effect, Exit, Scope } from "effect"
import { filesOf, item, type Dlist, type Item } from "../../protocol/dlist/value.js"
import { lockDataFile, type LockedDataFile } from "../dataFileLock.js"
import {
  BackupExists,
  ioError,
  type AppendError,
  type BackupIndexError,
  type BackupIoError,
  type BackupLocked,
  type BackupNeedsReindex,
  type BackupNotFound,
  type OpenError
} from "../errors.js"
import { walkChunk } from "../format/chunkLines.js"
import { lineLength, upperAscii } from "../format/dlistText.js"
import { fileSize, readRange } from "../format/memberReader.js"
import { openIndexDb } from "../index/db.js"
import { indexQueries, type IndexQueries } from "../index/queries.js"
import type { ChunkRow } from "../index/rows.js"
import { indexPathOf, lockBackup } from "../openBackup.js"
import { openForAppend, type BackupWriter, type OpenForAppendOptions } from "../write/BackupWriter.js"
import { walkChunkStaged, type StagedLine } from "./compactLines.js"
import { compactRequired, pruneMailbox, pruneMessage, sizeRules, type Chunk, type SizeOptions } from "./compactRules.js"
import { swapFiles } from "./fileSwap.js"
import { rebuildIndex } from "./reindex.js"

export interface CompactOptions extends SizeOptions {
  /** `backup_retention` in seconds; ≤ 0 keeps everything. */
  readonly retention: number
  /** `backup_keep_previous`: keep the originals as `<data>.<now>` / `<data>.index.<now>`. */
  readonly keepPrevious: boolean
  /** Compact even if the thresholds say it is not worth it (`-F`). */
  readonly force: boolean
  /** Wait for the lock of the original (`-w`). */
  readonly wait: boolean
  /** Where message bodies are staged while being copied (`backup_staging_path`). */
  readonly stagingDir: string
  /** Clock in Unix seconds (tests). */
  readonly now?: () => number
  /** The written chunks' member digests (BackupWriter's `memberDigests`: object storage, clear layout). */
  readonly memberDigests?: OpenForAppendOptions["memberDigests"]
}

/** A chunk whose rest could not be read; what came before the damage was kept. */
export interface CompactReadError {
  readonly offset: number
  readonly byte: number
  readonly message: string
}

export interface CompactReport {
  /** False when compaction was not needed (nothing was changed). */
  readonly compacted: boolean
  readonly totalChunks: number
  /** Ids of the chunks still needed, in order. */
  readonly keptChunks: ReadonlyArray<number>
  /** Leading chunks copied byte for byte, and how many bytes that is. */
  readonly preservedChunks: number
  readonly preservedBytes: number
  readonly sizeBefore: number
  readonly sizeAfter: number
  /** Message bodies left out of rewritten chunks. */
  readonly droppedMessages: number
  /** Cyrus's verbose lines ("splitting chunk N", "combining chunks N and M"). */
  readonly log: ReadonlyArray<string>
  readonly readErrors: ReadonlyArray<CompactReadError>
}

/** Compaction could not finish; the original backup is untouched. */
export class CompactFailed extends Data.TaggedError("CompactFailed")<{
  readonly path: string
  readonly message: string
}> {}

export type CompactError =
  | BackupLocked
  | BackupNotFound
  | BackupExists
  | BackupNeedsReindex
  | BackupIoError
  | BackupIndexError
  | CompactFailed

const failed = (path: string, message: string) => new CompactFailed({ path, message })

const asChunk = (c: ChunkRow): Chunk => ({ id: c.id, offset: c.offset, length: c.length ?? 0 })

/** Removes the staged message files of a line once it was written (best effort). */
const removeStaged = (it: Item) =>
  Effect.ignore(
    Effect.try(() => {
      for (const f of filesOf(it.value)) if (f.path !== "") fs.rmSync(f.path, { force: true })
    })
  )

class PrefixBreak {}

/**
 * How many leading chunks compaction would leave as they are, and where they end: read one
 * by one until a chunk is not kept, not contiguous, to be combined or split, holds a message
 * no live record needs, or does not read back whole.
 */
const unchangedPrefix = (
  file: LockedDataFile,
  q: IndexQueries,
  all: ReadonlyArray<Chunk>,
  keep: ReadonlyArray<Chunk>,
  since: number,
  rules: ReturnType<typeof sizeRules>
) =>
  Effect.gen(function*() {
    let end = 0
    let count = 0
    while (count < all.length && count < keep.length) {
      const c = all[count]!
      if (keep[count]!.id !== c.id || c.offset !== end) break
      if (rules.wantCombine(c.length, keep[count + 1]) || rules.wantSplit(c, undefined)) break
      const guids = yield* q.liveGuids(c.id, since)
      const walked = yield* Effect.either(
        walkChunk(file.fd, c.offset, undefined, () => {}, (line) =>
          line.command === "APPLY" && upperAscii(line.item.key) === "MESSAGE" && filesOf(line.item.value).some((f) => !guids.has(f.guid.toLowerCase()))
            ? Effect.fail(new PrefixBreak())
            : Effect.void
        )
      )
      if (walked._tag === "Left") break
      const w = walked.right
      if (w.parseError !== undefined || w.inflateError !== undefined || w.member === undefined) break
      if (!w.member.complete || w.member.crc32 === undefined || w.length !== c.length) break
      end = w.member.end
      count++
    }
    return { count, end }
  })

/** Copies the first `length` bytes of the locked data file into the (empty) file at `to`, synced. */
const copyPrefix = (file: LockedDataFile, to: string, length: number): Effect.Effect<void, BackupIoError> =>
  Effect.tryPromise({
    try: async () => {
      const out = fs.openSync(to, "r+")
      try {
        let at = 0
        for await (const b of readRange(file.fd, 0, length)) {
          fs.writeSync(out, b, 0, b.length, at)
          at += b.length
        }
        fs.fsyncSync(out)
      } finally {
        fs.closeSync(out)
      }
    },
    catch: ioError(to, "copy")
  })

/** The output chunk being written: opened at its first line, ended when split or not combined. */
interface Output {
  readonly append: (it: Item, ts: number) => Effect.Effect<void, OpenError | AppendError>
  /** Uncompressed bytes in the open output chunk. */
  readonly wrote: () => number
  readonly isOpen: () => boolean
  /** Seals and closes the open output chunk, if any. */
  readonly end: Effect.Effect<void>
}

const makeOutput = (path: string, memberDigests: CompactOptions["memberDigests"]): Output => {
  let open: { readonly scope: Scope.CloseableScope; readonly writer: BackupWriter } | undefined
  let wrote = 0
  const writer = Effect.gen(function*() {
    if (open !== undefined) return open.writer
    const scope = yield* Scope.make()
    const w = yield* Scope.extend(openForAppend(path, { durable: false, memberDigests }), scope).pipe(Effect.tapError(() => Scope.close(scope, Exit.void)))
    open = { scope, writer: w }
    return w
  })
  return {
    append: (it, ts) =>
      Effect.gen(function*() {
        const w = yield* writer
        const r = yield* w.append(it, ts)
        wrote = r.offset + lineLength(it, r.ts)
      }),
    wrote: () => wrote,
    isOpen: () => open !== undefined,
    end: Effect.suspend(() => {
      const s = open?.scope
      open = undefined
      wrote = 0
      return s === undefined ? Effect.void : Scope.close(s, Exit.void)
    })
  }
}

/**
 * Writes the kept chunks from `from` on, line by line, into the backup at `newPath` through
 * the append path, each line pruned by Cyrus's rules; output chunks are combined and split by
 * size. The output writer is closed however this ends.
 */
const rewriteChunks = (
  file: LockedDataFile,
  q: IndexQueries,
  keep: ReadonlyArray<Chunk>,
  from: number,
  since: number,
  rules: ReturnType<typeof sizeRules>,
  newPath: string,
  stagingDir: string,
  memberDigests: CompactOptions["memberDigests"]
) =>
  Effect.acquireUseRelease(
    Effect.sync(() => makeOutput(newPath, memberDigests)),
    (output) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const readErrors: Array<CompactReadError> = []
        const mailboxLast = yield* q.mailboxLastChunks
        const lastRecordChunk = yield* q.lastRecordChunks
        let droppedMessages = 0
        for (let j = from; j < keep.length; j++) {
          const c = keep[j]!
          const next = keep[j + 1]
          const guids = yield* q.liveGuids(c.id, since)
          const isLastRecord = (uniqueid: string, guid: string) => lastRecordChunk(uniqueid, guid) === c.id
          const onLine = (line: StagedLine): Effect.Effect<void, OpenError | AppendError> =>
            Effect.gen(function*() {
              if (line.command !== "APPLY") return
              const key = upperAscii(line.item.key)
              let value: Dlist | undefined = line.item.value
              if (key === "MESSAGE") {
                const pruned = pruneMessage(value, guids)
                droppedMessages += pruned.dropped
                value = pruned.value
              } else if (key === "MAILBOX") {
                value = pruneMailbox(value, c.id, isLastRecord, mailboxLast)
              }
              if (value !== undefined) yield* output.append(item(key, value), line.ts)
              if (output.isOpen() && rules.wantSplit(c, output.wrote())) {
                yield* output.end
                log.push(`splitting chunk ${c.id}`)
              }
            }).pipe(Effect.ensuring(removeStaged(line.item)))
          const err = yield* walkChunkStaged(file.fd, c.offset, stagingDir, onLine)
          if (err !== undefined) readErrors.push({ offset: c.offset, byte: err.byte, message: err.message })
          if (output.isOpen()) {
            if (!rules.wantCombine(output.wrote(), next)) yield* output.end
            else log.push(`combining chunks ${c.id} and ${next!.id}`)
          }
        }
        return { droppedMessages, log, readErrors }
      }),
    (output) => output.end
  )

/**
 * Compacts the backup at `dataPath` under its lock. Succeeds with `compacted: false` when
 * there is nothing worth doing (unless forced). On failure the `.new` files are removed and
 * the original is left as it was.
 */
export const compactBackup = (dataPath: string, options: CompactOptions): Effect.Effect<CompactReport, CompactError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const indexPath = indexPathOf(dataPath)
      const newPath = `${dataPath}.new`
      const newIndex = `${indexPath}.new`
      // the append path keeps a data file's index beside it; renamed to newIndex once built
      const buildIndex = indexPathOf(newPath)
      const file = yield* lockBackup(dataPath, { wait: options.wait })

      // the work files are created exclusively: a leftover means another compact (or a crashed one)
      for (const p of [newIndex, buildIndex]) if (fs.existsSync(p)) return yield* Effect.fail(new BackupExists({ path: p }))
      yield* Effect.try({
        try: () => fs.closeSync(fs.openSync(newPath, "wx", 0o600)),
        catch: (e) => ((e as { code?: string }).code === "EEXIST" ? new BackupExists({ path: newPath }) : ioError(newPath, "open")(e))
      })
      // our staged copies live in <stagingDir>/sync./<pid>/ (see stagingPath); nothing else is there
      // (best effort: a staging area that cannot be used has already failed the compaction)
      yield* Effect.addFinalizer(() =>
        Effect.ignore(Effect.try(() => fs.rmSync(nodePath.join(options.stagingDir, "sync.", String(process.pid)), { recursive: true, force: true })))
      )
      const removeWork = Effect.try({
        try: () => {
          for (const p of [newPath, newIndex, buildIndex, `${buildIndex}-journal`]) fs.rmSync(p, { force: true })
        },
        catch: ioError(newPath, "unlink")
      })

      const now = (options.now ?? (() => Math.floor(Date.now() / 1000)))()
      const since = options.retention > 0 ? now - options.retention : -1
      const sizeBefore = yield* fileSize(file.fd, file.path)

      const build = Effect.scoped(
        Effect.gen(function*() {
          const q = indexQueries(yield* openIndexDb(indexPath), indexPath)
          const all = (yield* q.chunks).map(asChunk)
          const keep = (yield* q.liveChunks(since)).map(asChunk)
          if (!options.force && !compactRequired(all, keep, options)) return undefined
          const rules = sizeRules(options.minBytes, options.maxBytes)

          // 1. the leading chunks that compaction would not change, found by reading them
          const prefix = yield* unchangedPrefix(file, q, all, keep, since, rules)

          // 2. copy those bytes and index them
          yield* copyPrefix(file, newPath, prefix.end)
          const rebuilt = yield* Effect.scoped(
            Effect.gen(function*() {
              const nf = yield* lockDataFile(newPath)
              const nsql = yield* openIndexDb(buildIndex)
              return yield* rebuildIndex(nf, nsql, buildIndex)
            })
          )
          if (rebuilt.chunks !== prefix.count || rebuilt.problems.length > 0 || rebuilt.rejected.length > 0) {
            return yield* Effect.fail(failed(dataPath, `re-indexing the ${prefix.count} unchanged chunks gave ${rebuilt.chunks} chunks`))
          }

          // 3. the remaining kept chunks, line by line, through the append path
          const rest = yield* rewriteChunks(file, q, keep, prefix.count, since, rules, newPath, options.stagingDir, options.memberDigests)
          return {
            totalChunks: all.length,
            keptChunks: keep.map((c) => c.id),
            preservedChunks: prefix.count,
            preservedBytes: prefix.end,
            ...rest
          }
        })
      ).pipe(Effect.onError(() => Effect.ignore(removeWork)))

      const built = yield* build.pipe(
        Effect.mapError((e): CompactError => {
          switch (e._tag) {
            case "AppendRejected":
            case "StagedFileMismatch":
            case "BackupClosed":
            case "BackupCorrupt":
            case "StagingFailed": // the staging area is full or unwritable: fail, never drop the chunk
              return failed(dataPath, `${e._tag}: ${"message" in e ? String(e.message) : ""}`)
            default:
              return e
          }
        })
      )
      if (built === undefined) {
        yield* removeWork
        return {
          compacted: false, totalChunks: 0, keptChunks: [], preservedChunks: 0, preservedBytes: 0,
          sizeBefore, sizeAfter: sizeBefore, droppedMessages: 0, log: [], readErrors: []
        } satisfies CompactReport
      }

      // 4. swap the files while the original is still locked
      yield* swapFiles({ dataPath, indexPath, newPath, newIndex, buildIndex }, now, options.keepPrevious).pipe(
        Effect.tapError(() => Effect.ignore(removeWork))
      )
      const sizeAfter = yield* Effect.try({ try: () => fs.statSync(dataPath).size, catch: ioError(dataPath, "stat") })
      return { compacted: true, ...built, sizeBefore, sizeAfter } satisfies CompactReport
    })
  )
