/**
 * The command line of `restore`, read as Cyrus 3.6.1's getopt loop reads it (GNU getopt:
 * options may follow operands, `--` ends them, `-A` at the very end means "no ACL"), with
 * the same mutual exclusions, plus our two additions `-S` and `-T`.
 */
import { Either } from "effect"
import { restoreUsage } from "../usageTexts.js"

export type BackupMode = "userid" | "mboxname" | "filename"
export type ExpungedMode = "include" | "exclude" | "only"

export interface RestoreOptions {
  readonly configPath: string | undefined
  /** `host`, `host:port`, `[v6]:port`, or a UNIX socket path (starts with `/`). */
  readonly server: string
  readonly mode: BackupMode
  readonly backupName: string
  /** Mailbox names, uniqueids or GUIDs from the command line. */
  readonly objects: ReadonlyArray<string>
  readonly inputFile: string | undefined
  readonly allMailboxes: boolean
  /** `-A`: undefined = keep; "" = no ACL (the owner's default). */
  readonly overrideAcl: string | undefined
  readonly overrideMboxname: string | undefined
  readonly overridePartition: string | undefined
  readonly expunged: ExpungedMode
  readonly submailboxes: boolean
  readonly keepUidvalidity: boolean
  readonly requireCompression: boolean
  readonly trimDeletedPrefix: boolean
  readonly localOnly: boolean
  readonly dryRun: boolean
  readonly verbose: number
  readonly waitSeconds: number
  /** `-S`: also seen state, subscriptions and sieve scripts. */
  readonly userState: boolean
  /** `-T`: the point in time (Unix seconds). */
  readonly pointInTime: number | undefined
}

/** Our additions, placed in the original's usage text. */
export const usageText: string = restoreUsage.replace(
  "    -U ",
  "    -S                  # also restore seen state, subscriptions and sieve scripts\n" +
    "    -T time             # restore the backup as it was at this time (unix seconds or ISO 8601)\n" +
    "    -U "
)

/** What went wrong, for the one line printed under the usage. */
export interface UsageProblem {
  readonly reason: string
}

const WITH_ARG = new Set(["A", "C", "F", "M", "P", "f", "m", "u", "w", "T"])
const FLAGS = new Set(["D", "L", "U", "X", "a", "n", "r", "v", "x", "z", "S"])

/** `-T`: digits are Unix seconds; anything else must be a date `Date.parse` understands. */
export const parseTime = (text: string): number | undefined => {
  if (/^[0-9]+$/.test(text)) return Number(text)
  if (!/^[0-9]{4}-/.test(text)) return undefined
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000)
}

export const parseRestoreArgs = (argv: ReadonlyArray<string>): Either.Either<RestoreOptions, UsageProblem> => {
  const bad = (reason: string) => Either.left({ reason })
  const operands: Array<string> = []
  let configPath: string | undefined
  let inputFile: string | undefined
  let mode: BackupMode | undefined
  let backupName: string | undefined
  let allMailboxes = false
  let overrideAcl: string | undefined
  let overrideMboxname: string | undefined
  let overridePartition: string | undefined
  let expunged: ExpungedMode = "include"
  let submailboxes = false
  let keepUidvalidity = false
  let requireCompression = false
  let trimDeletedPrefix = true
  let localOnly = false
  let dryRun = false
  let verbose = 0
  let waitSeconds = 0
  let userState = false
  let pointInTime: number | undefined

  let i = 0
  for (; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      i++
      break
    }
    if (arg.length < 2 || arg[0] !== "-") {
      operands.push(arg)
      continue
    }
    for (let j = 1; j < arg.length; j++) {
      const opt = arg[j]!
      let value: string | undefined
      if (WITH_ARG.has(opt)) {
        if (j + 1 < arg.length) value = arg.slice(j + 1)
        else if (i + 1 < argv.length) value = argv[++i]!
        else if (opt === "A") value = undefined
        else return bad(`option -${opt} requires an argument`)
        j = arg.length
      } else if (!FLAGS.has(opt)) {
        return bad(`unknown option -${opt}`)
      }
      switch (opt) {
        case "A":
          if (keepUidvalidity) return bad("-A cannot be combined with -U")
          overrideAcl = value ?? ""
          break
        case "C":
          configPath = value
          break
        case "D":
          trimDeletedPrefix = false
          break
        case "F":
          if (allMailboxes) return bad("-F cannot be combined with -a")
          inputFile = value
          break
        case "L":
          localOnly = true
          break
        case "M":
          if (keepUidvalidity) return bad("-M cannot be combined with -U")
          overrideMboxname = value
          break
        case "P":
          if (keepUidvalidity) return bad("-P cannot be combined with -U")
          overridePartition = value
          break
        case "U":
          if (overrideAcl !== undefined || overrideMboxname !== undefined || overridePartition !== undefined) {
            return bad("-U cannot be combined with -A, -M or -P")
          }
          keepUidvalidity = true
          break
        case "X":
        case "x":
          if (expunged !== "include") return bad("-X and -x exclude each other")
          expunged = opt === "X" ? "exclude" : "only"
          break
        case "a":
          if (inputFile !== undefined) return bad("-a cannot be combined with -F")
          allMailboxes = true
          break
        case "f":
        case "m":
        case "u":
          if (mode !== undefined) return bad("only one of -f, -m, -u")
          mode = opt === "f" ? "filename" : opt === "m" ? "mboxname" : "userid"
          backupName = value
          break
        case "n":
          dryRun = true
          break
        case "r":
          submailboxes = true
          break
        case "v":
          verbose++
          break
        case "w": {
          // atoi: a leading number, else 0
          const m = /^\s*([+-]?\d+)/.exec(value ?? "")
          waitSeconds = m === null ? 0 : Number(m[1])
          if (waitSeconds < 0) return bad("-w needs a non-negative number of seconds")
          break
        }
        case "z":
          requireCompression = true
          break
        case "S":
          userState = true
          break
        case "T":
          pointInTime = parseTime(value ?? "")
          if (pointInTime === undefined) return bad(`-T: not a time: ${value}`)
          break
      }
    }
  }
  operands.push(...argv.slice(i))

  const server = operands.shift()
  if (server === undefined) return bad("no server given")
  if (mode === undefined) {
    backupName = operands.shift()
    if (backupName === undefined) return bad("no backup given")
    mode = "userid"
  }
  if (!allMailboxes && inputFile === undefined && operands.length === 0) return bad("nothing to restore")
  if ((inputFile !== undefined || allMailboxes) && operands.length > 0) {
    return bad("mailboxes on the command line cannot be combined with -a or -F")
  }
  return Either.right({
    configPath,
    server,
    mode,
    backupName: backupName!,
    objects: operands,
    inputFile,
    allMailboxes,
    overrideAcl,
    overrideMboxname,
    overridePartition,
    expunged,
    submailboxes,
    keepUidvalidity,
    requireCompression,
    trimDeletedPrefix,
    localOnly,
    dryRun,
    verbose,
    waitSeconds,
    userState,
    pointInTime
  })
}
