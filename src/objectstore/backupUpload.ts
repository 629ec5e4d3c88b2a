/**
 * Bringing one backup's copy in the bucket up to date, in three steps so that a caller can
 * hold the data file's lock only where it must (docs/storage.md, "Driving the library"):
 *
 * 1. `planUpload` (reads the index: under the lock, or on a read-only connection): every
 *    chunk with its member range, whether it is sealed, and the entry already recorded for it;
 *    the last manifest head and the dropped list.
 * 2. `runUpload` (network): uploads the sealed chunks without a recorded entry, reading the
 *    data file through the descriptor `fd` (sealed byte ranges never change), and writes the
 *    next manifest. Nothing is recorded yet.
 * 3. `recordUpload` (under the lock): checks that the index still has the planned chunks
 *    (a compaction may have replaced the file meanwhile) and records the manifest's chunks and
 *    head in one transaction.
 *
 * `ctl_backups push` runs all three under its lock; backupd runs 1 and 3 under short locks and
 * 2 without (src/service/Uploader.ts).
 */
import { Effect, Option, Schema } from "effect"
import { digestOfSavedState, indexQueries, readMemberDigests, type ChunkRow, type MemberDigests } from "../store/index.js"
import type { ObjectStoreError } from "./errors.js"
import { endOf, ManifestEnd, type ChunkEntry, type DroppedObject, type ManifestHead } from "./Manifest.js"
import type { ObjectStoreShape } from "./ObjectStore.js"
import {
  chunkMembers,
  entryMatches,
  previousHead,
  readTail,
  readUploadState,
  recordManifest,
  type ChunkTail,
  type LocalUploadState,
  type SealedChunk,
  type Sql
} from "./localState.js"

export interface PlannedChunk extends SealedChunk {
  /** The entry a recorded manifest already lists for this chunk (same offset, size, content). */
  readonly known: ChunkEntry | undefined
}

export interface UploadPlan {
  readonly user: string
  readonly dataPath: string
  readonly chunks: ReadonlyArray<PlannedChunk>
  readonly head: ManifestHead | undefined
  readonly headObject: string | undefined
  readonly dropped: ReadonlyArray<DroppedObject>
  /** The index's chunk-state row (its resumable file SHA-1 gives the manifest's `end.fileState`). */
  readonly tail?: ChunkTail | undefined
}

/** What is not in the bucket yet: sealed chunks without a recorded entry (the open chunk is never counted). */
export interface Pending {
  readonly chunks: number
  readonly bytes: number
}

export const pendingOf = (plan: Pick<UploadPlan, "chunks">): Pending => {
  let chunks = 0
  let bytes = 0
  for (const c of plan.chunks) {
    if (!c.sealed || c.known !== undefined) continue
    chunks++
    bytes += c.meta.size
  }
  return { chunks, bytes }
}

/**
 * Every chunk with its member range, whether it is sealed, and the entry the recorded state
 * has for it (only when it still describes the chunk): the one rule behind both the plan and
 * the observers' pending counts (pending.ts), whichever way the index was read.
 */
export const plannedChunks = (rows: ReadonlyArray<ChunkRow>, tail: ChunkTail | undefined, state: LocalUploadState, fileEnd: number): ReadonlyArray<PlannedChunk> =>
  chunkMembers(rows, tail, fileEnd).map((c): PlannedChunk => {
    const k = state.objects.get(c.meta.id)
    return { ...c, known: k !== undefined && entryMatches(k, c.meta) ? k.entry : undefined }
  })

/** The writer's digests of each chunk still described by its row (same member, same chunk row). */
const withDigests = (chunks: ReadonlyArray<PlannedChunk>, digests: ReadonlyMap<number, MemberDigests>): ReadonlyArray<PlannedChunk> =>
  digests.size === 0
    ? chunks
    : chunks.map((c) => {
        const d = digests.get(c.meta.id)
        const m = c.meta
        if (d === undefined || !c.sealed || d.offset !== m.offset || d.size !== m.size || d.dataSha1 !== m.dataSha1 || d.fileSha1 !== m.fileSha1) return c
        return { ...c, meta: { ...m, digests: { partSize: d.partSize, sha256: d.sha256, parts: d.parts } } }
      })

/** Step 1: the plan, from the index on `sql` and the data file's end (`fileEnd`, for indexes without our state row). */
export const planUpload = (sql: Sql, indexPath: string, user: string, dataPath: string, fileEnd: number): Effect.Effect<UploadPlan, unknown> =>
  Effect.gen(function*() {
    const rows = yield* indexQueries(sql, indexPath).chunks
    const tail = yield* readTail(sql)
    const state = yield* readUploadState(sql)
    const digests = yield* readMemberDigests(sql)
    const chunks = withDigests(plannedChunks(rows, tail, state, fileEnd), digests)
    const head = Option.getOrUndefined(previousHead(state))
    // a head that does not describe the recorded chunks (rows lost or changed) is not trusted
    const consistent = head !== undefined && chunks.filter((c) => c.known !== undefined).length === head.chunkCount
    return { user, dataPath, chunks, head: consistent ? head : undefined, headObject: state.head?.object, dropped: state.dropped, tail }
  })

export interface UploadOutcome {
  readonly plan: UploadPlan
  /** Every sealed chunk up to the first one not uploaded, in file order, with its entry. */
  readonly entries: ReadonlyArray<{ readonly meta: SealedChunk["meta"]; readonly entry: ChunkEntry }>
  /** Chunks sent now / found already in the store. */
  readonly uploaded: number
  readonly uploadedBytes: number
  readonly reused: number
  readonly manifest: { readonly head: ManifestHead; readonly object: string; readonly written: boolean } | undefined
}

const isManifestEnd = Schema.is(ManifestEnd)

/**
 * The manifest's `end` for the first `count` planned chunks: the file SHA-1 where they end is
 * the next chunk's file_sha1 (the open chunk's, when one follows; chunkMembers makes each
 * chunk end where the next begins), or, where they end at the chunk-state row's sealed end,
 * the digest of its saved state, which then goes along. Absent when the index has neither (an
 * index Cyrus's tools built), or what it has would not make a valid manifest field.
 */
export const manifestEnd = (plan: Pick<UploadPlan, "chunks" | "tail">, count: number): Effect.Effect<ManifestEnd | undefined> =>
  Effect.gen(function*() {
    const listed = plan.chunks.slice(0, count)
    const offset = endOf(listed.map((c) => c.meta))
    const tail = plan.tail
    if (tail !== undefined && tail.sealed && tail.fileState !== undefined && tail.endOffset === offset && tail.chunkId === listed[listed.length - 1]?.meta.id) {
      const fileSha1 = yield* digestOfSavedState(tail.fileState)
      const end = { offset, fileSha1, fileState: tail.fileState }
      if (isManifestEnd(end)) return end
    }
    const next = plan.chunks[count]
    const end = next === undefined ? undefined : { offset, fileSha1: next.meta.fileSha1 }
    return isManifestEnd(end) ? end : undefined
  })

/**
 * Step 2: uploads what the plan lacks through `fd` and writes the next manifest (full when
 * `full`, or when the plan has no trusted head). `dropped` replaces the plan's list (compaction).
 */
export const runUpload = (
  store: ObjectStoreShape,
  plan: UploadPlan,
  fd: number,
  options: {
    readonly full?: boolean | undefined
    /**
     * Objects the data file used before (compaction): those the new chunks do not use are
     * added to the dropped list with `droppedAt` = now, and a full manifest is written.
     */
    readonly dropFrom?: ReadonlyArray<{ readonly object: string; readonly versionId?: string | undefined }> | undefined
    /** Dropped objects recorded before (compaction's new index has none), kept with their times. */
    readonly carryDropped?: ReadonlyArray<DroppedObject> | undefined
    readonly now?: Date | undefined
  } = {}
): Effect.Effect<UploadOutcome, ObjectStoreError> =>
  Effect.gen(function*() {
    const entries: Array<{ meta: SealedChunk["meta"]; entry: ChunkEntry }> = []
    let uploaded = 0
    let uploadedBytes = 0
    let reused = 0
    for (const c of plan.chunks) {
      if (!c.sealed) break
      if (c.known !== undefined) {
        entries.push({ meta: c.meta, entry: c.known })
        continue
      }
      const up = yield* store.uploadChunk(plan.user, { fd, path: plan.dataPath }, c.meta)
      if (up.reused) reused++
      else {
        uploaded++
        uploadedBytes += c.meta.size
      }
      entries.push({ meta: c.meta, entry: up.entry })
    }
    const used = new Set(entries.map((e) => e.entry.object))
    const at = (options.now ?? new Date()).toISOString()
    const carried = [...plan.dropped, ...(options.carryDropped ?? []).filter((d) => !plan.dropped.some((p) => p.object === d.object))]
    const known = new Set(carried.map((d) => d.object))
    const newlyDropped = (options.dropFrom ?? [])
      .filter((o) => !used.has(o.object) && !known.has(o.object))
      .map((o): DroppedObject => ({ object: o.object, droppedAt: at, ...(o.versionId === undefined ? {} : { versionId: o.versionId }) }))
    const dropped = [...carried.filter((d) => !used.has(d.object)), ...newlyDropped]
    const full = options.full === true || options.dropFrom !== undefined
    const nothingNew = entries.length === plan.head?.chunkCount && !full
    if (entries.length === 0 || (nothingNew && plan.headObject !== undefined)) {
      return { plan, entries, uploaded, uploadedBytes, reused, manifest: undefined }
    }
    const end = yield* manifestEnd(plan, entries.length)
    const m = yield* store.putManifest({
      user: plan.user,
      dataFile: plan.dataPath,
      chunks: entries.map((e) => e.entry),
      dropped,
      previous: plan.head,
      full,
      ...(end === undefined ? {} : { end })
    })
    return { plan: { ...plan, dropped }, entries, uploaded, uploadedBytes, reused, manifest: m }
  })

/**
 * Step 3: records the outcome if the index still has the planned chunks; returns whether it
 * did. Under the data file's lock.
 */
export const recordUpload = (sql: Sql, indexPath: string, outcome: UploadOutcome): Effect.Effect<boolean, unknown> =>
  Effect.gen(function*() {
    if (outcome.manifest === undefined) return true
    const rows = yield* indexQueries(sql, indexPath).chunks
    const byId = new Map(rows.map((r) => [r.id, r]))
    for (const e of outcome.entries) {
      const r = byId.get(e.meta.id)
      if (r === undefined || r.offset !== e.meta.offset || (r.dataSha1 ?? "") !== e.meta.dataSha1 || (r.fileSha1 ?? "") !== e.meta.fileSha1) return false
    }
    yield* recordManifest(sql, outcome.entries, outcome.manifest.head, outcome.manifest.object, outcome.plan.dropped)
    return true
  })
