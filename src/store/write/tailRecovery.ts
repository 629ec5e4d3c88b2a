/**
 * Bringing the end of a data file to a known, sealed state on open for append.
 *
 * Fast path (our state row names the last chunk): O(1). Bytes past the acknowledged end were
 * never acknowledged (a crash mid-APPLY) and are cut off; an unsealed member is completed
 * with an empty final block and its trailer; a sealed one is checked against its trailer.
 *
 * Slow path (index written or rebuilt by the C tools): Cyrus's quick verify of the last chunk,
 * done while hashing the file once to rebuild our state. An unindexed tail after the last
 * member (what a crashed C backupd leaves, docs/gaps.md G20) is cut off.
 */
import { Effect } from "effect"
import type { LockedDataFile } from "../dataFileLock.js"
import { BackupCorrupt, ioError, type BackupIndexError, type BackupIoError } from "../errors.js"
import { readChunkState, writeChunkState, type ChunkState } from "../index/ChunkState.js"
import { indexQueries } from "../index/queries.js"
import type { ChunkRow } from "../index/rows.js"
import { crc32, SEAL_LENGTH, sealBytes, TRAILER_LENGTH } from "../format/gzipMember.js"
import { indexError, inTransaction, type Sql } from "../index/db.js"
import { fileSize, inflateMember, readExact, readRange } from "../format/memberReader.js"
import { syncData, truncateTo, writeRaw } from "./segmentWriter.js"
import { writeMemberDigest, type MemberDigest } from "./MemberDigest.js"
import { newSha1, peekDigest, saveState, stateFromHex, stateToHex, type Sha1 } from "../format/sha1State.js"

export interface RecoveryReport {
  /** What was done, for logs: "clean", "truncated", "sealed", "rebuilt". */
  readonly actions: ReadonlyArray<string>
  readonly state: ChunkState
  readonly last: ChunkRow | undefined
}

type RecoveryError = BackupCorrupt | BackupIoError | BackupIndexError

const corrupt = (path: string, message: string) => Effect.fail(new BackupCorrupt({ path, message }))

const emptyState = (h: Sha1): ChunkState => ({
  chunkId: null,
  sealed: true,
  endOffset: 0,
  length: 0,
  crc: 0,
  dataState: stateToHex(saveState(h)),
  fileState: stateToHex(saveState(h)),
  lastTs: 0
})

/**
 * Seals the unsealed member described by `st` (whose end must be the file's end). `member`:
 * the writer's digests of that member so far, completed with the seal and recorded with it.
 */
export const sealState = (file: LockedDataFile, sql: Sql, indexPath: string, st: ChunkState, fileHash: Sha1, member?: MemberDigest) =>
  Effect.gen(function*() {
    const bytes = sealBytes(st.crc, st.length)
    yield* writeRaw(file.fd, file.path, st.endOffset, bytes, fileHash)
    yield* syncData(file.fd, file.path)
    const sealed: ChunkState = { ...st, sealed: true, endOffset: st.endOffset + SEAL_LENGTH, fileState: stateToHex(saveState(fileHash)) }
    member?.update(bytes)
    const digest = member !== undefined && st.chunkId !== null ? writeMemberDigest(sql, st.chunkId, member, sealed.endOffset) : Effect.void
    yield* inTransaction(sql, indexPath, Effect.zipRight(writeChunkState(sql, sealed), digest)).pipe(Effect.mapError(indexError(indexPath)))
    return sealed
  })

export const recoverTail = (
  file: LockedDataFile,
  sql: Sql,
  indexPath: string
): Effect.Effect<RecoveryReport, RecoveryError> =>
  Effect.gen(function*() {
    const st = yield* readChunkState(sql).pipe(Effect.mapError(indexError(indexPath)))
    const last = yield* indexQueries(sql, indexPath).latestChunk
    const size = yield* fileSize(file.fd, file.path)
    const actions: Array<string> = []

    if (st !== undefined && st.chunkId === (last?.id ?? null)) {
      if (size < st.endOffset) {
        return yield* corrupt(file.path, `data file has ${size} bytes, less than the ${st.endOffset} acknowledged`)
      }
      if (size > st.endOffset) {
        yield* truncateTo(file.fd, file.path, st.endOffset)
        actions.push("truncated")
      }
      if (!st.sealed) {
        const h = yield* newSha1
        h.load(stateFromHex(st.fileState))
        const sealed = yield* sealState(file, sql, indexPath, st, h)
        actions.push("sealed")
        return { actions, state: sealed, last }
      }
      if (last !== undefined) {
        const trailer = yield* Effect.tryPromise({
          try: () => readExact(file.fd, st.endOffset - TRAILER_LENGTH, TRAILER_LENGTH),
          catch: ioError(file.path, "read")
        })
        if (
          trailer.length !== TRAILER_LENGTH ||
          trailer.readUInt32LE(0) !== st.crc >>> 0 ||
          trailer.readUInt32LE(4) !== st.length % 0x100000000 ||
          last.length !== st.length
        ) {
          return yield* corrupt(file.path, `last chunk ${last.id} does not end with the recorded gzip trailer`)
        }
      }
      if (size > st.endOffset) yield* syncData(file.fd, file.path)
      return { actions: actions.length ? actions : ["clean"], state: st, last }
    }

    // Slow path: no usable state row.
    const fileHash = yield* newSha1
    if (last === undefined) {
      if (size > 0) {
        yield* truncateTo(file.fd, file.path, 0)
        yield* syncData(file.fd, file.path)
        actions.push("truncated")
      }
      const state = emptyState(fileHash)
      yield* inTransaction(sql, indexPath, writeChunkState(sql, state)).pipe(Effect.mapError(indexError(indexPath)))
      return { actions: [...actions, "rebuilt"], state, last }
    }
    if (last.length === null || last.fileSha1 === null || last.dataSha1 === null) {
      return yield* corrupt(file.path, `last chunk ${last.id} was never finished`)
    }
    const hashRange = (from: number, to: number) =>
      Effect.tryPromise({
        try: async () => {
          for await (const b of readRange(file.fd, from, to)) fileHash.update(b)
        },
        catch: ioError(file.path, "read")
      })
    yield* hashRange(0, last.offset)
    if (peekDigest(fileHash) !== last.fileSha1) {
      return yield* corrupt(file.path, `chunk ${last.id}: file_sha1 mismatch`)
    }
    const dataHash = yield* newSha1
    const member = yield* Effect.tryPromise({
      try: async () => {
        let length = 0
        let crc = 0
        const it = inflateMember(file.fd, last.offset)
        for (;;) {
          const r = await it.next()
          if (r.done) return { end: r.value, length, crc }
          length += r.value.length
          crc = crc32(r.value, crc)
          dataHash.update(r.value)
        }
      },
      catch: (e) => new BackupCorrupt({ path: file.path, message: `chunk ${last.id}: ${(e as Error).message ?? String(e)}` })
    })
    const dataSha1 = peekDigest(dataHash)
    if (member.length !== last.length || dataSha1 !== last.dataSha1) {
      return yield* corrupt(file.path, `chunk ${last.id}: length or data_sha1 mismatch`)
    }
    if (!member.end.complete || member.end.crc32 !== member.crc >>> 0 || member.end.isize !== member.length % 0x100000000) {
      return yield* corrupt(file.path, `chunk ${last.id}: gzip member has no trailer`)
    }
    yield* hashRange(last.offset, member.end.end)
    if (size > member.end.end) {
      yield* truncateTo(file.fd, file.path, member.end.end)
      yield* syncData(file.fd, file.path)
      actions.push("truncated")
    }
    const state: ChunkState = {
      chunkId: last.id,
      sealed: true,
      endOffset: member.end.end,
      length: member.length,
      crc: member.crc,
      dataState: stateToHex(saveState(dataHash)),
      fileState: stateToHex(saveState(fileHash)),
      lastTs: Math.max(last.tsStart, last.tsEnd ?? 0)
    }
    yield* inTransaction(sql, indexPath, writeChunkState(sql, state)).pipe(Effect.mapError(indexError(indexPath)))
    return { actions: [...actions, "rebuilt"], state, last }
  })
