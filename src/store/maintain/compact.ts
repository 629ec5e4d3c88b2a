/**
 * Compacting a backup (`ctl_backups compact`, spec/storage.md §9 and §10): a new data file
 * and index are built beside the original as `<data>.new` / `<data>.index.new`, holding what
 * the live state still needs, then renamed over the original while its lock is held.
 *
 * Chunk by chunk we follow Cyrus's rules (which chunks are live, which MESSAGE files and
 * MAILBOX records a kept chunk still needs, combining and splitting by size), with one
 * difference made for offsite copies: the leading run of chunks that would lose no message
 * data and need no combining or splitting is copied byte for byte (stale MAILBOX records in
 * it are left as they are), so that an rsync of the compacted file resends only what follows.
 * The copied prefix is re-indexed; the rest is written through the ordinary append path.
 */
import fs from "node:fs"
import nodePath from "node:path"
import { Data, Effect, Exit, Scope } from "effect"
import { filesOf, item, kvlist, list, type Dlist, type Item } from "../../protocol/dlist/value.js"
import { checkIndexPresent, indexPathOf } from "../openBackup.js"
import { openForAppend, type BackupWriter } from "../write/BackupWriter.js"
import { walkChunkStaged, type StagedLine } from "./compactLines.js"
import { lockDataFile } from "../dataFileLock.js"
import { getAtom, getList, listItems } from "../format/dlistFields.js"
import { lineLength, upperAscii } from "../format/dlistText.js"
import {
  BackupExists,
  BackupIoError,
  type AppendError,
  type BackupIndexError,
  type BackupLocked,
  type BackupNeedsReindex,
  type BackupNotFound,
  type OpenError
} from "../errors.js"
import { indexError, intColumn, openIndexDb, query, textColumn, type Sql } from "../index/db.js"
import { readRange } from "../format/memberReader.js"
import { rebuildIndex } from "./reindex.js"
import { walkChunk } from "../format/chunkLines.js"

export interface CompactOptions {
  /** `backup_retention` in seconds; ≤ 0 keeps everything. */
  readonly retention: number
  /** `backup_compact_minsize` / `maxsize` in bytes (0: unset). */
  readonly minBytes: number
  readonly maxBytes: number
  /** `backup_compact_work_threshold`, at least 1. */
  readonly workThreshold: number
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

interface Chunk {
  readonly id: number
  readonly offset: number
  readonly length: number
}

const ioError = (path: string, op: string) => (e: unknown) =>
  new BackupIoError({ path, op, message: (e as Error).message ?? String(e) })

/**
 * Ids of the chunks that still hold something live at `since` (Cyrus's compaction rule):
 * a mailbox, record, message, subscription or sieve script not removed before it, or any SEEN.
 * Its parameters are `liveChunkParams(since)`.
 */
export const LIVE_CHUNK_IDS =
  "SELECT last_chunk_id FROM mailbox WHERE deleted IS NULL OR deleted > ?" +
  " UNION SELECT last_chunk_id FROM mailbox_message WHERE expunged IS NULL OR expunged > ?" +
  " UNION SELECT chunk_id FROM message AS m JOIN mailbox_message AS mm ON m.id = mm.message_id AND (mm.expunged IS NULL OR mm.expunged > ?)" +
  " UNION SELECT last_chunk_id FROM subscription WHERE unsubscribed IS NULL OR unsubscribed > ?" +
  " UNION SELECT last_chunk_id FROM seen" +
  " UNION SELECT chunk_id FROM sieve WHERE deleted IS NULL OR deleted > ?"
export const liveChunkParams = (since: number): ReadonlyArray<number> => [since, since, since, since, since]

const failed = (path: string, message: string) => new CompactFailed({ path, message })

/** Cyrus's size rules, given the config in bytes. */
export const sizeRules = (minBytes: number, maxBytes: number) => {
  /** A short output chunk is combined with the next kept chunk. */
  const wantCombine = (length: number, next: Chunk | undefined): boolean => {
    if (next === undefined) return false
    if (length >= minBytes && next.length >= minBytes) return false
    if (maxBytes === 0) return true
    return length + next.length <= maxBytes
  }
  /** A long chunk is split; `wrote` is what the open output chunk holds (undefined: not writing). */
  const wantSplit = (chunk: Chunk, wrote: number | undefined): boolean => {
    if (maxBytes === 0) return false
    if (wrote !== undefined && wrote < maxBytes) return false
    if (chunk.length < maxBytes + minBytes) return false
    if (wrote === undefined) return true
    return chunk.length - wrote > minBytes
  }
  return { wantCombine, wantSplit }
}

/** Whether compaction is worth doing (storage.md §9 step 4). */
export const compactRequired = (
  all: ReadonlyArray<Chunk>,
  keep: ReadonlyArray<Chunk>,
  o: Pick<CompactOptions, "minBytes" | "maxBytes" | "workThreshold">
): boolean => {
  const threshold = Math.max(1, o.workThreshold)
  let work = Math.max(0, all.length - keep.length)
  if (work >= threshold) return true
  if (o.minBytes === 0 && o.maxBytes === 0) return false
  if (o.minBytes !== 0 && o.maxBytes !== 0 && o.minBytes >= o.maxBytes) return false
  const { wantCombine, wantSplit } = sizeRules(o.minBytes, o.maxBytes)
  for (let i = 0; i < keep.length; i++) {
    if (wantCombine(keep[i]!.length, keep[i + 1])) work++
    if (wantSplit(keep[i]!, undefined)) work++
    if (work >= threshold) return true
  }
  return false
}

/** Index lookups on the original backup that decide what a kept chunk still needs. */
const originalQueries = (sql: Sql, indexPath: string) => {
  const q = (text: string, params: ReadonlyArray<unknown> = []) => query(sql, text, params).pipe(Effect.mapError(indexError(indexPath)))
  const toChunk = (r: Record<string, unknown>): Chunk => ({
    id: intColumn(r.id) ?? 0,
    offset: intColumn(r.offset) ?? 0,
    length: intColumn(r.length) ?? 0
  })
  return {
    all: Effect.map(q("SELECT id, offset, length FROM chunk ORDER BY id;"), (rows) => rows.map(toChunk)),
    live: (since: number) =>
      Effect.map(
        q(
          `SELECT id, offset, length FROM chunk WHERE id IN (${LIVE_CHUNK_IDS}) ORDER BY id;`,
          liveChunkParams(since)
        ),
        (rows) => rows.map(toChunk)
      ),
    /** GUIDs of the chunk's messages that some record not expunged before `since` still uses. */
    liveGuids: (chunkId: number, since: number) =>
      Effect.map(
        q(
          "SELECT DISTINCT m.guid AS guid FROM message AS m JOIN mailbox_message AS mm ON m.id = mm.message_id AND (mm.expunged IS NULL OR mm.expunged > ?) WHERE m.chunk_id = ?;",
          [since, chunkId]
        ),
        (rows) => new Set(rows.map((r) => (textColumn(r.guid) ?? "").toLowerCase()))
      ),
    /** The chunk that last wrote the mailbox_message row of each (uniqueid, guid). */
    lastRecordChunks: Effect.map(
        q(
          "SELECT mb.uniqueid AS uniqueid, m.guid AS guid, mm.last_chunk_id AS last FROM mailbox_message AS mm JOIN mailbox AS mb ON mm.mailbox_id = mb.id JOIN message AS m ON mm.message_id = m.id;"
        ),
        (rows) => {
          // the last row for a pair wins, as a single-row lookup by (uniqueid, guid) would see it
          const last = new Map<string, number>()
          for (const r of rows) last.set(`${textColumn(r.uniqueid)}\u0000${(textColumn(r.guid) ?? "").toLowerCase()}`, intColumn(r.last) ?? 0)
          return (uniqueid: string, guid: string) => last.get(`${uniqueid}\u0000${guid.toLowerCase()}`)
        }
      ),
    mailboxLastChunk: Effect.map(q("SELECT uniqueid, last_chunk_id FROM mailbox ORDER BY id;"), (rows) => {
      const m = new Map<string, number>()
      for (const r of rows) m.set(textColumn(r.uniqueid) ?? "", intColumn(r.last_chunk_id) ?? 0)
      return m
    })
  }
}

/** The MESSAGE line without the bodies no live record needs; undefined when none is left. */
const pruneMessage = (value: Dlist, keep: ReadonlySet<string>): { value: Dlist | undefined; dropped: number } => {
  if (value._tag !== "List" && value._tag !== "KvList") return { value, dropped: 0 }
  const wanted = (d: Dlist) => d._tag !== "File" || keep.has(d.guid.toLowerCase())
  if (value._tag === "List") {
    const items = value.items.filter(wanted)
    return { value: items.length === 0 ? undefined : list(items), dropped: value.items.length - items.length }
  }
  const items = value.items.filter(([, d]) => wanted(d))
  return { value: items.length === 0 ? undefined : kvlist(items), dropped: value.items.length - items.length }
}

/** Cyrus's MAILBOX rule: keep the records last written in this chunk, the line if any remain or it is the mailbox's last. */
const pruneMailbox = (
  value: Dlist,
  chunkId: number,
  isLastRecord: (uniqueid: string, guid: string) => boolean,
  mailboxLast: ReadonlyMap<string, number>
): Dlist | undefined => {
  const uniqueid = getAtom(value, "UNIQUEID")
  if (uniqueid === undefined || value._tag !== "KvList") return value
  let out: Dlist = value
  const record = getList(value, "RECORD")
  if (record !== undefined && listItems(record).length > 0) {
    let keep = false
    const kept = listItems(record).filter((rec) => {
      const guid = getAtom(rec, "GUID")
      if (guid === undefined || isLastRecord(uniqueid, guid)) {
        keep = true
        return true
      }
      return false
    })
    out = kvlist(value.items.map(([k, v]) => [k, k === "RECORD" && v === record ? list(kept) : v] as const))
    if (keep) return out
  }
  const last = mailboxLast.get(uniqueid)
  return last === undefined || last === chunkId ? out : undefined
}

const removeStaged = (it: Item) =>
  Effect.sync(() => {
    for (const f of filesOf(it.value)) if (f.path !== "") fs.rmSync(f.path, { force: true })
  })

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

class PrefixBreak {}

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
      const file = yield* lockDataFile(dataPath, { wait: options.wait })
      yield* checkIndexPresent(file)

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
      const removeWork = Effect.sync(() => {
        for (const p of [newPath, newIndex, buildIndex, `${buildIndex}-journal`]) fs.rmSync(p, { force: true })
      })

      const now = (options.now ?? (() => Math.floor(Date.now() / 1000)))()
      const since = options.retention > 0 ? now - options.retention : -1
      const sizeBefore = fs.fstatSync(file.fd).size

      const build = Effect.scoped(
        Effect.gen(function*() {
          const sql = yield* openIndexDb(indexPath)
          const q = originalQueries(sql, indexPath)
          const all = yield* q.all
          const keep = yield* q.live(since)
          if (!options.force && !compactRequired(all, keep, options)) return undefined
          const { wantCombine, wantSplit } = sizeRules(options.minBytes, options.maxBytes)
          const log: Array<string> = []
          const readErrors: Array<CompactReadError> = []

          // 1. the leading chunks that compaction would not change, found by reading them
          let prefixEnd = 0
          let prefix = 0
          while (prefix < all.length && prefix < keep.length) {
            const c = all[prefix]!
            if (keep[prefix]!.id !== c.id || c.offset !== prefixEnd) break
            if (wantCombine(c.length, keep[prefix + 1]) || wantSplit(c, undefined)) break
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
            prefixEnd = w.member.end
            prefix++
          }

          // 2. copy those bytes and index them
          yield* Effect.tryPromise({
            try: async () => {
              const out = fs.openSync(newPath, "r+")
              try {
                let at = 0
                for await (const b of readRange(file.fd, 0, prefixEnd)) {
                  fs.writeSync(out, b, 0, b.length, at)
                  at += b.length
                }
                fs.fsyncSync(out)
              } finally {
                fs.closeSync(out)
              }
            },
            catch: ioError(newPath, "copy")
          })
          const rebuilt = yield* Effect.scoped(
            Effect.gen(function*() {
              const nf = yield* lockDataFile(newPath)
              const nsql = yield* openIndexDb(buildIndex)
              return yield* rebuildIndex(nf, nsql, buildIndex)
            })
          )
          if (rebuilt.chunks !== prefix || rebuilt.problems.length > 0 || rebuilt.rejected.length > 0) {
            return yield* Effect.fail(failed(dataPath, `re-indexing the ${prefix} unchanged chunks gave ${rebuilt.chunks} chunks`))
          }

          // 3. the remaining kept chunks, line by line, through the append path
          const mailboxLast = yield* q.mailboxLastChunk
          const lastRecordChunk = yield* q.lastRecordChunks
          let droppedMessages = 0
          let scope: Scope.CloseableScope | undefined
          let writer: BackupWriter | undefined
          let wrote = 0
          const endOutput = Effect.suspend(() => {
            const s = scope
            scope = undefined
            writer = undefined
            wrote = 0
            return s === undefined ? Effect.void : Scope.close(s, Exit.void)
          })
          const output = Effect.gen(function*() {
            if (writer !== undefined) return writer
            const s = yield* Scope.make()
            const w = yield* Scope.extend(openForAppend(newPath, { durable: false }), s).pipe(
              Effect.tapError(() => Scope.close(s, Exit.void))
            )
            scope = s
            writer = w
            return w
          })

          for (let j = prefix; j < keep.length; j++) {
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
                if (value !== undefined) {
                  const it = item(key, value)
                  const w = yield* output
                  const r = yield* w.append(it, line.ts)
                  wrote = r.offset + lineLength(it, r.ts)
                }
                if (writer !== undefined && wantSplit(c, wrote)) {
                  yield* endOutput
                  log.push(`splitting chunk ${c.id}`)
                }
              }).pipe(Effect.ensuring(removeStaged(line.item)))
            const err = yield* walkChunkStaged(file.fd, c.offset, options.stagingDir, onLine)
            if (err !== undefined) readErrors.push({ offset: c.offset, byte: err.byte, message: err.message })
            if (writer !== undefined) {
              if (!wantCombine(wrote, next)) yield* endOutput
              else log.push(`combining chunks ${c.id} and ${next!.id}`)
            }
          }
          yield* endOutput
          return { totalChunks: all.length, keptChunks: keep.map((c) => c.id), preservedChunks: prefix, preservedBytes: prefixEnd, droppedMessages, log, readErrors }
        })
      ).pipe(Effect.onError(() => removeWork))

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
      const tsData = `${dataPath}.${now}`
      const tsIndex = `${indexPath}.${now}`
      yield* Effect.try({
        try: () => {
          fs.rmSync(`${buildIndex}-journal`, { force: true })
          fs.renameSync(buildIndex, newIndex)
          sameOwner(dataPath, newPath)
          sameOwner(indexPath, newIndex)
          fsyncPath(newPath)
        },
        catch: ioError(newPath, "sync")
      }).pipe(Effect.tapError(() => removeWork))
      yield* Effect.try({
        try: () => {
          try {
            fs.linkSync(dataPath, tsData)
            fs.linkSync(indexPath, tsIndex)
          } catch (e) {
            fs.rmSync(tsData, { force: true })
            fs.rmSync(tsIndex, { force: true })
            throw e
          }
        },
        catch: ioError(tsData, "link")
      }).pipe(Effect.tapError(() => removeWork))
      yield* Effect.try({
        try: () => {
          try {
            fs.renameSync(newPath, dataPath)
            fs.renameSync(newIndex, indexPath)
          } catch (e) {
            // put the originals back under their names
            fs.rmSync(dataPath, { force: true })
            fs.rmSync(indexPath, { force: true })
            fs.linkSync(tsData, dataPath)
            fs.linkSync(tsIndex, indexPath)
            throw e
          }
        },
        catch: ioError(dataPath, "rename")
      }).pipe(Effect.tapError(() => removeWork))
      if (!options.keepPrevious) {
        yield* Effect.sync(() => {
          fs.rmSync(tsData, { force: true })
          fs.rmSync(tsIndex, { force: true })
        })
      }
      const sizeAfter = fs.statSync(dataPath).size
      return { compacted: true, ...built, sizeBefore, sizeAfter } satisfies CompactReport
    })
  )
