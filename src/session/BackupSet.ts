/**
 * The user backups one session has open. Each is opened in a Scope of its own, so closing it
 * (RESTART, idle timeout, end of session) seals its chunk and releases its lock, whatever
 * happened before. Commands and the idle closer take turns through one permit, so a backup
 * is never closed under a running command.
 *
 * Besides the open backups, the set keeps the session's *pending messages*: uploaded message
 * files that no open backup reserved. The original appends those to every open backup
 * (docs/gaps.md G3, a privacy leak between users); we hold them, staged on disk, until an APPLY
 * MAILBOX shows which backup references them, and drop the unclaimed ones at session end.
 *
 * A claimed message is kept only as long as another backup may still want it without a new
 * upload: sync_client uploads a message once per unit of work (one user after GET USER or GET
 * META; a batch of mailboxes after GET MAILBOXES: one user's, shared ones, or both) and works
 * out afresh in the next unit what the server lacks. So a message claimed by the backup of the
 * user whose unit is running is dropped at once (only that user's mailboxes follow), and any
 * other claimed message when the next unit begins, unless an open backup RESERVEd it and has
 * not yet received it. The staging area then holds what one unit uploads, not what the whole
 * session did. A later RESERVE of a dropped message is answered MISSING, and it is uploaded
 * again.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { SystemError, type PlatformError } from "@effect/platform/Error"
import { Effect, Exit, Option, Scope } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import type { File } from "../protocol/dlist/value.js"
import type { BackupWriter, UserBackupOpenError, UserBackupsShape } from "../store/index.js"

export interface OpenBackup {
  /** backups.db key: a userid or `%SHARED`. */
  readonly key: string
  readonly writer: BackupWriter
  /** GUIDs RESERVEd for this backup and not yet uploaded. */
  readonly reserved: Set<string>
  lastUse: number
}

interface Entry {
  readonly backup: OpenBackup
  readonly scope: Scope.CloseableScope
}

export interface BackupSet {
  /** The open backup of `key`; opened (and, with `create`, created) if needed. None if absent. */
  readonly open: (key: string, create: boolean) => Effect.Effect<Option.Option<OpenBackup>, UserBackupOpenError>
  /** Open backups, most recently opened first. */
  readonly all: () => ReadonlyArray<OpenBackup>
  /** Closes every open backup (from within a command, e.g. RESTART). */
  readonly closeAll: Effect.Effect<void>
  /**
   * Closes the open backups of every key but `key` whose work is finished: nothing RESERVEd
   * for them is still waiting to be uploaded. (sync_client begins each user with GET USER or
   * GET META and never returns to a user it has finished, so that user's backup is sealed and
   * unlocked then instead of at session end; a later command for it simply opens it again.)
   */
  readonly closeFinished: (key: string) => Effect.Effect<void>
  /** Closes backups unused for longer than `idleMs`. */
  readonly closeIdle: (idleMs: number) => Effect.Effect<void>
  /** Runs `effect` while no idle close can happen. */
  readonly exclusive: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Keeps an unclaimed uploaded message until a mailbox claims it (moves the staged file). */
  readonly holdPending: (file: File) => Effect.Effect<void, PlatformError>
  readonly pending: (guid: string) => File | undefined
  /**
   * The pending messages `guids` are now in the backup of `key` (committed): each is dropped at
   * once when `key` is the user of the running unit, else when the next unit begins.
   */
  readonly claimed: (key: string, guids: Iterable<string>) => void
  /**
   * A unit of sync_client's work begins: `key` is the one backup it concerns (GET USER, GET META,
   * GET MAILBOXES of one backup's mailboxes), undefined when it may concern several. Claimed
   * messages of earlier units are dropped.
   */
  readonly beginUnit: (key: string | undefined) => void
  /** How many pending messages are held, and how many of them are claimed (tests, telemetry). */
  readonly pendingCount: () => { readonly held: number; readonly claimed: number }
}

/**
 * Builds the set; everything still open is closed when the surrounding Scope closes, and the
 * pending messages' directory is removed then.
 */
export const makeBackupSet = (
  backups: UserBackupsShape,
  pendingDir: string,
  now: () => number = Date.now
): Effect.Effect<BackupSet, never, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const entries = new Map<string, Entry>()
    const order: Array<string> = []
    const pendingFiles = new Map<string, File>()
    /** GUIDs of pending messages that some backup has stored already. */
    const claimedGuids = new Set<string>()
    let unitKey: string | undefined
    let pendingDirMade = false
    const permit = yield* Effect.makeSemaphore(1)

    const closeEntry = (key: string) =>
      Effect.suspend(() => {
        const e = entries.get(key)
        if (e === undefined) return Effect.void
        entries.delete(key)
        order.splice(order.indexOf(key), 1)
        return Scope.close(e.scope, Exit.void)
      })

    /** Whether an open backup still waits for the upload of `guid` (RESERVEd, not yet stored). */
    const reservedByOpen = (guid: string) => {
      for (const e of entries.values()) if (e.backup.reserved.has(guid)) return true
      return false
    }
    /** Forgets a pending message and removes its file (what cannot be removed goes at session end). */
    const drop = (guid: string) => {
      const f = pendingFiles.get(guid)
      pendingFiles.delete(guid)
      claimedGuids.delete(guid)
      if (f === undefined) return
      try {
        nodeFs.unlinkSync(f.path)
      } catch {
        // removed with the session's staging directory
      }
    }

    const closeAll = Effect.suspend(() => Effect.forEach([...order], closeEntry, { discard: true }))

    // (what cannot be removed now goes with the session's staging directory)
    yield* Effect.addFinalizer(() => Effect.zipRight(closeAll, Effect.ignore(fs.remove(pendingDir, { recursive: true, force: true }))))

    const set: BackupSet = {
      open: (key, create) =>
        Effect.suspend(() => {
          const found = entries.get(key)
          if (found !== undefined) {
            found.backup.lastUse = now()
            return Effect.succeed(Option.some(found.backup))
          }
          return Effect.gen(function* () {
            const scope = yield* Scope.make()
            const opened = yield* Scope.extend(backups.open(key, { create }), scope).pipe(
              Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
            )
            if (Option.isNone(opened)) {
              yield* Scope.close(scope, Exit.void)
              return Option.none()
            }
            const backup: OpenBackup = { key, writer: opened.value, reserved: new Set(), lastUse: now() }
            entries.set(key, { backup, scope })
            order.unshift(key)
            return Option.some(backup)
          })
        }),
      all: () => order.map((k) => entries.get(k)!.backup),
      closeAll,
      closeFinished: (key) =>
        Effect.suspend(() =>
          Effect.forEach(
            order.filter((k) => k !== key && entries.get(k)!.backup.reserved.size === 0),
            closeEntry,
            { discard: true }
          )
        ),
      closeIdle: (idleMs) =>
        permit.withPermits(1)(
          Effect.suspend(() => {
            const cutoff = now() - idleMs
            const idle = order.filter((k) => entries.get(k)!.backup.lastUse < cutoff)
            return Effect.forEach(idle, closeEntry, { discard: true })
          })
        ),
      exclusive: (effect) => permit.withPermits(1)(effect),
      // One rename(2) in the command's step, as the parser stages (fileSinks.ts): a thread-pool
      // trip per message bought no overlap. An upload of a GUID already held is left where it
      // is (removed with the command's staging).
      holdPending: (file) =>
        Effect.try({
          try: () => {
            if (pendingFiles.has(file.guid)) return
            const target = path.join(pendingDir, file.guid)
            if (!pendingDirMade) {
              nodeFs.mkdirSync(pendingDir, { recursive: true, mode: 0o755 })
              pendingDirMade = true
            }
            nodeFs.renameSync(file.path, target)
            pendingFiles.set(file.guid, { ...file, path: target })
          },
          catch: (e) =>
            new SystemError({ reason: "Unknown", module: "FileSystem", method: "rename", pathOrDescriptor: file.path, description: (e as Error).message })
        }),
      pending: (guid) => pendingFiles.get(guid),
      claimed: (key, guids) => {
        for (const g of guids) {
          if (!pendingFiles.has(g)) continue
          if (key === unitKey && !reservedByOpen(g)) drop(g)
          else claimedGuids.add(g)
        }
      },
      beginUnit: (key) => {
        unitKey = key
        for (const g of [...claimedGuids]) if (!reservedByOpen(g)) drop(g)
      },
      pendingCount: () => ({ held: pendingFiles.size, claimed: claimedGuids.size })
    }
    return set
  })
