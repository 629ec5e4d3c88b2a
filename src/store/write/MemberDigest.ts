/**
 * SHA-256 of a chunk's gzip member, whole and per `partSize` slice, taken from the bytes as
 * the writer puts them into the data file, and kept in our `backupd_member_digest` table when
 * the member is sealed (docs/storage.md, "Our table: `backupd_member_digest`"). An upload to an object store
 * names a clear object by the whole digest and signs each multipart part with its slice's
 * digest; with the row it needs no pass over the file before it sends, and the store then
 * checks what it receives against what was written.
 *
 * Only this process can add to a member (a chunk left open is sealed, never continued, by the
 * next opener), so the hashes live in memory; `mark` / `restore` take them back to where an
 * APPLY that failed began. A member sealed by someone else (tail recovery) gets no row.
 */
import { createHash, type Hash } from "node:crypto"
import { Effect } from "effect"
import { query, run, type Sql } from "../index/db.js"

const MEMBER_DIGEST_TABLE = "backupd_member_digest"

const CREATE = `CREATE TABLE IF NOT EXISTS ${MEMBER_DIGEST_TABLE}( chunk_id INTEGER PRIMARY KEY, offset INTEGER NOT NULL, size INTEGER NOT NULL, data_sha1 TEXT NOT NULL, file_sha1 TEXT NOT NULL, part_size INTEGER NOT NULL, sha256 TEXT NOT NULL, part_sha256 TEXT NOT NULL );`

/** What a writer is asked to record (BackupWriter's `memberDigests`). */
export interface MemberDigestOptions {
  readonly partSize: number
}

/** What the row says about one sealed member. */
export interface MemberDigests {
  readonly chunkId: number
  readonly offset: number
  readonly size: number
  /** The chunk row's data_sha1 and file_sha1 when the member was sealed. */
  readonly dataSha1: string
  readonly fileSha1: string
  readonly partSize: number
  /** SHA-256 (hex) of the whole member. */
  readonly sha256: string
  /** SHA-256 (hex) of each `partSize` slice, the last one shorter; empty when the member fits in one part. */
  readonly parts: ReadonlyArray<string>
}

/**
 * SHA-256 (hex) of each `partSize` slice of what it is fed, the last one shorter: the writer's
 * part digests here, and the naming pass of an upload without them (src/objectstore).
 * `mark` / `restore` return to an earlier point; `digests` spends the open slice's hash.
 */
export const partDigests = (partSize: number) => {
  const done: Array<string> = []
  let h: Hash = createHash("sha256")
  let inPart = 0
  return {
    update: (b: Uint8Array): void => {
      for (let at = 0; at < b.byteLength;) {
        const take = Math.min(b.byteLength - at, partSize - inPart)
        h.update(at === 0 && take === b.byteLength ? b : b.subarray(at, at + take))
        at += take
        inPart += take
        if (inPart === partSize) {
          done.push(h.digest("hex"))
          h = createHash("sha256")
          inPart = 0
        }
      }
    },
    mark: () => ({ h: h.copy(), inPart, done: done.length }),
    restore: (m: { readonly h: Hash; readonly inPart: number; readonly done: number }): void => {
      h = m.h
      inPart = m.inPart
      done.length = m.done
    },
    digests: (): ReadonlyArray<string> => (inPart > 0 ? [...done, h.digest("hex")] : [...done])
  }
}

export class MemberDigest {
  private whole: Hash = createHash("sha256")
  private readonly parts: ReturnType<typeof partDigests>
  private size = 0

  constructor(readonly offset: number, readonly partSize: number) {
    this.parts = partDigests(partSize)
  }

  update(b: Uint8Array): void {
    this.whole.update(b)
    this.parts.update(b)
    this.size += b.length
  }

  /** Where an APPLY begins. */
  mark() {
    return { whole: this.whole.copy(), parts: this.parts.mark(), size: this.size }
  }

  /** Back to `m` (the APPLY after it was rolled back). */
  restore(m: ReturnType<MemberDigest["mark"]>): void {
    this.whole = m.whole
    this.parts.restore(m.parts)
    this.size = m.size
  }

  /** The digests of the member so far (its bytes from `offset` on); the hashes are spent. */
  finish(): { readonly size: number; readonly sha256: string; readonly parts: ReadonlyArray<string> } {
    const sha256 = this.whole.digest("hex")
    const parts = this.parts.digests()
    return { size: this.size, sha256, parts: this.size <= this.partSize ? [] : parts }
  }
}

/**
 * Records the sealed member of chunk `chunkId`, which ends at `end` (inside the seal's
 * transaction); nothing when the digests did not see every byte up to `end`.
 */
export const writeMemberDigest = (sql: Sql, chunkId: number, d: MemberDigest, end: number) =>
  Effect.gen(function*() {
    const { size, sha256, parts } = d.finish()
    if (d.offset + size !== end) return
    yield* run(sql, CREATE)
    yield* run(
      sql,
      `INSERT OR REPLACE INTO ${MEMBER_DIGEST_TABLE} (chunk_id, offset, size, data_sha1, file_sha1, part_size, sha256, part_sha256) SELECT id, offset, ?, data_sha1, file_sha1, ?, ?, ? FROM chunk WHERE id = ? AND offset = ?;`,
      [size, d.partSize, sha256, parts.join(" "), chunkId, d.offset]
    )
  })

const num = (v: unknown) => Number(v)

/** Every recorded member, by chunk id (empty when the table is absent). */
export const readMemberDigests = (sql: Sql) =>
  Effect.gen(function*() {
    const t = yield* query(sql, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?;", [MEMBER_DIGEST_TABLE])
    const out = new Map<number, MemberDigests>()
    if (t.length === 0) return out
    const rows = yield* query(sql, `SELECT chunk_id, offset, size, data_sha1, file_sha1, part_size, sha256, part_sha256 FROM ${MEMBER_DIGEST_TABLE};`)
    for (const r of rows) {
      const parts = String(r.part_sha256)
      out.set(num(r.chunk_id), {
        chunkId: num(r.chunk_id),
        offset: num(r.offset),
        size: num(r.size),
        dataSha1: String(r.data_sha1),
        fileSha1: String(r.file_sha1),
        partSize: num(r.part_size),
        sha256: String(r.sha256),
        parts: parts === "" ? [] : parts.split(" ")
      })
    }
    return out
  })
