/**
 * What a backup server holds for a user, read three independent ways, for comparison with
 * the source's IMAP state: the real `cyr_backup` listings, the user's SQLite index (via the
 * `sqlite3` shell, read-only) and the data file itself (gunzipped, its APPLY MESSAGE GUIDs).
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import * as path from "node:path"
import { gunzipSync } from "node:zlib"
import { Effect } from "effect"
import { type CyrusProcessError, requireSuccess, runProgram } from "./cyrus.js"
import { adminName } from "./populate.js"
import type { BackupServerInstance } from "./instances.js"
import type { UserSnapshot } from "./imap.js"
import { runCyrBackup } from "./tools.js"

export interface BackupFiles {
  readonly data: string
  readonly index: string
}

/** The data file and index of `user` (`<partition>/<hash>/<user>_XXXXXX` and `.index`). */
export const backupFilesOf = (backup: BackupServerInstance, user: string): BackupFiles | undefined => {
  const walk = (dir: string): Array<string> =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]
    )
  const data = walk(backup.partitionDir).find((f) => new RegExp(`/${user}_[^/.]+$`).test(f))
  return data === undefined ? undefined : { data, index: `${data}.index` }
}

/** Size of the data file and number of chunks: both change when anything is appended. */
export const backupFootprint = (files: BackupFiles) =>
  Effect.map(sqlite(files.index, "SELECT count(*) FROM chunk"), (rows) => ({
    dataBytes: statSync(files.data).size,
    chunks: Number(rows[0]?.[0] ?? -1)
  }))

/** Runs a query on an index, read-only; rows of tab-separated columns. */
export const sqlite = (index: string, query: string): Effect.Effect<ReadonlyArray<ReadonlyArray<string>>, CyrusProcessError> =>
  runProgram(["sqlite3", "-readonly", "-separator", "\t", index, query], { asCurrentUser: true, timeout: "30 seconds" }).pipe(
    Effect.flatMap(requireSuccess),
    Effect.map((r) => r.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("\t")))
  )

/** GUIDs of the APPLY MESSAGE records in a data file (all chunks, decompressed). */
export const guidsInDataFile = (data: string): ReadonlySet<string> => {
  const text = gunzipSync(readFileSync(data)).toString("latin1")
  const guids = new Set<string>()
  for (const m of text.matchAll(/%\{[^ ]+ ([0-9a-f]{40}) \d+\}\r\n/g)) guids.add(m[1]!)
  return guids
}

/** A live message as the comparison sees it. */
export interface LiveMessage {
  readonly uid: number
  readonly guid: string
  readonly flags: ReadonlyArray<string>
}

export type MailboxContents = Readonly<Record<string, ReadonlyArray<LiveMessage>>>

const sortFlags = (flags: ReadonlyArray<string>) => [...flags].filter((f) => f !== "\\Recent").sort()

/** The source's state in backup terms: internal mailbox names → live messages (uid order). */
export const expectedContents = (snap: UserSnapshot): MailboxContents =>
  Object.fromEntries(
    Object.entries(snap.mailboxes).map(([folder, m]) => [
      adminName(snap.user, folder),
      m.messages.map((x) => ({ uid: x.uid, guid: x.sha1, flags: sortFlags(x.flags) }))
    ])
  )

/** The index's state: live (not deleted) mailboxes → unexpunged records (uid order). */
export const indexContents = (files: BackupFiles) =>
  Effect.gen(function*() {
    const boxes = yield* sqlite(files.index, "SELECT mboxname FROM mailbox WHERE deleted IS NULL ORDER BY mboxname")
    const rows = yield* sqlite(
      files.index,
      "SELECT mb.mboxname, mm.uid, m.guid, mm.flags FROM mailbox_message mm JOIN mailbox mb ON mb.id = mm.mailbox_id " +
        "JOIN message m ON m.id = mm.message_id WHERE mm.expunged IS NULL AND mb.deleted IS NULL ORDER BY mb.mboxname, mm.uid"
    )
    const out: Record<string, Array<LiveMessage>> = {}
    for (const [name] of boxes) if (!name!.startsWith("DELETED.")) out[name!] = []
    for (const [name, uid, guid, flags] of rows) {
      if (name!.startsWith("DELETED.")) continue
      const list = flags!.replace(/^\(|\)$/g, "")
      out[name!]!.push({ uid: Number(uid), guid: guid!, flags: sortFlags(list === "" ? [] : list.split(" ")) })
    }
    return out as MailboxContents
  })

/** Mailbox names (not DELETED.*) and message GUIDs, as the real `cyr_backup` lists them. */
export const cyrBackupListing = (backup: BackupServerInstance, user: string, program?: string) =>
  Effect.gen(function*() {
    const o = program === undefined ? {} : { program }
    const boxes = yield* runCyrBackup(backup, ["-u", user, "list", "mailboxes"], o).pipe(Effect.flatMap(requireSuccess))
    const msgs = yield* runCyrBackup(backup, ["-u", user, "list", "messages"], o).pipe(Effect.flatMap(requireSuccess))
    const mailboxes = boxes.stdout
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/).pop() ?? "")
      .filter((n) => n !== "" && !n.startsWith("DELETED."))
      .sort()
    const guids = msgs.stdout.split("\n").map((l) => l.trim()).filter((l) => /^[0-9a-f]{40}$/.test(l))
    return { mailboxes, guids: new Set(guids) }
  })

/** GUIDs in a user's `message` table that none of that user's mailboxes reference. */
export const unreferencedMessages = (files: BackupFiles) =>
  Effect.map(
    sqlite(files.index, "SELECT guid FROM message WHERE id NOT IN (SELECT message_id FROM mailbox_message) ORDER BY guid"),
    (rows) => rows.map((r) => r[0]!)
  )
