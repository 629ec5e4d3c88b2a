/**
 * The real Cyrus 3.6.1 installation as the tests use it, in one place: where its programs
 * are, whether they can be run here (and a loud notice when a suite skips for want of them),
 * the cyrus user, running a program as that user, and temp directories it may use.
 * The interop harness (test/harness/cyrus.ts) builds its instances on these.
 */
import { execFile } from "node:child_process"
import { accessSync, chmodSync, chownSync, constants, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs"
import os from "node:os"
import path from "node:path"

export const CYRUS_BIN = "/usr/lib/cyrus/bin"
export const SETPRIV = "/usr/bin/setpriv"

export const cyrusProgram = (name: string): string => path.join(CYRUS_BIN, name)

export const isExecutable = (file: string): boolean => {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

interface CyrusIds {
  readonly uid: number
  readonly gid: number
}

let idsCache: CyrusIds | null | undefined
/** uid of user `cyrus` and gid of group `mail`, read from /etc/passwd and /etc/group (null: no such user). */
export const cyrusIds = (): CyrusIds | null => {
  if (idsCache !== undefined) return idsCache
  const field = (file: string, name: string, index: number): number | undefined => {
    try {
      const line = readFileSync(file, "latin1").split("\n").find((l) => l.startsWith(`${name}:`))
      const value = line?.split(":")[index]
      return value === undefined ? undefined : Number(value)
    } catch {
      return undefined
    }
  }
  const uid = field("/etc/passwd", "cyrus", 2)
  const gid = field("/etc/group", "mail", 2)
  idsCache = uid === undefined || gid === undefined ? null : { uid, gid }
  return idsCache
}

/**
 * Why these Cyrus programs cannot be run as user cyrus here (not root, a program or setpriv
 * missing), or undefined when they can.
 */
export const cyrusToolsSkipReason = (programs: ReadonlyArray<string>): string | undefined => {
  if (process.getuid?.() !== 0) return "not root: Cyrus programs must be started as user cyrus with setpriv"
  const missing = programs.map(cyrusProgram).filter((p) => !isExecutable(p))
  if (missing.length > 0) return `missing: ${missing.join(", ")} (apt-get install cyrus-common)`
  if (!isExecutable(SETPRIV)) return `${SETPRIV} is missing`
  if (cyrusIds() === null) return "no user 'cyrus' / group 'mail' on this machine"
  return undefined
}

/**
 * The loud notice of a suite that skips because of `reason` (a green run without Cyrus has
 * tested nothing real); `install` says what to install.
 */
export const warnSkipping = (suite: string, reason: string | undefined, install = "the Debian 12 Cyrus 3.6.1 packages"): void => {
  if (reason === undefined) return
  const bar = "!".repeat(78)
  console.warn(`\n${bar}\n!! SKIPPING ${suite}: ${reason}\n!! Install ${install} and run as root.\n${bar}\n`)
}

/** The two backup tools the store and tools tests compare with. */
const BACKUP_TOOLS = ["ctl_backups", "cyr_backup"]

/** Whether the real ctl_backups and cyr_backup can be run here (as cyrus). */
export const haveCyrusTools: boolean = cyrusToolsSkipReason(BACKUP_TOOLS) === undefined

/** The notice for a suite that needs the real ctl_backups and cyr_backup, when they cannot be run. */
export const warnNoCyrusTools = (suite: string): void => warnSkipping(suite, cyrusToolsSkipReason(BACKUP_TOOLS))

/** argv that runs `argv` as cyrus:mail (setpriv when root, directly when already cyrus). */
export const asCyrusArgv = (argv: ReadonlyArray<string>): ReadonlyArray<string> =>
  process.getuid?.() === 0 ? [SETPRIV, "--reuid=cyrus", "--regid=mail", "--init-groups", "--", ...argv] : argv

export interface ToolRunResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a Cyrus program as cyrus:mail to its end (output latin1; code -1 when it could not run). */
export const runCyrusTool = (program: string, args: ReadonlyArray<string>): Promise<ToolRunResult> =>
  new Promise((resolve) => {
    const [cmd, ...rest] = asCyrusArgv([cyrusProgram(program), ...args])
    execFile(cmd!, rest, { encoding: "latin1", maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1
      resolve({ code, stdout, stderr })
    })
  })

/** A fresh directory under the system temp dir, readable and traversable by the cyrus user. */
export const tempDir = (prefix: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`))
  chmodSync(d, 0o755)
  return d
}

/** Gives the cyrus user ownership of everything under `dir`. */
export const chownForCyrus = (dir: string): void => {
  const ids = cyrusIds()
  if (ids === null) throw new Error("no user 'cyrus' / group 'mail' on this machine")
  const walk = (p: string) => {
    chownSync(p, ids.uid, ids.gid)
    if (statSync(p).isDirectory()) for (const e of readdirSync(p)) walk(path.join(p, e))
  }
  walk(dir)
}
