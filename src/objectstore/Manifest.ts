/**
 * Manifests: immutable, sequenced objects per user that say which chunk objects, in which
 * order, make the user's data file (docs/storage.md, "Manifests"). A `full` manifest lists
 * every chunk; an `append` manifest lists only the chunks added after its `base` manifest
 * (the file grew, nothing before `start` changed). Resolving walks from a manifest back to
 * the nearest full one and checks that the pieces fit end to end.
 */
import { Either, ParseResult, Schema } from "effect"
import type { ManifestKind } from "./Naming.js"

export const MANIFEST_FORMAT = "cyrus-backupd-manifest"
export const MANIFEST_VERSION = 1
/** A full manifest is written at least every this many manifests, so a chain stays short. */
export const MAX_CHAIN = 32

const Hex = (n: number) => Schema.String.pipe(Schema.pattern(new RegExp(`^[0-9a-f]{${n}}$`)))
const Count = Schema.Int.pipe(Schema.nonNegative())

/** One sealed chunk: where it is in the data file, what its index row says, and its object. */
export const ChunkEntry = Schema.Struct({
  /** The chunk's id in the index when it was uploaded (reindex gives the same ids). */
  id: Schema.Int.pipe(Schema.positive()),
  /** Offset of the gzip member in the data file. */
  offset: Count,
  /** Bytes of the member (object size before encryption). */
  size: Schema.Int.pipe(Schema.positive()),
  /** SHA-256 of the member bytes. */
  sha256: Hex(64),
  /** The index row: uncompressed length, data SHA-1, SHA-1 of the file before the member, times. */
  length: Count,
  dataSha1: Hex(40),
  fileSha1: Hex(40),
  tsStart: Schema.Int,
  tsEnd: Schema.Int,
  /** Object name relative to the prefix. */
  object: Schema.String,
  /** Size of the object in the store (the member, or its age ciphertext). */
  stored: Schema.Int.pipe(Schema.positive()),
  /** The store's ETag, quotes included, as HEAD returns it. */
  etag: Schema.String,
  versionId: Schema.optional(Schema.String)
})
export type ChunkEntry = typeof ChunkEntry.Type

/** An object compaction no longer needs, kept until `droppedAt` + backup_retention. */
export const DroppedObject = Schema.Struct({
  object: Schema.String,
  /** ISO 8601. */
  droppedAt: Schema.String,
  versionId: Schema.optional(Schema.String)
})
export type DroppedObject = typeof DroppedObject.Type

/**
 * The data file at the end of the chunks the resolved chain lists: its length, its SHA-1
 * (checked after the last chunk of a pull, so every byte is covered by the SHA-1 chain of
 * `fileSha1`s), and, when the writer's index had it at exactly that end, the resumable state
 * of that SHA-1 (hash-wasm's saved state, hex, as the index's backupd_chunk_state keeps it),
 * so a rebuilt index can be given it without hashing the file a second time.
 */
export const ManifestEnd = Schema.Struct({
  offset: Count,
  fileSha1: Hex(40),
  fileState: Schema.optional(Schema.String.pipe(Schema.pattern(/^(?:[0-9a-f]{2})+$/)))
})
export type ManifestEnd = typeof ManifestEnd.Type

export const Manifest = Schema.Struct({
  format: Schema.Literal(MANIFEST_FORMAT),
  version: Schema.Literal(MANIFEST_VERSION),
  /** The user id: the backups.db key. */
  user: Schema.String,
  seq: Schema.Int.pipe(Schema.positive()),
  kind: Schema.Literal("full", "append"),
  /** append: the seq of the manifest this one continues. */
  base: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Offset in the data file where this manifest's chunks start (0 for full). */
  start: Count,
  /** ISO 8601 time of writing. */
  created: Schema.String,
  /** servername of the writing host. */
  host: Schema.String,
  /** The data file path as backups.db had it on the writing host. */
  dataFile: Schema.String,
  chunks: Schema.Array(ChunkEntry),
  /** full only: objects dropped by compaction and not yet deleted. */
  dropped: Schema.optional(Schema.Array(DroppedObject)),
  /** The file after the chain's last chunk (absent in manifests written before it existed). */
  end: Schema.optional(ManifestEnd)
})
export type Manifest = typeof Manifest.Type

const ManifestJson = Schema.parseJson(Manifest)

export const encodeManifest = (m: Manifest): Uint8Array => Buffer.from(JSON.stringify(m) + "\n", "utf8")

export const decodeManifest = (bytes: Uint8Array): Either.Either<Manifest, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(ManifestJson)(Buffer.from(bytes).toString("utf8")), (e) =>
    ParseResult.TreeFormatter.formatErrorSync(e).split("\n").slice(0, 4).join(" ")
  )

/** Where the last manifest written for a user stands; the writer keeps it to write the next. */
export interface ManifestHead {
  readonly seq: number
  readonly kind: ManifestKind
  /** Manifests from the nearest full one up to this one (1 for a full manifest). */
  readonly chainLength: number
  /** Chunks the resolved manifest lists. */
  readonly chunkCount: number
  /** End offset of the last chunk: the data file length the manifest describes. */
  readonly end: number
}

/** A manifest chain resolved into the state it describes. */
export interface ResolvedManifest {
  readonly user: string
  readonly dataFile: string
  readonly host: string
  readonly created: string
  readonly head: ManifestHead
  /** The newest manifest's object name, relative to the prefix (its lock is extended by push). */
  readonly object: string
  /** Every chunk of the data file, in file order, end to end from offset 0. */
  readonly chunks: ReadonlyArray<ChunkEntry>
  readonly dropped: ReadonlyArray<DroppedObject>
  /** The newest manifest's `end`, when it has one. */
  readonly end?: ManifestEnd | undefined
}

export const endOf = (chunks: ReadonlyArray<{ readonly offset: number; readonly size: number }>): number => {
  const last = chunks[chunks.length - 1]
  return last === undefined ? 0 : last.offset + last.size
}

/** Chunks must follow each other without gap or overlap from `start`; returns a problem or undefined. */
export const checkContiguous = (chunks: ReadonlyArray<ChunkEntry>, start: number): string | undefined => {
  let at = start
  for (const c of chunks) {
    if (c.offset !== at) return `chunk ${c.id} starts at ${c.offset}, expected ${at}`
    at += c.size
  }
  return undefined
}

/**
 * Resolves a chain given newest first (`chain[0]` the wanted manifest, the last one full).
 * Left: why the chain does not fit.
 */
export const resolveChain = (chain: ReadonlyArray<Manifest>): Either.Either<Omit<ResolvedManifest, "object">, string> => {
  const top = chain[0]
  const bottom = chain[chain.length - 1]
  if (top === undefined || bottom === undefined) return Either.left("empty manifest chain")
  if (bottom.kind !== "full") return Either.left(`manifest ${bottom.seq} is not full and has no base`)
  const chunks: Array<ChunkEntry> = []
  for (let i = chain.length - 1; i >= 0; i--) {
    const m = chain[i]!
    if (m.user !== top.user) return Either.left(`manifest ${m.seq} is for another user`)
    if (i < chain.length - 1) {
      const below = chain[i + 1]!
      if (m.kind !== "append" || m.base !== below.seq) return Either.left(`manifest ${m.seq} does not continue manifest ${below.seq}`)
      if (m.start !== endOf(chunks)) return Either.left(`manifest ${m.seq} starts at ${m.start}, its base ends at ${endOf(chunks)}`)
    } else if (m.start !== 0) {
      return Either.left(`full manifest ${m.seq} starts at ${m.start}, not 0`)
    }
    const gap = checkContiguous(m.chunks, m.start)
    if (gap !== undefined) return Either.left(`manifest ${m.seq}: ${gap}`)
    chunks.push(...m.chunks)
  }
  if (top.end !== undefined && top.end.offset !== endOf(chunks)) {
    return Either.left(`manifest ${top.seq} says the file ends at ${top.end.offset}, its chunks end at ${endOf(chunks)}`)
  }
  return Either.right({
    user: top.user,
    dataFile: top.dataFile,
    host: top.host,
    created: top.created,
    head: { seq: top.seq, kind: top.kind, chainLength: chain.length, chunkCount: chunks.length, end: endOf(chunks) },
    chunks,
    dropped: bottom.dropped ?? [],
    ...(top.end === undefined ? {} : { end: top.end })
  })
}
