/**
 * `openForAppend`: a locked backup that takes APPLY items, each one an all-or-nothing unit
 * that is durable once `append` succeeds.
 *
 * One `append` (or `appendAll` of several lines) = one SQLite transaction around: (first time only) the new chunk row; the
 * index changes; the line deflated onto the end of the data file (a sync-flushed segment, so
 * the member is decodable at every acknowledged point); fdatasync; the chunk row's running
 * length/data_sha1/ts_end and our state row (end offset, CRC-32, SHA-1 states); COMMIT.
 * Any failure before COMMIT rolls SQLite back and truncates the file to the previous end.
 *
 * The chunk is started lazily, at the first append: ack-per-APPLY needs no chunk until there
 * is something to acknowledge, and a GET-only session then leaves no empty member behind
 * (gaps G14/G15). Closing the scope seals the member and releases the lock.
 */
import { createHash, type Hash } from "node:crypto"
import { Effect, Scope } from "effect"
import type { Item } from "../../protocol/dlist/value.js"
import { writeChunkState, type ChunkState } from "../index/ChunkState.js"
import { lineParts, partsLength } from "../format/dlistText.js"
import { BackupClosed, type AppendError, type OpenError } from "../errors.js"
import { CHUNK_HEADER, GZIP_HEADER } from "../format/gzipMember.js"
import { indexApply } from "../index/apply.js"
import { indexError, inTransaction, run } from "../index/db.js"
import { makeReader, type BackupReader } from "../read/BackupReader.js"
import { openBackup } from "../openBackup.js"
import { ChunkDeflater, syncData, truncateTo, type Accumulator } from "./segmentWriter.js"
import { newSha1, peekDigest, saveState, stateFromHex, stateToHex } from "../format/sha1State.js"
import { recoverTail, sealState, type RecoveryReport } from "./tailRecovery.js"
import { MemberDigest, type MemberDigestOptions } from "./MemberDigest.js"

/** SHA-1 of CHUNK_HEADER alone: the data_sha1 of a chunk row before its first line is counted. */
const CHUNK_HEADER_SHA1 = createHash("sha1").update(CHUNK_HEADER).digest("hex")

export interface AppendResult {
  readonly chunkId: number
  /** Uncompressed offset of the line within its chunk. */
  readonly offset: number
  /** The timestamp written (the requested one, raised to keep lines monotonic). */
  readonly ts: number
}

export interface BackupWriter {
  readonly dataPath: string
  readonly indexPath: string
  /** What opening had to repair. */
  readonly recovery: RecoveryReport
  /** Reads through the same lock and index connection. */
  readonly reader: BackupReader
  /** Appends one APPLY line and its index changes, all or nothing. */
  readonly append: (item: Item, ts?: number) => Effect.Effect<AppendResult, AppendError>
  /** Appends several APPLY lines (one timestamp) and their index changes as one unit: all or nothing. */
  readonly appendAll: (items: ReadonlyArray<Item>, ts?: number) => Effect.Effect<ReadonlyArray<AppendResult>, AppendError>
}

export interface OpenForAppendOptions {
  /** Create the data file and index if missing (backupd always does). */
  readonly create?: boolean
  readonly exclusive?: boolean
  /** Wait for the lock instead of failing with BackupLocked. */
  readonly wait?: boolean
  /** fdatasync the data file before each commit (default true: survives power loss, not only kill -9). */
  readonly durable?: boolean
  /** Clock in Unix seconds (tests). */
  readonly now?: () => number
  /**
   * Record each member's SHA-256, whole and per `partSize` slice, when it is sealed
   * (MemberDigest.ts): what an object-store upload of the clear layout needs. Off: no cost.
   */
  readonly memberDigests?: MemberDigestOptions | undefined
}

export const openForAppend = (
  dataPath: string,
  options: OpenForAppendOptions = {}
): Effect.Effect<BackupWriter, OpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const now = options.now ?? (() => Math.floor(Date.now() / 1000))
    const durable = options.durable ?? true
    const opened = yield* openBackup(dataPath, { create: options.create ?? false, exclusive: options.exclusive ?? false, wait: options.wait ?? false })
    const { file, sql, indexPath } = opened
    const recovery = yield* recoverTail(file, sql, indexPath)

    let tail: ChunkState = recovery.state
    let openChunk: number | null = null
    let closed = false
    // The open chunk's uncompressed SHA-1 is only ever needed in this process (a chunk left
    // open is sealed, never continued, by the next opener), so it is node's native hash; a
    // copy taken before each APPLY is what a rollback returns to. The file's SHA-1 state is
    // saved in the index (the next chunk's file_sha1 without re-reading the file): hash-wasm.
    let dataHash: Hash = createHash("sha1")
    let dataBefore: Hash | undefined
    const fileHash = yield* newSha1
    fileHash.load(stateFromHex(tail.fileState))
    // one compressor for the open chunk (segmentWriter.ts)
    const deflater = new ChunkDeflater()
    yield* Effect.addFinalizer(() => Effect.sync(() => deflater.close()))
    // the open member's SHA-256s, when asked for; the file hash's bytes are the member's bytes
    let member: MemberDigest | undefined
    let memberBefore: ReturnType<MemberDigest["mark"]> | undefined
    const fileSink = options.memberDigests === undefined
      ? fileHash
      : {
          update: (b: Uint8Array) => {
            fileHash.update(b)
            member?.update(b)
          }
        }

    const rollbackData = (before: ChunkState) =>
      Effect.sync(() => deflater.reset()).pipe(
        Effect.zipRight(truncateTo(file.fd, file.path, before.endOffset)),
        Effect.tap(() =>
          Effect.sync(() => {
            fileHash.load(stateFromHex(before.fileState))
            if (dataBefore !== undefined) dataHash = dataBefore
            dataBefore = undefined
            if (memberBefore !== undefined) member?.restore(memberBefore)
            memberBefore = undefined
          })
        ),
        Effect.catchAll(() => Effect.sync(() => { closed = true }))
      )

    const appendLines = (items: ReadonlyArray<Item>, tsIn?: number): Effect.Effect<ReadonlyArray<AppendResult>, AppendError> =>
      Effect.gen(function*() {
        if (closed) return yield* Effect.fail(new BackupClosed({ path: dataPath }))
        const before = tail
        const ts = Math.max(Math.floor(tsIn ?? now()), before.lastTs)
        const startNew = openChunk === null
        if (startNew) {
          dataHash = createHash("sha1")
          deflater.reset()
          if (options.memberDigests !== undefined) member = new MemberDigest(before.endOffset, options.memberDigests.partSize)
        }
        dataBefore = dataHash.copy()
        memberBefore = member?.mark()
        const acc: Accumulator = { crc: startNew ? 0 : before.crc, length: startNew ? 0 : before.length, data: dataHash, file: fileSink }
        // each line printed once: its parts are written, and their length places the next line
        const lines = items.map((it) => lineParts(it, ts))
        const parts = lines.flat()
        const lineOffsets: Array<number> = []
        for (let at = startNew ? CHUNK_HEADER.length : before.length, k = 0; k < lines.length; k++) {
          lineOffsets.push(at)
          at += partsLength(lines[k]!)
        }

        const txn = Effect.gen(function*() {
          let chunkId = openChunk ?? 0
          if (startNew) {
            const r = yield* run(
              sql,
              "INSERT INTO chunk (ts_start, ts_end, offset, length, file_sha1, data_sha1) VALUES (?, ?, ?, ?, ?, ?);",
              [ts, ts, before.endOffset, CHUNK_HEADER.length, peekDigest(fileHash), CHUNK_HEADER_SHA1]
            )
            chunkId = r.lastInsertRowid
          }
          for (const [k, it] of items.entries()) yield* indexApply(sql, indexPath, it, { chunkId, ts, offset: lineOffsets[k]! })
          const written = yield* deflater.writeSegment(
            file.fd,
            file.path,
            before.endOffset,
            startNew ? GZIP_HEADER : null,
            startNew ? [CHUNK_HEADER, ...parts] : parts,
            acc
          )
          if (durable) yield* syncData(file.fd, file.path)
          const dataSha1 = dataHash.copy().digest("hex")
          const next: ChunkState = {
            chunkId,
            sealed: false,
            endOffset: before.endOffset + written,
            length: acc.length,
            crc: acc.crc,
            // not needed across processes (above); kept as the digest so far, for inspection
            dataState: dataSha1,
            fileState: stateToHex(saveState(fileHash)),
            lastTs: ts
          }
          yield* run(sql, "UPDATE chunk SET ts_end = ?, length = ?, data_sha1 = ? WHERE id = ?;", [ts, acc.length, dataSha1, chunkId])
          yield* writeChunkState(sql, next)
          return next
        })

        const next = yield* inTransaction(sql, indexPath, txn).pipe(
          Effect.mapError((e) => ("_tag" in e && e._tag === "SqlError" ? indexError(indexPath)(e) : e) as AppendError),
          Effect.onError(() => rollbackData(before))
        )
        tail = next
        dataBefore = undefined
        memberBefore = undefined
        openChunk = next.chunkId
        return lineOffsets.map((offset) => ({ chunkId: next.chunkId!, offset, ts }))
      }).pipe(Effect.uninterruptible) as Effect.Effect<ReadonlyArray<AppendResult>, AppendError>

    const lock = yield* Effect.makeSemaphore(1)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        if (closed || openChunk === null) return
        closed = true
        const sealed = yield* sealState(file, sql, indexPath, tail, fileHash, member)
        tail = sealed
      }).pipe(
        lock.withPermits(1),
        Effect.catchAll((e) => Effect.logWarning(`backup ${dataPath}: chunk not sealed at close (${e._tag}); it will be sealed on next open`))
      )
    )

    const reader = makeReader(opened)
    return {
      dataPath,
      indexPath,
      recovery,
      reader,
      append: (it, ts) => lock.withPermits(1)(Effect.map(appendLines([it], ts), (r) => r[0]!)),
      appendAll: (items, ts) => (items.length === 0 ? Effect.succeed([]) : lock.withPermits(1)(appendLines(items, ts)))
    } satisfies BackupWriter
  })

