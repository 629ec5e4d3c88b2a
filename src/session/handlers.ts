/**
 * What APPLY and GET do (docs/architecture.md, "APPLY and GET"), on the session's BackupSet. Each handler returns the
 * command's final reply line; failures are mapped to replies in answers.ts only.
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
import { Effect, Either, Option } from "effect"
import * as fs from "node:fs"
import { SHARED_KEY, backupKeyOfMboxname, canonicalUserid, useridOfMboxname, type NamingOptions } from "../protocol/mboxname.js"
import { atom, item, kvlist, list, type File, type Item } from "../protocol/dlist/value.js"
import { renameLines } from "../store/index.js"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import { Refused, replyFor, type CommandFailure } from "./answers.js"
import type { BackupSet, OpenBackup } from "./BackupSet.js"
import { decodeApply, decodeGet, type ApplyCommand, type GetCommand } from "./commands.js"
import { ApplyReply } from "./replies.js"
import { lsubLine, mailboxLine, missingLine, seenLine, sieveLines } from "./responses.js"
import type { CommandHandlers } from "./commandLoop.js"

export interface HandlerDeps {
  readonly backups: BackupSet
  readonly naming: NamingOptions
  readonly log: ServiceLog
  /** Open backups unused this long are closed between commands (Cyrus: 5 minutes). */
  readonly idleCloseMs: number
}

type Emit = (line: string) => Effect.Effect<void>
type Run = Effect.Effect<void, CommandFailure, FileSystem.FileSystem>

const refuse = (code: Refused["code"], detail: string) => Effect.fail(new Refused({ code, detail }))

export const makeHandlers = (deps: HandlerDeps): CommandHandlers & { readonly stagedThisCommand: Set<string> } => {
  const { backups, naming, log } = deps
  /** Staged files of the current command that were not kept (deleted after the answer). */
  const stagedThisCommand = new Set<string>()

  const openFor = (key: string, create: boolean) =>
    Effect.map(backups.open(key, create), Option.getOrUndefined)

  const mustOpen = (key: string) =>
    Effect.flatMap(backups.open(key, true), (o) =>
      Option.isSome(o) ? Effect.succeed(o.value) : refuse("protocol", `no backup for ${key}`)
    )

  const append = (b: OpenBackup, it: Item) => Effect.asVoid(b.writer.append(it))

  /** Writes the waiting messages `b`'s new records reference, then forgets them. */
  const claimPending = (b: OpenBackup, guids: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const wanted: Array<File> = []
      for (const g of new Set(guids)) {
        const f = backups.pending(g)
        if (f === undefined) continue
        const have = yield* b.writer.reader.messageByGuid(g)
        if (Option.isNone(have)) wanted.push(f)
      }
      if (wanted.length === 0) return
      yield* append(b, item("MESSAGE", list(wanted)))
      for (const f of wanted) b.reserved.delete(f.guid)
    })

  const applyCommand = (cmd: ApplyCommand, emit: Emit): Run =>
    Effect.gen(function* () {
      switch (cmd._tag) {
        case "Ignored":
          return
        case "Mailbox": {
          const b = yield* mustOpen(backupKeyOfMboxname(cmd.mboxname, naming))
          yield* claimPending(b, cmd.guids)
          yield* append(b, cmd.item)
          return
        }
        case "Unmailbox": {
          const b = yield* mustOpen(backupKeyOfMboxname(cmd.mboxname, naming))
          yield* append(b, cmd.item)
          return
        }
        case "UserItem": {
          const b = yield* mustOpen(canonicalUserid(cmd.userid, naming))
          yield* append(b, cmd.item)
          return
        }
        case "Unuser": {
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
          return
        }
        case "Rename": {
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
          return
        }
        case "Reserve": {
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
          return
        }
        case "Message": {
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
          for (const f of cmd.files) {
            if (taken.has(f.guid)) continue
            yield* backups.holdPending(f)
            stagedThisCommand.delete(f.path)
          }
          return
        }
      }
    })

  const getCommand = (cmd: GetCommand, emit: Emit): Run =>
    Effect.gen(function* () {
      switch (cmd._tag) {
        case "Uniqueids":
          return
        case "User":
        case "Meta": {
          const key = canonicalUserid(cmd.userid, naming)
          // A new user's sync begins: the users before it are done (see BackupSet.closeFinished).
          yield* backups.closeFinished(key)
          const b = yield* openFor(key, false)
          if (b === undefined) return
          const r = b.writer.reader
          if (cmd._tag === "User") {
            for (const m of yield* r.mailboxes({ withRecords: false })) {
              if (m.deleted === null) yield* emit(yield* mailboxLine(m, false))
            }
          }
          for (const s of yield* r.seen()) yield* emit(seenLine(s))
          const lsub = lsubLine(yield* r.subscriptions())
          if (lsub !== undefined) yield* emit(lsub)
          for (const line of sieveLines(yield* r.sieve())) yield* emit(line)
          return
        }
        case "Mailboxes": {
          const owners = new Set(cmd.names.filter((n): n is string => n !== null).map((n) => useridOfMboxname(n, naming)))
          owners.delete(undefined)
          if (owners.size > 1) return yield* refuse("bad-parameters", "MAILBOXES of more than one user")
          for (const name of cmd.names) {
            if (name === null) return yield* refuse("bad-parameters", "NIL mailbox name")
            const b = yield* openFor(backupKeyOfMboxname(name, naming), false)
            if (b === undefined) continue
            const m = yield* b.writer.reader.mailboxByName(name, { withRecords: false })
            if (Option.isSome(m) && m.value.deleted === null) yield* emit(yield* mailboxLine(m.value, false))
          }
          return
        }
        case "FullMailbox": {
          const b = yield* openFor(backupKeyOfMboxname(cmd.name, naming), false)
          if (b === undefined) return yield* refuse("nonexistent", cmd.name)
          const m = yield* b.writer.reader.mailboxByName(cmd.name, { withRecords: true })
          if (Option.isNone(m)) return yield* refuse("nonexistent", cmd.name)
          if (m.value.deleted === null) yield* emit(yield* mailboxLine(m.value, true))
          return
        }
      }
    })

  const finish = (run: Run, context: string): Effect.Effect<string, never, FileSystem.FileSystem> =>
    backups.exclusive(run).pipe(
      Effect.as(ApplyReply.success as string),
      Effect.catchAll((e) => Effect.succeed(replyFor(e, context, log)))
    )

  const trackStaged = (it: Item) => {
    if (it.value._tag !== "List") return
    for (const c of it.value.items) if (c._tag === "File") stagedThisCommand.add(c.path)
  }

  return {
    stagedThisCommand,
    apply: (it, emit) => {
      trackStaged(it)
      const cmd = decodeApply(it)
      return Either.isLeft(cmd)
        ? Effect.succeed(replyFor(new Refused({ code: cmd.left, detail: it.key }), `APPLY ${it.key}`, log))
        : finish(applyCommand(cmd.right, emit), `APPLY ${it.key}`)
    },
    get: (it, emit) => {
      const cmd = decodeGet(it)
      return Either.isLeft(cmd)
        ? Effect.succeed(replyFor(new Refused({ code: cmd.left, detail: it.key }), `GET ${it.key}`, log))
        : finish(getCommand(cmd.right, emit), `GET ${it.key}`)
    },
    restart: backups.exclusive(backups.closeAll),
    closeIdle: backups.closeIdle(deps.idleCloseMs),
    afterCommand: Effect.sync(() => {
      for (const p of stagedThisCommand) {
        try {
          fs.rmSync(p, { force: true })
        } catch {
          // a leftover staged file is removed with the session's staging directory
        }
      }
      stagedThisCommand.clear()
    })
  }
}
