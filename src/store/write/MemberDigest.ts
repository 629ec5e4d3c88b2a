/**
 * SHA-256 of a chunk's gzip member, whole and per `partSize` slice, taken from the bytes as
 * the writer puts them into the data file, and kept in our `backupd_member_digest` table when
 * the member is sealed (docs/storage.md, "Member digests"). An upload to an object store
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

export const MEMBER_DIGEST_TABLE = "backupd_member_digest"

const CREATE = `CREATE TABLE IF NOT EXISTS ${MEMBER_DIGEST_TABLE}( chunk_id INTEGER PRIMARY KEY, offset INTEGER NOT NULL, size INTEGER NOT NULL, data_sha1 TEXT NOT NULL, file_sha1 TEXT NOT NULL, part_size INTEGER NOT NULL, sha256 TEXT NOT NULL, part_sha256 TEXT NOT NULL );`

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

interface Mark {
  readonly whole: Hash
  readonly part: Hash
  readonly inPart: number
  readonly done: number
  readonly size: number
}

export class MemberDigest {
  private whole: Hash = createHash("sha256")
  private part: Hash = createHash("sha256")
  private inPart = 0
  private readonly done: Array<string> = []
  private size = 0

  constructor(readonly offset: number, readonly partSize: number) {}

  update(b: Uint8Array): void {
    this.whole.update(b)
    this.size += b.length
    for (let at = 0; at < b.length;) {
      const take = Math.min(b.length - at, this.partSize - this.inPart)
      this.part.update(at === 0 && take === b.length ? b : b.subarray(at, at + take))
      this.inPart += take
      at += take
      if (this.inPart === this.partSize) {
        this.done.push(this.part.digest("hex"))
        this.part = createHash("sha256")
        this.inPart = 0
      }
    }
  }

  /** Where an APPLY begins. */
  mark(): Mark {
    return { whole: this.whole.copy(), part: this.part.copy(), inPart: this.inPart, done: this.done.length, size: this.size }
  }

  /** Back to `m` (the APPLY after it was rolled back). */
  restore(m: Mark): void {
    this.whole = m.whole
    this.part = m.part
    this.inPart = m.inPart
    this.done.length = m.done
    this.size = m.size
  }

  /** The digests of the member so far (its bytes from `offset` on); the hashes are spent. */
  finish(): { readonly size: number; readonly sha256: string; readonly parts: ReadonlyArray<string> } {
    const sha256 = this.whole.digest("hex")
    const parts = this.size <= this.partSize ? [] : [...this.done, ...(this.inPart > 0 ? [this.part.digest("hex")] : [])]
    return { size: this.size, sha256, parts }
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
