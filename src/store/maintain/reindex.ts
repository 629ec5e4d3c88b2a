/**
 * Rebuilding a backup's index from its data file alone (Cyrus's `backup_reindex`;
 * docs/tools.md, `reindex`): every gzip member becomes a chunk row and every APPLY line in it is
 * indexed exactly as an append would have indexed it (`indexApply`), so the rows equal the
 * incrementally built ones.
 *
 * Where we differ from `ctl_backups reindex`, on purpose:
 * - a chunk's length, data_sha1 and line offsets are taken over the bytes as they are in the
 *   file (Cyrus re-prints each line and hashes that); for canonical data — everything
 *   backupd and we write — the two are the same, and ours always verify;
 * - timestamps that go backwards are indexed, not `fatal()`;
 * - a damaged member is reported and skipped: the next member is found by scanning for a
 *   gzip header whose data starts with the chunk header line, so later chunks are not lost
 *   (docs/gaps.md G22);
 * - if anything was damaged or the rebuild fails, the previous index is kept beside the new
 *   one (or put back), whatever `keepPrevious` says.
 * As Cyrus: members without any parsable line give no chunk row (so a header-only chunk of a
 * GET-only C session disappears), and a line the index rejects is only reported.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import { Effect } from "effect"
import { indexPathOf } from "../openBackup.js"
import { writeChunkState } from "../index/ChunkState.js"
import { lockDataFile, type LockedDataFile } from "../dataFileLock.js"
import { upperAscii } from "../format/dlistText.js"
import { AppendRejected, ioError, type BackupExists, type BackupIndexError, type BackupIoError, type BackupLocked, type BackupNotFound } from "../errors.js"
import { CHUNK_HEADER, crc32, gzipHeaderLength } from "../format/gzipMember.js"
import { indexApply } from "../index/apply.js"
import { indexError, inTransaction, openIndexDb, run, type Sql } from "../index/db.js"
import { fileSize, inflateMember, readExact, readRange, type ReadGate } from "../format/memberReader.js"
import { walkChunk, type ChunkLine } from "../format/chunkLines.js"
import { newSha1, peekDigest, saveState, stateToHex } from "../format/sha1State.js"
import { item } from "../../protocol/dlist/value.js"

/** Damage found in the data file: `offset` is the byte offset (in the file) of the member. */
export interface ReindexProblem {
  readonly offset: number
  readonly message: string
}

/** An APPLY line the index would not take (Cyrus logs these and goes on). */
export interface ReindexRejection {
  readonly chunkId: number
  /** Uncompressed offset of the line in its chunk. */
  readonly offset: number
  readonly key: string
  readonly reason: AppendRejected["reason"]
  readonly message: string
}

export interface RebuildResult {
  readonly chunks: number
  /** APPLY lines indexed (rejected ones included). */
  readonly lines: number
  readonly problems: ReadonlyArray<ReindexProblem>
  readonly rejected: ReadonlyArray<ReindexRejection>
}

export interface ReindexReport extends RebuildResult {
  /** Where the previous index was kept, if it was (null: there was none, or it was removed). */
  readonly previousIndex: string | null
}

export interface ReindexOptions {
  /** Keep the previous index as `<index>.<unixtime>` (option `backup_keep_previous`). */
  readonly keepPrevious?: boolean
  /** Wait for the data-file lock (`ctl_backups -w`). */
  readonly wait?: boolean
  /** Clock in Unix seconds (names the previous index). */
  readonly now?: () => number
}

export type ReindexError = BackupLocked | BackupNotFound | BackupExists | BackupIoError | BackupIndexError

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08])

/** Whether a chunk (gzip member starting with the chunk header line) starts at `offset`. */
const chunkStartsAt = async (fd: number, offset: number, gate?: ReadGate): Promise<boolean> => {
  const it = inflateMember(fd, offset, undefined, gate)
  const got: Array<Buffer> = []
  let n = 0
  try {
    while (n < CHUNK_HEADER.length) {
      const r = await it.next()
      if (r.done) break
      got.push(r.value)
      n += r.value.length
    }
  } catch {
    return false
  } finally {
    await it.return(undefined as never).catch(() => undefined)
  }
  return n >= CHUNK_HEADER.length && Buffer.concat(got).subarray(0, CHUNK_HEADER.length).equals(CHUNK_HEADER)
}

/** The offset of the next chunk at or after `from`, or undefined. */
const findNextChunk = (file: LockedDataFile, from: number, size: number, gate?: ReadGate) =>
  Effect.tryPromise({
    try: async () => {
      const window = 1 << 20
      for (let at = from; at < size; at += window - GZIP_MAGIC.length) {
        const buf = await readExact(file.fd, at, Math.min(window, size - at), gate)
        for (let i = buf.indexOf(GZIP_MAGIC); i !== -1; i = buf.indexOf(GZIP_MAGIC, i + 1)) {
          if (await chunkStartsAt(file.fd, at + i, gate)) return at + i
        }
        if (buf.length < window) break
      }
      return undefined
    },
    catch: ioError(file.path, "read")
  })

/**
 * How `rebuildIndex` may read a data file that is still being written, and what it may take
 * from its writer instead of computing it again (a pull: docs/storage.md, "Rebuilding a host").
 */
export interface RebuildOptions {
  /** The file's final size (default: fstat now). */
  readonly size?: number
  /** Waits until the bytes before an offset are in the file (for a file still being written). */
  readonly gate?: ReadGate
  /**
   * The file's SHA-1 as its writer computed it (hash-wasm, the state the index keeps): the
   * digest of the bytes before `offset` if the writer noted it there, and the saved state of
   * the whole file. Where it has no answer, the file is read and hashed here.
   */
  readonly fileSha1?: {
    readonly digestAt: (offset: number) => string | undefined
    readonly stateOfWhole: () => string | undefined
  }
}

/**
 * A chunk's running data SHA-1: node's native hash. Its state is never needed again: a chunk
 * left last in the file is sealed, never continued, by the next writer (BackupWriter.ts), so
 * the index's data_sha1_state holds the digest, as the writer's does.
 */
const dataSha1 = () => {
  const h = createHash("sha1")
  return { update: (b: Uint8Array) => void h.update(b), digest: () => h.copy().digest("hex") }
}

/**
 * Fills the freshly created, empty index `sql` from the locked data file. Damage is
 * reported in the result; the Effect fails only on I/O or SQLite errors.
 */
export const rebuildIndex = (
  file: LockedDataFile,
  sql: Sql,
  indexPath: string,
  options: RebuildOptions = {}
): Effect.Effect<RebuildResult, BackupIoError | BackupIndexError> =>
  Effect.gen(function*() {
    const size = options.size ?? (yield* fileSize(file.fd, file.path))
    const gate = options.gate
    const problems: Array<ReindexProblem> = []
    const rejected: Array<ReindexRejection> = []
    const fileHash = yield* newSha1
    let hashedTo = 0
    const hashFileTo = (offset: number) =>
      Effect.tryPromise({
        try: async () => {
          for await (const b of readRange(file.fd, hashedTo, offset, undefined, gate)) {
            fileHash.update(b)
            hashedTo += b.length
          }
        },
        catch: ioError(file.path, "read")
      })
    const fileSha1At = (offset: number) =>
      Effect.suspend(() => {
        const noted = options.fileSha1?.digestAt(offset)
        return noted !== undefined ? Effect.succeed(noted) : Effect.map(hashFileTo(offset), () => peekDigest(fileHash))
      })
    let chunks = 0
    let lines = 0
    let maxTs = 0
    let last: { chunkId: number; offset: number; end: number; length: number; crc: number; dataDigest: string } | undefined

    let offset = 0
    while (offset < size) {
      const head = yield* Effect.tryPromise({ try: () => readExact(file.fd, offset, Math.min(512, size - offset), gate), catch: ioError(file.path, "read") })
      if (typeof gzipHeaderLength(head) !== "number") {
        problems.push({ offset, message: `no gzip member at offset ${offset}` })
        const next = yield* findNextChunk(file, offset + 1, size, gate)
        if (next === undefined) break
        offset = next
        continue
      }
      const fileSha1 = yield* fileSha1At(offset)
      const memberOffset = offset
      const dataHash = dataSha1()
      let crc = 0
      let chunkId: number | null = null
      let lastTs = 0

      const onLine = (line: ChunkLine) =>
        Effect.gen(function*() {
          if (line.command !== "APPLY") return
          lines++
          if (chunkId === null) {
            const r = yield* run(
              sql,
              "INSERT INTO chunk (ts_start, ts_end, offset, length, file_sha1, data_sha1) VALUES (?, ?, ?, ?, ?, ?);",
              [line.ts, line.ts, memberOffset, CHUNK_HEADER.length, fileSha1, null]
            )
            chunkId = r.lastInsertRowid
            chunks++
          }
          lastTs = line.ts
          maxTs = Math.max(maxTs, line.ts)
          const key = upperAscii(line.item.key)
          const id = chunkId
          yield* inTransaction(sql, indexPath, indexApply(sql, indexPath, item(key, line.item.value), { chunkId: id, ts: line.ts, offset: line.offset })).pipe(
            Effect.catchIf(
              (e): e is AppendRejected => e instanceof AppendRejected,
              (e) => Effect.sync(() => { rejected.push({ chunkId: id, offset: line.offset, key, reason: e.reason, message: e.message }) })
            )
          )
        })

      const walk = yield* inTransaction(
        sql,
        indexPath,
        Effect.gen(function*() {
          const w = yield* walkChunk(
            file.fd,
            memberOffset,
            undefined,
            (b) => {
              dataHash.update(b)
              crc = crc32(b, crc)
            },
            onLine,
            // the index keeps no message hash (verify checks them)
            { hashBodies: false, ...(gate === undefined ? {} : { gate }) }
          )
          if (chunkId !== null) {
            yield* run(sql, "UPDATE chunk SET ts_end = ?, length = ?, data_sha1 = ? WHERE id = ?;", [lastTs, w.length, dataHash.digest(), chunkId])
          }
          return w
        })
      ).pipe(Effect.mapError((e) => (e._tag === "SqlError" ? indexError(indexPath)(e) : e)))

      if (walk.parseError !== undefined) {
        problems.push({ offset: memberOffset, message: `chunk at offset ${memberOffset}, byte ${walk.parseError.offset}: ${walk.parseError.message}` })
      }
      const m = walk.member
      if (walk.inflateError !== undefined || m === undefined) {
        problems.push({ offset: memberOffset, message: `damaged gzip member at offset ${memberOffset}: ${walk.inflateError ?? "unreadable"}` })
        const next = yield* findNextChunk(file, memberOffset + 1, size, gate)
        if (next === undefined) break
        offset = next
        continue
      }
      if (m.complete && m.crc32 !== undefined && (m.crc32 !== crc >>> 0 || m.isize !== walk.length % 0x100000000)) {
        problems.push({ offset: memberOffset, message: `gzip trailer mismatch for the member at offset ${memberOffset}` })
      }
      if (chunkId !== null) last = { chunkId, offset: memberOffset, end: m.end, length: walk.length, crc, dataDigest: dataHash.digest() }
      if (!m.complete || m.crc32 === undefined) {
        // A member cut short (a crashed writer): what it held is indexed, nothing can follow it.
        if (m.end < size) problems.push({ offset: memberOffset, message: `gzip member at offset ${memberOffset} has no end; ${size - m.end} bytes after it ignored` })
        break
      }
      offset = m.end
    }

    // A clean file whose last member is complete: leave the writer its end-of-file state,
    // so the next append needs no re-hash (otherwise it rebuilds the state itself).
    if (problems.length === 0 && last !== undefined && last.end === size) {
      const lastChunk = last
      const noted = options.fileSha1?.stateOfWhole()
      const fileState = noted ?? (yield* Effect.map(hashFileTo(size), () => stateToHex(saveState(fileHash))))
      yield* inTransaction(
        sql,
        indexPath,
        writeChunkState(sql, {
          chunkId: lastChunk.chunkId,
          sealed: true,
          endOffset: size,
          length: lastChunk.length,
          crc: lastChunk.crc,
          dataState: lastChunk.dataDigest,
          fileState,
          lastTs: maxTs
        })
      ).pipe(Effect.mapError(indexError(indexPath)))
    }
    return { chunks, lines, problems, rejected }
  })

const exists = (p: string) => fs.existsSync(p)

/**
 * `ctl_backups reindex` for one backup: lock the data file, move the index aside, build a
 * new one from the data file, then drop the old one (unless kept, see above).
 */
export const reindexFile = (dataPath: string, options: ReindexOptions = {}): Effect.Effect<ReindexReport, ReindexError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const file = yield* lockDataFile(dataPath, { wait: options.wait ?? false })
      const indexPath = indexPathOf(dataPath)
      const now = (options.now ?? (() => Math.floor(Date.now() / 1000)))()
      const previous = `${indexPath}.${now}`
      const candidates: ReadonlyArray<readonly [string, string]> = [
        [indexPath, previous],
        [`${indexPath}-journal`, `${previous}-journal`]
      ]
      const moves = candidates.filter(([from]) => exists(from))
      yield* Effect.try({ try: () => moves.forEach(([from, to]) => fs.renameSync(from, to)), catch: ioError(indexPath, "rename") })
      const hadPrevious = moves.length > 0

      // best effort: the rebuild's own failure is the one reported
      const putBack = Effect.ignore(
        Effect.try(() => {
          for (const p of [indexPath, `${indexPath}-journal`]) fs.rmSync(p, { force: true })
          for (const [from, to] of moves) fs.renameSync(to, from)
        })
      )

      const result = yield* Effect.scoped(
        Effect.flatMap(openIndexDb(indexPath), (sql) => rebuildIndex(file, sql, indexPath))
      ).pipe(Effect.tapError(() => putBack))

      const keep = hadPrevious && (options.keepPrevious === true || result.problems.length > 0)
      if (hadPrevious && !keep) {
        yield* Effect.try({ try: () => moves.forEach(([, to]) => fs.rmSync(to, { force: true })), catch: ioError(previous, "unlink") })
      }
      return { ...result, previousIndex: keep ? previous : null }
    })
  )
