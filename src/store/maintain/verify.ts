/**
 * Checking a backup's index against its data file, as Cyrus's `backup_verify` does
 * (docs/tools.md, `verify`), with the same levels: the last chunk's checksums (quick), every
 * chunk's checksums, message links, message GUIDs and mailbox links (full = all of them).
 *
 * Unlike Cyrus, verification does not stop at the first failure: every problem is returned
 * as data, tagged with its chunk, worded like `ctl_backups verify` prints it where Cyrus has
 * wording. The data file is read once per checked chunk (plus one running SHA-1 over the
 * file), never loaded whole; message bytes are hashed as they stream by.
 */
import { createHash, type Hash } from "node:crypto"
import { Effect } from "effect"
import { filesOf } from "../../protocol/dlist/value.js"
import { openBackup, type BackupFiles } from "../openBackup.js"
import type { LockedDataFile } from "../dataFileLock.js"
import { getAtom, getDate, getList, getNum32, getNum64, listItems } from "../format/dlistFields.js"
import { ioError, type BackupIndexError, type BackupIoError, type OpenError } from "../errors.js"
import { crc32 } from "../format/gzipMember.js"
import { indexQueries } from "../index/queries.js"
import type { ChunkRow, MailboxRow, MessageRow, RecordRow } from "../index/rows.js"
import { feedRange, fileSize } from "../format/memberReader.js"
import { walkChunk, type ChunkLine } from "../format/chunkLines.js"

/** One of Cyrus's verification checks. */
export type VerifyCheck = "lastChecksum" | "allChecksums" | "messageLinks" | "mailboxLinks" | "messageGuids"

/** What `backupd` and `ctl_backups list/stat/lock` run on open. */
export const VERIFY_QUICK: ReadonlySet<VerifyCheck> = new Set(["lastChecksum"])
/** What `ctl_backups verify` runs. */
export const VERIFY_FULL: ReadonlySet<VerifyCheck> = new Set(["allChecksums", "messageLinks", "mailboxLinks", "messageGuids"])

export type VerifyLevel = "quick" | "full" | ReadonlySet<VerifyCheck>

export interface VerifyProblem {
  /** The chunk the problem was found in (null: not tied to one chunk). */
  readonly chunkId: number | null
  readonly check: VerifyCheck
  /** Human-readable, Cyrus's wording where it has one. */
  readonly message: string
}

export interface VerifyReport {
  /** The checks that ran. */
  readonly checks: ReadonlyArray<VerifyCheck>
  /** Number of chunk rows in the index. */
  readonly chunks: number
  readonly problems: ReadonlyArray<VerifyProblem>
  readonly ok: boolean
}

export type VerifyError = BackupIndexError | BackupIoError

const checksOf = (level: VerifyLevel): Set<VerifyCheck> => {
  const c = new Set(level === "quick" ? VERIFY_QUICK : level === "full" ? VERIFY_FULL : level)
  // As Cyrus: "all" subsumes "last", and GUID checking subsumes link checking.
  if (c.has("allChecksums")) c.delete("lastChecksum")
  if (c.has("messageGuids")) c.add("messageLinks")
  return c
}

/** A message row as the checks compare it (GUID in lower case, -1 for an offset not recorded). */
interface MessageRef {
  readonly id: number
  readonly guid: string
  readonly offset: number
}

const messageRef = (m: MessageRow): MessageRef => ({ id: m.id, guid: m.guid.toLowerCase(), offset: m.offset ?? -1 })

/** A mailbox row's fields as `mailbox_matches` compares them (32-bit counters unsigned). */
interface MailboxRef {
  readonly uniqueid: string
  readonly mboxname: string
  readonly lastUid: number
  readonly highestmodseq: bigint
  readonly recentuid: number
  readonly recenttime: number
  readonly lastAppenddate: number
  readonly uidvalidity: number
  readonly partition: string | null
  readonly acl: string | null
  readonly options: string | null
  readonly xconvmodseq: bigint
  readonly syncCrc: number
  readonly syncCrcAnnot: number
}

const mailboxRef = (m: MailboxRow): MailboxRef => ({
  uniqueid: m.uniqueid,
  mboxname: m.mboxname,
  lastUid: m.lastUid >>> 0,
  highestmodseq: m.highestmodseq,
  recentuid: m.recentuid >>> 0,
  recenttime: m.recenttime,
  lastAppenddate: m.lastAppenddate,
  uidvalidity: m.uidvalidity >>> 0,
  partition: m.partition,
  acl: m.acl,
  options: m.options,
  xconvmodseq: m.xconvmodseq,
  syncCrc: m.syncCrc >>> 0,
  syncCrcAnnot: m.syncCrcAnnot >>> 0
})

/** A record row's fields as `mailbox_message_matches` compares them. */
interface RecordRef {
  readonly uniqueid: string
  readonly uid: number
  readonly modseq: bigint
  readonly lastUpdated: number
  readonly internaldate: number
  readonly size: number
  readonly guid: string
}

const recordRef = (r: RecordRow): RecordRef => ({
  uniqueid: r.mailboxUniqueid,
  uid: r.uid >>> 0,
  modseq: r.modseq,
  lastUpdated: r.lastUpdated,
  internaldate: r.internaldate,
  size: r.size >>> 0,
  guid: r.guid.toLowerCase()
})

/** Cyrus's `mailbox_matches`: the line's fields against the row (absent optional ones = 0). */
const mailboxMatches = (m: MailboxRef, line: ChunkLine): boolean => {
  const d = line.item.value
  return (
    getAtom(d, "MBOXNAME") === m.mboxname &&
    getNum32(d, "LAST_UID") === m.lastUid &&
    getNum64(d, "HIGHESTMODSEQ") === m.highestmodseq &&
    getNum32(d, "RECENTUID") === m.recentuid &&
    getDate(d, "RECENTTIME") === m.recenttime &&
    getDate(d, "LAST_APPENDDATE") === m.lastAppenddate &&
    getNum32(d, "UIDVALIDITY") === m.uidvalidity &&
    getAtom(d, "PARTITION") === m.partition &&
    getAtom(d, "ACL") === m.acl &&
    getAtom(d, "OPTIONS") === m.options &&
    (getNum64(d, "XCONVMODSEQ") ?? 0n) === m.xconvmodseq &&
    (getNum32(d, "SYNC_CRC") ?? 0) === m.syncCrc &&
    (getNum32(d, "SYNC_CRC_ANNOT") ?? 0) === m.syncCrcAnnot
  )
}

/** Cyrus's `mailbox_message_matches`. */
const recordMatches = (r: RecordRef, rec: Parameters<typeof getAtom>[0]): boolean =>
  getNum64(rec, "MODSEQ") === r.modseq &&
  getNum32(rec, "LAST_UPDATED") === (r.lastUpdated >>> 0) &&
  getNum32(rec, "INTERNALDATE") === (r.internaldate >>> 0) &&
  getNum32(rec, "SIZE") === r.size &&
  getAtom(rec, "GUID")?.toLowerCase() === r.guid

/**
 * A SHA-1 of the data file that only ever moves forward (restarted if asked to go back).
 * node:crypto's (native), not the resumable one the writer saves: a digest so far is a copy's.
 */
const fileHasher = (file: LockedDataFile) => {
  let hash: Hash = createHash("sha1")
  let at = 0
  return (offset: number) =>
    Effect.tryPromise({
      try: async () => {
        if (offset < at) {
          hash = createHash("sha1")
          at = 0
        }
        if (offset > at) at += await feedRange(file.fd, at, offset, (piece) => hash.update(piece))
        return at === offset ? hash.copy().digest("hex") : undefined
      },
      catch: ioError(file.path, "read")
    })
}

/**
 * Verifies a backup whose data file is locked and whose index is open. Problems found are
 * returned in the report; the Effect fails only if the files cannot be read.
 */
export const verifyBackup = (
  { file, sql, indexPath }: BackupFiles,
  level: VerifyLevel = "full"
): Effect.Effect<VerifyReport, VerifyError> =>
  Effect.gen(function*() {
    const checks = checksOf(level)
    const q = indexQueries(sql, indexPath)
    const chunks = yield* q.chunks
    const problems: Array<VerifyProblem> = []
    const report = (): VerifyReport => ({ checks: [...checks], chunks: chunks.length, problems, ok: problems.length === 0 })
    if (chunks.length === 0) return report()

    const size = yield* fileSize(file.fd, file.path)
    const byOffset = [...chunks].sort((a, b) => a.offset - b.offset)
    const nextOffset = new Map<number, number | undefined>(byOffset.map((c, i) => [c.id, byOffset[i + 1]?.offset]))
    const hashTo = fileHasher(file)
    let dataHash: Hash = createHash("sha1")
    const last = chunks[chunks.length - 1]!

    const one = (chunk: ChunkRow, wantChecksums: boolean, wantLines: boolean) =>
      Effect.gen(function*() {
        const add = (check: VerifyCheck, message: string) => problems.push({ chunkId: chunk.id, check, message })
        const checksumCheck: VerifyCheck = checks.has("allChecksums") ? "allChecksums" : "lastChecksum"
        if (wantChecksums) {
          const onDisk = yield* hashTo(chunk.offset)
          if (onDisk === undefined) {
            add(checksumCheck, `chunk ${chunk.id} starts at offset ${chunk.offset}, past the end of the data file (${size} bytes)`)
            return
          }
          if (chunk.fileSha1 !== onDisk) {
            add(checksumCheck, `file checksum mismatch for chunk ${chunk.id}: ${onDisk} on disk, ${chunk.fileSha1 ?? "NULL"} in index`)
          }
        }

        const wantMessages = wantLines && checks.has("messageLinks")
        const wantGuids = wantLines && checks.has("messageGuids")
        const wantMailboxes = wantLines && checks.has("mailboxLinks")
        const messages = wantMessages ? (yield* q.messagesOfChunk(chunk.id)).map(messageRef) : []
        const mailboxes = wantMailboxes ? (yield* q.mailboxesOfChunk(chunk.id)).map(mailboxRef) : []
        const records = wantMailboxes ? (yield* q.recordsOfChunk(chunk.id)).map(recordRef) : []
        if (!wantChecksums && messages.length === 0 && mailboxes.length === 0 && records.length === 0) return

        const messagesAt = new Map<number, Array<MessageRef>>()
        for (const m of messages) messagesAt.set(m.offset, [...(messagesAt.get(m.offset) ?? []), m])
        const foundMessages = new Set<number>()
        const openMailboxes = new Map(mailboxes.map((m) => [m.uniqueid, m]))
        const recordKey = (uniqueid: string, uid: number) => `${uniqueid}\u0000${uid}`
        const openRecords = new Map(records.map((r) => [recordKey(r.uniqueid, r.uid), r]))

        const onLine = (line: ChunkLine) =>
          Effect.sync(() => {
            for (const m of messagesAt.get(line.offset) ?? []) {
              if (line.item.key !== "MESSAGE") continue
              const f = filesOf(line.item.value).find((x) => x.guid.toLowerCase() === m.guid)
              if (f === undefined) continue
              foundMessages.add(m.id)
              if (wantGuids && f.sha1.toLowerCase() !== m.guid) {
                add("messageGuids", `guid mismatch for message ${m.id}`)
              }
            }
            if (line.command !== "APPLY" || line.item.key !== "MAILBOX") return
            const uniqueid = getAtom(line.item.value, "UNIQUEID")
            if (uniqueid === undefined) return
            const mb = openMailboxes.get(uniqueid)
            if (mb !== undefined && mailboxMatches(mb, line)) openMailboxes.delete(uniqueid)
            if (openRecords.size === 0) return
            const recs = getList(line.item.value, "RECORD")
            if (recs === undefined) return
            for (const rec of listItems(recs)) {
              const uid = getNum32(rec, "UID")
              if (uid === undefined) continue
              const k = recordKey(uniqueid, uid)
              const r = openRecords.get(k)
              if (r !== undefined && recordMatches(r, rec)) openRecords.delete(k)
            }
          })

        let length = 0
        let crc = 0
        if (wantChecksums) dataHash = createHash("sha1")
        const walk = yield* walkChunk(
          file.fd,
          chunk.offset,
          nextOffset.get(chunk.id),
          wantChecksums
            ? (b) => {
                dataHash.update(b)
                crc = crc32(b, crc)
                length += b.length
              }
            : () => {},
          wantLines ? onLine : undefined
        )

        if (walk.inflateError !== undefined) {
          add(wantChecksums ? checksumCheck : wantMessages ? "messageLinks" : "mailboxLinks", `error reading chunk ${chunk.id} at offset ${chunk.offset}: ${walk.inflateError}`)
        }
        if (walk.parseError !== undefined && wantLines) {
          add(
            wantMailboxes ? "mailboxLinks" : "messageLinks",
            `error reading chunk ${chunk.id} data at offset ${chunk.offset}, byte ${walk.parseError.offset}: ${walk.parseError.message}`
          )
        }
        if (wantChecksums) {
          if (length !== chunk.length) {
            add(checksumCheck, `data length mismatch for chunk ${chunk.id}: ${length} on disk, ${chunk.length ?? "NULL"} in index`)
          } else {
            const got = dataHash.digest("hex")
            if (got !== chunk.dataSha1) add(checksumCheck, `data checksum mismatch for chunk ${chunk.id}: ${got} on disk, ${chunk.dataSha1 ?? "NULL"} in index`)
          }
          // Beyond Cyrus: the gzip trailer must agree, and only the last member may lack one
          // (a member without one hides every later member from Cyrus's reindex).
          const m = walk.member
          if (m !== undefined && m.complete && m.crc32 !== undefined && (m.crc32 !== crc >>> 0 || m.isize !== length % 0x100000000)) {
            add(checksumCheck, `gzip trailer mismatch for chunk ${chunk.id}`)
          }
          if (m !== undefined && !m.complete && nextOffset.get(chunk.id) !== undefined) {
            add(checksumCheck, `chunk ${chunk.id}: gzip member has no trailer but is followed by another chunk`)
          }
        }
        for (const m of messages) {
          if (!foundMessages.has(m.id)) {
            add(wantGuids ? "messageGuids" : "messageLinks", `chunk ${chunk.id}: message ${m.id} (${m.guid}) not found at offset ${m.offset}`)
          }
        }
        for (const mb of openMailboxes.values()) add("mailboxLinks", `chunk ${chunk.id} missing mailbox data for ${mb.uniqueid} (${mb.mboxname})`)
        for (const r of openRecords.values()) add("mailboxLinks", `chunk ${chunk.id} missing mailbox_message data for ${r.uniqueid} uid ${r.uid}`)
      })

    const wantLines = checks.has("messageLinks") || checks.has("mailboxLinks")
    if (checks.has("lastChecksum")) yield* one(last, true, false)
    if (checks.has("allChecksums") || wantLines) {
      for (const c of chunks) yield* one(c, checks.has("allChecksums"), wantLines)
    }
    return report()
  })

export interface VerifyFileOptions {
  readonly level?: VerifyLevel
  /** Wait for the lock (`ctl_backups -w`) instead of failing with BackupLocked. */
  readonly wait?: boolean
}

/** Locks the backup at `dataPath`, opens its index and verifies it (as `ctl_backups verify`). */
export const verifyFile = (dataPath: string, options: VerifyFileOptions = {}): Effect.Effect<VerifyReport, OpenError | VerifyError> =>
  Effect.scoped(Effect.flatMap(openBackup(dataPath, { wait: options.wait ?? false }), (b) => verifyBackup(b, options.level ?? "full")))

/** The report as `ctl_backups verify` would print its findings, one line each. */
export const formatProblems = (report: VerifyReport): ReadonlyArray<string> => report.problems.map((p) => p.message)

