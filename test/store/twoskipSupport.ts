/**
 * Helpers for the twoskip tests: scratch directories the cyrus user can use, and the real
 * `cyr_dbtool` (Cyrus 3.6.1) run as cyrus:mail.
 */
import { spawnSync } from "node:child_process"
import { accessSync, chownSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"

export const CYR_DBTOOL = "/usr/lib/cyrus/bin/cyr_dbtool"
const SETPRIV = "/usr/bin/setpriv"

const cyrusIds = (): { uid: number; gid: number } | undefined => {
  const field = (file: string, name: string): number | undefined => {
    try {
      const line = readFileSync(file, "latin1").split("\n").find((l) => l.startsWith(`${name}:`))
      const v = line?.split(":")[2]
      return v === undefined ? undefined : Number(v)
    } catch {
      return undefined
    }
  }
  const uid = field("/etc/passwd", "cyrus")
  const gid = field("/etc/group", "mail")
  return uid === undefined || gid === undefined ? undefined : { uid, gid }
}

/** Why cyr_dbtool cannot be used here, or undefined. */
export const cyrDbtoolSkipReason = (): string | undefined => {
  try {
    accessSync(CYR_DBTOOL, constants.X_OK)
  } catch {
    return `${CYR_DBTOOL} missing`
  }
  const ids = cyrusIds()
  if (ids === undefined) return "no user cyrus / group mail"
  const uid = process.getuid?.()
  if (uid !== 0 && uid !== ids.uid) return "must run as root or as cyrus"
  return undefined
}

export const haveCyrDbtool = (suite: string): boolean => {
  const reason = cyrDbtoolSkipReason()
  if (reason !== undefined) {
    const bar = "!".repeat(78)
    console.warn(`\n${bar}\n!! SKIPPING "${suite}": ${reason}\n!! (needs Debian 12 cyrus-common 3.6.1)\n${bar}\n`)
  }
  return reason === undefined
}

/** A scratch directory owned by cyrus:mail when we are root, with a minimal imapd.conf. */
export const scratchDir = (label: string): { dir: string; conf: string; cleanup: () => void } => {
  const dir = mkdtempSync(path.join(tmpdir(), `twoskip-${label}-`))
  const conf = path.join(dir, "imapd.conf")
  writeFileSync(conf, `configdirectory: ${dir}/conf\n`)
  const ids = cyrusIds()
  if (process.getuid?.() === 0 && ids !== undefined) {
    chownSync(dir, ids.uid, ids.gid)
    chownSync(conf, ids.uid, ids.gid)
  }
  return { dir, conf, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Gives a file we wrote to cyrus:mail (Cyrus refuses to run as root, and must open it RW). */
export const giveToCyrus = (file: string): void => {
  const ids = cyrusIds()
  if (process.getuid?.() === 0 && ids !== undefined) chownSync(file, ids.uid, ids.gid)
}

export interface ToolResult {
  readonly status: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

/** Runs `cyr_dbtool -C conf [flags] <file> twoskip <args...>` as cyrus (`-n` = create). */
export const cyrDbtool = (
  conf: string,
  file: string,
  args: ReadonlyArray<string>,
  input?: Buffer,
  flags: ReadonlyArray<string> = []
): ToolResult => {
  const argv = [CYR_DBTOOL, "-C", conf, ...flags, file, "twoskip", ...args]
  const full = process.getuid?.() === 0 ? [SETPRIV, "--reuid=cyrus", "--regid=mail", "--init-groups", "--", ...argv] : argv
  const r = spawnSync(full[0]!, full.slice(1), { input, timeout: 30_000 })
  return { status: r.status, stdout: r.stdout ?? Buffer.alloc(0), stderr: (r.stderr ?? Buffer.alloc(0)).toString("latin1") }
}

/** Parses `show` output (`key\tvalue\n` lines) into pairs of latin1 strings. */
export const parseShow = (out: Buffer): Array<[string, string]> =>
  out
    .toString("latin1")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const tab = l.indexOf("\t")
      return [l.slice(0, tab), l.slice(tab + 1)] as [string, string]
    })
