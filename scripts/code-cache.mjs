/**
 * V8 code caches for the program bundles (see bin/load.cjs): made by running each program once
 * with CYRUS_BACKUPD_WRITE_CODE_CACHE=1, doing what a short run does: backupd serves a `-X`
 * session (GET USER of a user without a backup, EXIT), ctl_backups lists an empty
 * configuration's backups, cyr_backup and restore print their version. The functions those
 * runs compiled are then deserialized instead of compiled at every start. Used by
 * `npm run build` (scripts/build-bundles.mjs) and by the install step (scripts/install-prefix.mjs),
 * with the node that will run them: a cache is only good for the V8 that made it.
 */
import { spawnSync } from "node:child_process"
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
    backupd: { args: ["-C", conf, "-X"], input: "GET USER cachetraining\r\nEXIT\r\n" },
    ctl_backups: { args: ["-C", conf, "list"], input: "" },
    cyr_backup: { args: ["--version"], input: "" },
    restore: { args: ["--version"], input: "" }
  })[program]

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

/** Writes `<file>.cache` for the bundle `file` of `program`, run by `node` through `loader`. */
const writeCodeCache = (file, program, conf, node, loader) => {
  fs.rmSync(`${file}.cache`, { force: true })
  const { args, input } = trainingRun(program, conf)
  const entry = path.join(path.dirname(conf), `${program}.cjs`)
  fs.writeFileSync(entry, `require(${JSON.stringify(loader)})(${JSON.stringify(file)})\n`)
  const { env, nodeFlags } = programRuntime(program)
  const r = spawnSync(node, [...nodeFlags, entry, ...args], {
    input,
    env: { ...process.env, ...env, CYRUS_BACKUPD_WRITE_CODE_CACHE: "1", BACKUPD_LOG_STDERR: "1" },
    encoding: "latin1"
  })
  if (!fs.existsSync(`${file}.cache`)) throw new Error(`no code cache for ${program}: ${r.stderr || r.error?.message}`)
  // the programs set their umask from imapd.conf; whoever runs bin/* must be able to read it
  fs.chmodSync(`${file}.cache`, 0o644)
}

/** Writes the code cache of each `<dir>/<program>.bundle.cjs`, run by `node` through `loader`. */
export const writeCodeCaches = (dir, programs, { node = process.execPath, loader }) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-code-cache-"))
  try {
    const conf = trainingConf(work)
    for (const program of programs) writeCodeCache(path.join(dir, `${program}.bundle.cjs`), program, conf, node, loader)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}
