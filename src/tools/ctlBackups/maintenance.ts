/**
 * What the ctl_backups commands Cyrus 3.6.1 leaves unimplemented (delete, move, reconstruct)
 * share: their failure, with the Cyrus-style code of the status line, file steps that fail
 * with it, and the backups.db keys that name a data file.
 */
import fs from "node:fs"
import { Data, Effect } from "effect"
import type { BackupsDbService } from "../../store/index.js"
import { IMAP_IOERROR } from "../cFormat.js"
import { openErrorCode } from "../openErrors.js"
import type { Target } from "../targets.js"

/** A maintenance step failed; `code` is the Cyrus-style code for the status line. */
export class MaintenanceFailed extends Data.TaggedError("MaintenanceFailed")<{
  readonly code: number
  readonly message: string
}> {}

export const fail = (code: number, message: string) => Effect.fail(new MaintenanceFailed({ code, message }))

/** A synchronous file step whose failure is an I/O error of the command. */
export const io = <A>(what: string, f: () => A) =>
  Effect.try({ try: f, catch: (e) => new MaintenanceFailed({ code: IMAP_IOERROR, message: `${what}: ${(e as Error).message}` }) })

/** A path (a byte string) as the file system takes it. */
export const bytesPath = (p: string) => Buffer.from(p, "latin1")

/** backups.db keys whose value is this data file. */
export const keysFor = (db: BackupsDbService, t: Target) =>
  Effect.map(Effect.orElseSucceed(db.list, () => []), (entries) => {
    const keys = entries.filter((e) => e.dataPath === t.dataPath).map((e) => e.userid)
    return t.userid !== undefined && !keys.includes(t.userid) ? [...keys, t.userid] : keys
  })

export const mapOpenError = <A, E extends Parameters<typeof openErrorCode>[0], R>(eff: Effect.Effect<A, E, R>) =>
  Effect.mapError(eff, (e) => new MaintenanceFailed({ code: openErrorCode(e), message: e._tag }))

/** A backups.db failure as the command's (an I/O error). */
export const dbFailed = (e: { readonly _tag: string }) => new MaintenanceFailed({ code: IMAP_IOERROR, message: e._tag })

/** Gives `to` the owner and mode of `like` (root running a tool must not leave root-owned backups). */
export const sameOwner = (like: string, to: string) => {
  const st = fs.statSync(bytesPath(like))
  if (process.getuid?.() === 0) fs.chownSync(bytesPath(to), st.uid, st.gid)
  fs.chmodSync(bytesPath(to), st.mode & 0o7777)
}
