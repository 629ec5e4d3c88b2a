/** Helpers of the release tests: file listings with sums, temp dirs, session input, the Cyrus tools as the oracle. */
import { spawnSync, type SpawnSyncReturns } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { asCyrusArgv, cyrusProgram, cyrusToolsSkipReason, tempDir as makeTempDir } from "../../support/cyrus.js"

export interface ListedFile {
  readonly name: string
  readonly mode: number
  readonly mtime: number
  readonly sha256: string
}

/** Every file and directory under `dir` (sorted), with permission bits, mtime and content hash. */
export const listTree = (dir: string): ReadonlyArray<ListedFile> => {
  const out: Array<ListedFile> = []
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel === "" ? name : `${rel}/${name}`
      const st = fs.lstatSync(path.join(dir, r))
      const sha256 = st.isFile() ? createHash("sha256").update(fs.readFileSync(path.join(dir, r))).digest("hex") : st.isDirectory() ? "dir" : "other"
      out.push({ name: r, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000), sha256 })
      if (st.isDirectory()) walk(r)
    }
  }
  walk("")
  return out
}

export const tempDir = (label: string): string => makeTempDir(`cyb-release-${label}`)

export const removeDir = (dir: string): void => {
  if (process.env["CYB_KEEP"] === undefined) fs.rmSync(dir, { recursive: true, force: true })
}

/** An environment without anything that could find packages outside the release. */
export const bareEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  PATH: "/usr/bin:/bin",
  HOME: os.tmpdir(),
  CYRUS_BACKUPD_NODE: process.execPath,
  ...extra
})

export const run = (cmd: string, args: ReadonlyArray<string>, options: { env?: Record<string, string>; input?: string; cwd?: string } = {}): SpawnSyncReturns<string> =>
  spawnSync(cmd, [...args], { env: options.env ?? bareEnv(), input: options.input ?? "", cwd: options.cwd, encoding: "latin1", timeout: 60_000 })

/** Real Cyrus 3.6.1 tools as the oracle: why they cannot be run here, or undefined. */
export const cyrusOracle = (): string | undefined => cyrusToolsSkipReason(["ctl_backups"])

export const runAsCyrus = (program: string, args: ReadonlyArray<string>): SpawnSyncReturns<string> => {
  const [cmd, ...rest] = asCyrusArgv([cyrusProgram(program), ...args])
  return run(cmd!, rest, { env: { PATH: "/usr/bin:/bin" } })
}

export const MESSAGE = "From: bob@example.org\r\nTo: anne@example.com\r\nSubject: release test\r\n\r\nhello from the release test\r\n"
export const MESSAGE_GUID = createHash("sha1").update(MESSAGE, "latin1").digest("hex")

/** A csync session that stores one message, one mailbox linking it, and a subscription. */
export const sessionInput = [
  "GET USER anne",
  `APPLY MESSAGE (%{default ${MESSAGE_GUID} ${MESSAGE.length}}\r\n${MESSAGE})`,
  "APPLY MAILBOX %(UNIQUEID relt1mailbox0000000000001 MBOXNAME user.anne SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID 1" +
    " HIGHESTMODSEQ 2 RECENTUID 1 RECENTTIME 1700000000 LAST_APPENDDATE 1700000000 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0" +
    ' UIDVALIDITY 1700000000 PARTITION default ACL "anne\tlrswipkxtecdan\t" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1' +
    ` RECORD (%(UID 1 MODSEQ 2 LAST_UPDATED 1700000000 FLAGS (\\Seen) INTERNALDATE 1700000000 SIZE ${MESSAGE.length} GUID ${MESSAGE_GUID})))`,
  "APPLY SUB %(USERID anne MBOXNAME user.anne.x)",
  "GET META anne",
  "EXIT",
  ""
].join("\r\n")

/** A backup host's imapd.conf in `dir`, with the directories it names. */
export const writeBackupConf = (dir: string): string => {
  for (const d of ["conf", "part", "tmp"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(conf, `configdirectory: ${dir}/conf\nbackuppartition-default: ${dir}/part\ntemp_path: ${dir}/tmp\nservername: reltest\n`)
  return conf
}

/** Data files (not indexes) under a backup partition. */
export const dataFiles = (partition: string): ReadonlyArray<string> =>
  (fs.readdirSync(partition, { recursive: true }) as Array<string>)
    .filter((f) => !f.includes(".index") && fs.statSync(path.join(partition, f)).isFile())
    .map((f) => path.join(partition, f))
    .sort()
