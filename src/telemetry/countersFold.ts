/**
 * Reading backupd's counters back (Counters.ts writes them): the sum of `folded.json` and of
 * every per-process file it has not absorbed yet.
 *
 * Files of processes that have ended are folded into `folded.json` so the directory does not
 * grow with every process master starts: the new sum and the names it absorbed are written to
 * a temporary file renamed over `folded.json`, and only then are the absorbed files removed; a
 * file named in `absorbed` is never counted again, so a run interrupted between the two steps
 * counts nothing twice. Folding (and the reading that goes with it) holds an fcntl lock on
 * `.fold.lock`, a file no backupd ever touches, so two `ctl_backups metrics` runs do not race;
 * backupd itself only appends to its own file and never waits for anything here. Without write
 * access to the directory (another user) the files are only read.
 *
 * Run as root (Cyrus's own ctl_backups would switch to the cyrus user; ours does not), the
 * lock file and `folded.json` are given to the directory's owner (backupd's user, who created
 * it), as a compaction run by root gives a data file back to its owner, so that a later run as
 * cyrus can still fold; a lock file that an earlier root run left owned by root is given back
 * the same way.
 */
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fcntlLock } from "../util/fcntlLock.js"
import { addCounters, type Counters } from "./Counters.js"

const CountersSchema = Schema.Record({ key: Schema.String, value: Schema.Record({ key: Schema.String, value: Schema.Number }) })
const FoldedSchema = Schema.Struct({ totals: CountersSchema, absorbed: Schema.Array(Schema.String) })
const decodeLine = Schema.decodeUnknownEither(Schema.parseJson(CountersSchema))
const decodeFolded = Schema.decodeUnknownEither(Schema.parseJson(FoldedSchema))

const PROCESS_FILE = /^(\d+)\.(\d+)\.jsonl$/
const FOLDED = "folded.json"

const copy = (c: Counters): Counters => addCounters({}, c)

/** Sum of the complete, well-formed lines of a file (a line cut short by a crash is skipped). */
const readProcessFile = (file: string): Counters | undefined => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
  const sum: Counters = {}
  for (const line of text.split("\n")) {
    if (line === "") continue
    const decoded = decodeLine(line)
    if (Either.isRight(decoded)) addCounters(sum, decoded.right)
  }
  return sum
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

interface DirectoryState {
  /** Everything counted so far. */
  readonly totals: Counters
  readonly folded: { readonly totals: Counters; readonly absorbed: ReadonlyArray<string> }
  /** Files of processes that have ended, not absorbed yet. */
  readonly ended: ReadonlyArray<{ readonly name: string; readonly counts: Counters }>
  readonly names: ReadonlySet<string>
}

/** What the directory holds now. */
const readAll = (directory: string): DirectoryState => {
  let names: Array<string>
  try {
    names = fs.readdirSync(directory)
  } catch {
    return { totals: {}, folded: { totals: {}, absorbed: [] }, ended: [], names: new Set() }
  }
  let folded: DirectoryState["folded"] = { totals: {}, absorbed: [] }
  try {
    const decoded = decodeFolded(fs.readFileSync(path.join(directory, FOLDED), "utf8"))
    if (Either.isRight(decoded)) folded = { totals: copy(decoded.right.totals), absorbed: decoded.right.absorbed }
  } catch {
    // none yet
  }
  const absorbed = new Set(folded.absorbed)
  const totals = copy(folded.totals)
  const ended: Array<{ name: string; counts: Counters }> = []
  for (const name of names) {
    const m = PROCESS_FILE.exec(name)
    if (m === null || absorbed.has(name)) continue
    const counts = readProcessFile(path.join(directory, name))
    if (counts === undefined) continue
    addCounters(totals, counts)
    if (Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) ended.push({ name, counts })
  }
  return { totals, folded, ended, names: new Set(names) }
}

/** Under root: the directory's owner, to whom what folding creates is given; undefined otherwise. */
const ownerWhenRoot = (directory: string): { readonly uid: number; readonly gid: number } | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const st = fs.statSync(directory)
  return st.uid === 0 ? undefined : { uid: st.uid, gid: st.gid }
}

const fold = (directory: string, state: DirectoryState, owner: { readonly uid: number; readonly gid: number } | undefined): void => {
  if (state.ended.length === 0) return
  const names = state.names
  const totals = copy(state.folded.totals)
  for (const e of state.ended) addCounters(totals, e.counts)
  // names absorbed earlier whose files are gone need no remembering any more
  const absorbed = [...state.folded.absorbed.filter((n) => names.has(n)), ...state.ended.map((e) => e.name)]
  const tmp = path.join(directory, `.${FOLDED}.${process.pid}.tmp`)
  fs.writeFileSync(tmp, JSON.stringify({ totals, absorbed }))
  if (owner !== undefined) fs.chownSync(tmp, owner.uid, owner.gid)
  fs.renameSync(tmp, path.join(directory, FOLDED))
  for (const e of state.ended) fs.rmSync(path.join(directory, e.name), { force: true })
}

/**
 * backupd's counters so far, summed over every process; folds the files of ended processes
 * when it can take the fold lock (waiting for another metrics run that holds it).
 */
export const readBackupdCounters = (directory: string): Effect.Effect<Counters> =>
  Effect.gen(function* () {
    let fd: number | undefined
    try {
      fd = fs.openSync(path.join(directory, ".fold.lock"), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o640)
    } catch {
      fd = undefined
    }
    if (fd === undefined) return readAll(directory).totals
    const lockFd = fd
    return yield* Effect.ensuring(
      Effect.gen(function* () {
        const locked = yield* Effect.either(fcntlLock(lockFd, "write", true))
        const state = readAll(directory)
        if (Either.isRight(locked)) {
          try {
            const owner = ownerWhenRoot(directory)
            if (owner !== undefined) fs.fchownSync(lockFd, owner.uid, owner.gid)
            fold(directory, state, owner)
          } catch {
            // left for a later run: what was read is still right
          }
        }
        return state.totals
      }),
      Effect.sync(() => fs.closeSync(lockFd))
    )
  })
