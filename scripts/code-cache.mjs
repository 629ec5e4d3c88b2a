/**
 * V8 code caches for the program bundles (see bin/load.cjs): made by running each program once
 * with CYRUS_BACKUPD_WRITE_CODE_CACHE=1, doing what a short run does: on a one-message backup
 * (stored by backupd first, without a cache), backupd serves a `-X` session (GET USER of its
 * user, which opens it, EXIT), ctl_backups lists the backups and cyr_backup the chunks (a
 * tool's run opens the backup, its index and verifies it, and the functions of that path were
 * otherwise compiled at every start), restore prints its version. The functions those
 * runs compiled are then deserialized instead of compiled at every start. Used by
 * `npm run build` (scripts/build-bundles.mjs) and by the install step (scripts/install-prefix.mjs),
 * with the node that will run them: a cache is only good for the V8 that made it.
 */
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/**
 * How a program is started, by every wrapper that runs it (bin/<program>'s `#!` line, the
 * release's and the installed wrappers) and by the run that makes its code cache (V8 rejects a
 * cache made under other flags). backupd, which holds a sync's I/O buffers: a young generation
 * of 2 MB semi-spaces instead of node's 16, and glibc's malloc giving every block of 128 KiB
 * or more a mapping of its own (its default threshold rises to the largest block freed, after
 * which freed buffers stay in the heap); measured effect in docs/benchmarks.md, "memory".
 */
export const programRuntime = (program) =>
  program === "backupd"
    ? { env: { MALLOC_MMAP_THRESHOLD_: "131072", MALLOC_TRIM_THRESHOLD_: "524288" }, nodeFlags: ["--max-semi-space-size=2"] }
    : { env: {}, nodeFlags: [] }

/** `NAME=value ...` of `programRuntime(program).env`, for `env` on a command line. */
export const envAssignments = (program) =>
  Object.entries(programRuntime(program).env).map(([k, v]) => `${k}=${v}`)

/** The shell lines a wrapper runs before its `exec`: `export NAME=value ...`, or none. */
export const envLines = (program) => (envAssignments(program).length === 0 ? [] : [`export ${envAssignments(program).join(" ")}`])

/** The `#!` line bin/<program> must start with. */
export const shebangOf = (program) =>
  programRuntime(program).nodeFlags.length === 0 && envAssignments(program).length === 0
    ? "#!/usr/bin/env node"
    : `#!/usr/bin/env -S ${[...envAssignments(program), "node", ...programRuntime(program).nodeFlags].join(" ")}`

/** The arguments and standard input of the run that makes each program's code cache. */
const trainingRun = (program, conf) =>
  ({
    backupd: { args: ["-C", conf, "-X"], input: `GET USER ${TRAINING_USER}\r\nEXIT\r\n` },
    ctl_backups: { args: ["-C", conf, "list"], input: "" },
    cyr_backup: { args: ["-C", conf, "-u", TRAINING_USER, "list", "chunks"], input: "" },
    restore: { args: ["--version"], input: "" }
  })[program]

/** The user whose one-message backup the tools' training runs read. */
const TRAINING_USER = "cachetraining"

/** What backupd is sent to store that backup: the message and its mailbox, as sync_client does. */
const storeSession = () => {
  const message = "From: a@example.com\r\nSubject: code cache\r\n\r\nhello\r\n"
  const guid = createHash("sha1").update(message, "latin1").digest("hex")
  return [
    `GET USER ${TRAINING_USER}`,
    `APPLY MESSAGE (%{default ${guid} ${message.length}}\r\n${message})`,
    `APPLY MAILBOX %(UNIQUEID cachetraining00000000000001 MBOXNAME user.${TRAINING_USER} SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID 1` +
      " HIGHESTMODSEQ 2 RECENTUID 1 RECENTTIME 1700000000 LAST_APPENDDATE 1700000000 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0" +
      ` UIDVALIDITY 1700000000 PARTITION default ACL "${TRAINING_USER}\tlrswipkxtecdan\t" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1` +
      ` RECORD (%(UID 1 MODSEQ 2 LAST_UPDATED 1700000000 FLAGS (\\Seen) INTERNALDATE 1700000000 SIZE ${message.length} GUID ${guid})))`,
    "EXIT",
    ""
  ].join("\r\n")
}

/** A throw-away configuration for the training runs. */
const trainingConf = (dir) => {
  for (const d of ["conf", "part", "staging"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${dir}/conf`,
      `backuppartition-default: ${dir}/part`,
      `backup_db_path: ${dir}/conf/backups.db`,
      `backup_staging_path: ${dir}/staging`,
      "servername: build",
      ""
    ].join("\n")
  )
  return conf
}

/** Runs the bundle `file` of `program` (by `node` through `loader`) with `args` and `input`. */
const runProgram = (file, program, conf, node, loader, args, input, env) => {
  const entry = path.join(path.dirname(conf), `${program}.cjs`)
  fs.writeFileSync(entry, `require(${JSON.stringify(loader)})(${JSON.stringify(file)})\n`)
  const runtime = programRuntime(program)
  return spawnSync(node, [...runtime.nodeFlags, entry, ...args], {
    input,
    env: { ...process.env, ...runtime.env, BACKUPD_LOG_STDERR: "1", ...env },
    encoding: "latin1"
  })
}

/** Writes `<file>.cache` for the bundle `file` of `program`, run by `node` through `loader`. */
const writeCodeCache = (file, program, conf, node, loader) => {
  fs.rmSync(`${file}.cache`, { force: true })
  const { args, input } = trainingRun(program, conf)
  const r = runProgram(file, program, conf, node, loader, args, input, { CYRUS_BACKUPD_WRITE_CODE_CACHE: "1" })
  if (!fs.existsSync(`${file}.cache`)) throw new Error(`no code cache for ${program}: ${r.stderr || r.error?.message}`)
  // the programs set their umask from imapd.conf; whoever runs bin/* must be able to read it
  fs.chmodSync(`${file}.cache`, 0o644)
}

/** Writes the code cache of each `<dir>/<program>.bundle.cjs`, run by `node` through `loader`. */
export const writeCodeCaches = (dir, programs, { node = process.execPath, loader }) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-code-cache-"))
  try {
    const conf = trainingConf(work)
    // the tools' training runs read a backup: backupd stores one (no cache is written by this run)
    const stored = runProgram(path.join(dir, "backupd.bundle.cjs"), "backupd", conf, node, loader, ["-C", conf, "-X"], storeSession(), {})
    if (stored.status !== 0) throw new Error(`storing the code-cache training backup failed: ${stored.stdout}${stored.stderr || stored.error?.message}`)
    for (const program of programs) writeCodeCache(path.join(dir, `${program}.bundle.cjs`), program, conf, node, loader)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}
