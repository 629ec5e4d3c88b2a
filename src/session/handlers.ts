/**
 * What APPLY and GET do (docs/architecture.md, "APPLY and GET"), on the session's BackupSet: one
 * handler per kind of command (commands.ts), each an `Effect.fn` with a span of its own. A
 * handler writes its untagged lines through `emit` and succeeds or fails with a tagged
 * failure; answers.ts's `toReply` alone turns that into the final reply line.
 *
 * Differences from Cyrus 3.6.1, each closing a gap of docs/gaps.md:
 * - G3: uploaded messages nobody reserved are not appended to every open backup; they wait
 *   (staged) until an APPLY MAILBOX references them, and go only into that user's backup.
 *   A RESERVE of a GUID already waiting is answered as present (no re-upload needed).
 * - G1: a RENAME whose old and new names belong to different users is not indexed under the
 *   old user; the old user's backup records the mailbox as gone (UNMAILBOX), and sync_client's
 *   normal follow-up sync (it restarts the user after any rename) fills the new owner's backup.
 * - G2: a RENAME is recorded together with a MAILBOX line describing the moved mailbox under its
 *   new name (src/store/write/renameLines.ts), so the backup passes Cyrus's verify and ours even when
 *   the sync ends before sync_client sends that mailbox.
 * - G14: GET never creates a backup.
 * - G6: UNUSER (sync_client sends it for a user that no longer exists on the source: deleted,
 *   or renamed away) is not thrown away. The user's backup records every live mailbox as
 *   removed (UNMAILBOX), every subscription as gone (UNSUB) and every sieve script as deleted
 *   (UNSIEVE), one line each and all in one commit, so GET USER answers as the source now does; the mail itself stays
 *   in the backup for point-in-time restore until compaction's retention drops it. Lines the
 *   C tools know, so they read such a backup as ever. A user with no backup gets none.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as fs from "node:fs"
import { Effect, Option } from "effect"
import { SHARED_KEY, backupKeyOfMboxname, canonicalUserid, useridOfMboxname, type NamingOptions } from "../protocol/mboxname.js"
import { atom, item, kvlist, list, type File, type Item } from "../protocol/dlist/value.js"
import { renameLines } from "../store/index.js"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import { Refused, toReply, type CommandFailure } from "./answers.js"
import type { BackupSet, OpenBackup } from "./BackupSet.js"
import type {
  ApplyCommand,
  ApplyMailbox,
  ApplyMessage,
  ApplyRename,
  ApplyReserve,
  ApplyUnmailbox,
  ApplyUnuser,
  ApplyUserItem,
  GetCommand,
  GetFullMailbox,
  GetMailboxes,
  GetMeta,
  GetUser
} from "./commands.js"
import { lsubLine, mailboxLine, missingLine, seenLine, sieveLines } from "./responses.js"

export interface HandlerDeps {
  readonly backups: BackupSet
  readonly naming: NamingOptions
  readonly log: ServiceLog
  /** Open backups unused this long are closed between commands (Cyrus: 5 minutes). */
  readonly idleCloseMs: number
}

/** Writes one untagged line of the answer. */
export type Emit = (line: string) => Effect.Effect<void>

/** What the command loop hands APPLY and GET to. */
export interface CommandHandlers {
  /** Runs one APPLY; writes its untagged lines through `emit` and returns its final line. */
  readonly apply: (cmd: ApplyCommand, emit: Emit) => Effect.Effect<string, never, FileSystem.FileSystem>
  /** Runs one GET, likewise. */
  readonly get: (cmd: GetCommand, emit: Emit) => Effect.Effect<string, never, FileSystem.FileSystem>
  /** Closes every open backup: sealed and unlocked once it completes (RESTART, EXIT). */
  readonly closeAll: Effect.Effect<void>
  /** Between commands: close backups idle for too long. */
  readonly closeIdle: Effect.Effect<void>
  /** After each APPLY: remove the staged files it brought that nothing kept. */
  readonly afterCommand: (staged: ReadonlyArray<File>) => Effect.Effect<void, never, FileSystem.FileSystem>
}

type Run = Effect.Effect<void, CommandFailure, FileSystem.FileSystem>

const refuse = (code: Refused["code"], detail: string) => Effect.fail(new Refused({ code, detail }))

/** The log context of a command: `APPLY MAILBOX`, `GET USER`, ... */
const applyContext = (cmd: ApplyCommand) => `APPLY ${cmd.item.key}`
const GET_CONTEXT: Record<GetCommand["_tag"], string> = {
  GetUser: "GET USER",
  GetMeta: "GET META",
  GetMailboxes: "GET MAILBOXES",
  GetFullMailbox: "GET FULLMAILBOX",
  GetUniqueids: "GET UNIQUEIDS"
}

export const makeHandlers = (deps: HandlerDeps): CommandHandlers => {
  const { backups, naming, log } = deps
  /** Staged files of the running command that went to the pending messages (not to remove). */
  const moved = new Set<string>()

  const openFor = (key: string, create: boolean) => Effect.map(backups.open(key, create), Option.getOrUndefined)

  const mustOpen = (key: string) =>
    Effect.flatMap(backups.open(key, true), (o) => (Option.isSome(o) ? Effect.succeed(o.value) : refuse("protocol", `no backup for ${key}`)))

  const append = (b: OpenBackup, it: Item) => Effect.asVoid(b.writer.append(it))

  /**
   * Writes the waiting messages `b`'s new records reference and `b` lacks; then every waiting
   * message they reference is claimed (BackupSet: kept only while another backup may want it).
   */
  const claimPending = (b: OpenBackup, guids: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const wanted: Array<File> = []
      const referenced: Array<string> = []
      for (const g of new Set(guids)) {
        const f = backups.pending(g)
        if (f === undefined) continue
        referenced.push(g)
        const have = yield* b.writer.reader.messageByGuid(g)
        if (Option.isNone(have)) wanted.push(f)
      }
      if (referenced.length === 0) return
      if (wanted.length > 0) yield* append(b, item("MESSAGE", list(wanted)))
      for (const f of wanted) b.reserved.delete(f.guid)
      backups.claimed(b.key, referenced)
    })

  // ---- APPLY ---------------------------------------------------------------------------------

  const applyMailbox = Effect.fn("csync.ApplyMailbox")(function* (cmd: typeof ApplyMailbox.Type) {
    const b = yield* mustOpen(backupKeyOfMboxname(cmd.mboxname, naming))
    yield* claimPending(b, cmd.guids)
    yield* append(b, cmd.item)
  })

  const applyUnmailbox = Effect.fn("csync.ApplyUnmailbox")(function* (cmd: typeof ApplyUnmailbox.Type) {
    const b = yield* mustOpen(backupKeyOfMboxname(cmd.mboxname, naming))
    yield* append(b, cmd.item)
  })

  const applyUserItem = Effect.fn("csync.ApplyUserItem")(function* (cmd: typeof ApplyUserItem.Type) {
    const b = yield* mustOpen(canonicalUserid(cmd.userid, naming))
    yield* append(b, cmd.item)
  })

  const applyUnuser = Effect.fn("csync.ApplyUnuser")(function* (cmd: typeof ApplyUnuser.Type) {
    const b = yield* openFor(canonicalUserid(cmd.userid, naming), false)
    if (b === undefined) return
    const r = b.writer.reader
    const userid = atom(cmd.userid)
    const lines: Array<Item> = []
    for (const m of yield* r.mailboxes({ withRecords: false })) {
      if (m.deleted === null) lines.push(item("UNMAILBOX", atom(m.mboxname)))
    }
    for (const s of yield* r.subscriptions()) {
      if (s.unsubscribed === null) lines.push(item("UNSUB", kvlist([["USERID", userid], ["MBOXNAME", atom(s.mboxname)]])))
    }
    for (const s of yield* r.sieve()) {
      if (s.deleted === null) lines.push(item("UNSIEVE", kvlist([["USERID", userid], ["FILENAME", atom(s.filename)]])))
    }
    // one unit, like every APPLY: a crash leaves the user either as before or gone
    yield* b.writer.appendAll(lines)
  })

  const applyRename = Effect.fn("csync.ApplyRename")(function* (cmd: typeof ApplyRename.Type) {
    const oldKey = backupKeyOfMboxname(cmd.oldName, naming)
    const newKey = backupKeyOfMboxname(cmd.newName, naming)
    const b = yield* mustOpen(oldKey)
    if (oldKey === newKey) {
      // with a MAILBOX line under the new name, in the same unit (G2, renameLines.ts)
      yield* b.writer.appendAll(yield* renameLines(b.writer.reader, cmd.item))
    } else {
      log.notice(`rename of ${cmd.oldName} to another owner (${newKey}): recorded as removed from ${oldKey}`)
      yield* append(b, item("UNMAILBOX", atom(cmd.oldName)))
    }
  })

  const applyReserve = Effect.fn("csync.ApplyReserve")(function* (cmd: typeof ApplyReserve.Type, emit: Emit) {
    const names = cmd.mboxnames.filter((n): n is string => n !== null)
    const users = [...new Set(names.map((n) => useridOfMboxname(n, naming)).filter((u): u is string => u !== undefined))].sort()
    const keys = names.some((n) => useridOfMboxname(n, naming) === undefined) ? [...users, SHARED_KEY] : users
    const missing: Array<string> = []
    for (const key of keys) {
      const b = yield* mustOpen(key)
      yield* append(b, cmd.item)
      for (const g of cmd.guids) {
        const have = yield* b.writer.reader.messageByGuid(g)
        if (Option.isSome(have)) continue
        b.reserved.add(g)
        if (backups.pending(g) === undefined && !missing.includes(g)) missing.push(g)
      }
    }
    if (missing.length > 0) yield* emit(missingLine(missing))
  })

  const applyMessage = Effect.fn("csync.ApplyMessage")(function* (cmd: typeof ApplyMessage.Type) {
    for (const f of cmd.files) {
      if (f.sha1 !== f.guid.toLowerCase()) {
        return yield* refuse("protocol", `message ${f.guid}: content SHA-1 is ${f.sha1}`)
      }
    }
    const taken = new Set<string>()
    for (const b of backups.all()) {
      const mine = cmd.files.filter((f) => b.reserved.has(f.guid))
      if (mine.length === 0) continue
      yield* append(b, item("MESSAGE", list(mine)))
      for (const f of mine) {
        b.reserved.delete(f.guid)
        taken.add(f.guid)
      }
    }
    // the rest wait, moved out of the command's staging (so afterCommand leaves them alone)
    for (const f of cmd.files) {
      if (taken.has(f.guid)) continue
      yield* backups.holdPending(f)
      moved.add(f.path)
    }
  })

  const runApply = (cmd: ApplyCommand, emit: Emit): Run => {
    switch (cmd._tag) {
      case "ApplyIgnored":
        return Effect.void
      case "ApplyMailbox":
        return applyMailbox(cmd)
      case "ApplyUnmailbox":
        return applyUnmailbox(cmd)
      case "ApplyUserItem":
        return applyUserItem(cmd)
      case "ApplyUnuser":
        return applyUnuser(cmd)
      case "ApplyRename":
        return applyRename(cmd)
      case "ApplyReserve":
        return applyReserve(cmd, emit)
      case "ApplyMessage":
        return applyMessage(cmd)
    }
  }

  // ---- GET -----------------------------------------------------------------------------------

  const getUserOrMeta = (withMailboxes: boolean) =>
    function* (cmd: typeof GetUser.Type | typeof GetMeta.Type, emit: Emit) {
      const key = canonicalUserid(cmd.userid, naming)
      // A new user's sync begins: the users before it are done (see BackupSet.closeFinished).
      yield* backups.closeFinished(key)
      backups.beginUnit(key)
      const b = yield* openFor(key, false)
      if (b === undefined) return
      const r = b.writer.reader
      if (withMailboxes) {
        for (const m of yield* r.mailboxes({ withRecords: false })) {
          if (m.deleted === null) yield* emit(yield* mailboxLine(m, false))
        }
      }
      for (const s of yield* r.seen()) yield* emit(seenLine(s))
      const lsub = lsubLine(yield* r.subscriptions())
      if (lsub !== undefined) yield* emit(lsub)
      for (const line of sieveLines(yield* r.sieve())) yield* emit(line)
    }
  const getUser = Effect.fn("csync.GetUser")(getUserOrMeta(true))
  const getMeta = Effect.fn("csync.GetMeta")(getUserOrMeta(false))

  const getMailboxes = Effect.fn("csync.GetMailboxes")(function* (cmd: typeof GetMailboxes.Type, emit: Emit) {
    const owners = new Set(cmd.names.filter((n): n is string => n !== null).map((n) => useridOfMboxname(n, naming)))
    owners.delete(undefined)
    if (owners.size > 1) return yield* refuse("bad-parameters", "MAILBOXES of more than one user")
    // one user's mailboxes (sync_client -m, or a rolling batch of one user's): that user's unit
    const keys = new Set(cmd.names.filter((n): n is string => n !== null).map((n) => backupKeyOfMboxname(n, naming)))
    backups.beginUnit(keys.size === 1 ? [...keys][0] : undefined)
    for (const name of cmd.names) {
      if (name === null) return yield* refuse("bad-parameters", "NIL mailbox name")
      const b = yield* openFor(backupKeyOfMboxname(name, naming), false)
      if (b === undefined) continue
      const m = yield* b.writer.reader.mailboxByName(name, { withRecords: false })
      if (Option.isSome(m) && m.value.deleted === null) yield* emit(yield* mailboxLine(m.value, false))
    }
  })

  const getFullMailbox = Effect.fn("csync.GetFullMailbox")(function* (cmd: typeof GetFullMailbox.Type, emit: Emit) {
    const b = yield* openFor(backupKeyOfMboxname(cmd.name, naming), false)
    if (b === undefined) return yield* refuse("nonexistent", cmd.name)
    const m = yield* b.writer.reader.mailboxByName(cmd.name, { withRecords: true })
    if (Option.isNone(m)) return yield* refuse("nonexistent", cmd.name)
    if (m.value.deleted === null) yield* emit(yield* mailboxLine(m.value, true))
  })

  const runGet = (cmd: GetCommand, emit: Emit): Run => {
    switch (cmd._tag) {
      case "GetUniqueids":
        return Effect.void
      case "GetUser":
        return getUser(cmd, emit)
      case "GetMeta":
        return getMeta(cmd, emit)
      case "GetMailboxes":
        return getMailboxes(cmd, emit)
      case "GetFullMailbox":
        return getFullMailbox(cmd, emit)
    }
  }

  return {
    apply: (cmd, emit) => toReply(backups.exclusive(runApply(cmd, emit)), applyContext(cmd), log),
    get: (cmd, emit) => toReply(backups.exclusive(runGet(cmd, emit)), GET_CONTEXT[cmd._tag], log),
    closeAll: backups.exclusive(backups.closeAll),
    closeIdle: backups.closeIdle(deps.idleCloseMs),
    afterCommand: (staged) =>
      staged.length === 0 && moved.size === 0
        ? Effect.void
        : Effect.sync(() => {
            // One unlink(2) each, in one step (a thread-pool trip and rm's lstat per file cost
            // more than the unlink); none for a file moved to the pending messages. A leftover
            // staged file is removed with the session's staging directory.
            for (const f of staged) {
              if (moved.has(f.path)) continue
              try {
                fs.unlinkSync(f.path)
              } catch {
                // already removed
              }
            }
            moved.clear()
          })
  }
}
