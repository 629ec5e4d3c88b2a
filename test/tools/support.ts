/**
 * Helpers for the tools tests: a temp backup server layout (partition, backups.db written by
 * our BackupsDb, imapd.conf) around a backup, our tools run in-process with captured
 * streams, and the original Cyrus tools run as cyrus for comparison.
 */
import fs from "node:fs"
import path from "node:path"
import { PassThrough, Readable } from "node:stream"
import { Effect, Layer } from "effect"
import { Partitions } from "../../src/partitions/index.js"
import { BackupsDb } from "../../src/store/index.js"
import { runCtlBackups } from "../../src/tools/ctlBackups/main.js"
import { runCyrBackup } from "../../src/tools/cyrBackup.js"
import type { ToolIo } from "../../src/tools/ToolIo.js"
import { copyGolden } from "../store/support.js"
import { chownForCyrus, runCyrusTool, tempDir } from "../support/cyrus.js"

export interface ToolRun {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const collect = () => {
  const s = new PassThrough()
  const parts: Array<Buffer> = []
  s.on("data", (b: Buffer) => parts.push(b))
  return { s, text: () => Buffer.concat(parts).toString("latin1") }
}

/** Runs one of our tools in this process with captured output and an empty stdin. */
export const runOurs = async (prog: "ctl_backups" | "cyr_backup", argv: ReadonlyArray<string>): Promise<ToolRun> => {
  const out = collect()
  const err = collect()
  const io: ToolIo = { stdout: out.s, stderr: err.s, stdin: Readable.from([]), stderrIsTty: false, env: process.env }
  const code = await (prog === "ctl_backups" ? runCtlBackups : runCyrBackup)(argv, io)
  await new Promise((r) => setImmediate(r))
  return { code, stdout: out.text(), stderr: err.text() }
}

/** Cyrus's parser trips over some APPLY lines (gaps: plain literals) and says so on stderr only. */
const CYRUS_PARSE_NOISE = "\ndidn't parse dlist, error -1\n"

export const runTheirs = async (prog: "ctl_backups" | "cyr_backup", argv: ReadonlyArray<string>): Promise<ToolRun> => {
  const r = await runCyrusTool(prog, argv)
  return { code: r.code, stdout: r.stdout, stderr: r.stderr.split(CYRUS_PARSE_NOISE).join("") }
}

export interface Server {
  readonly dir: string
  readonly conf: string
  readonly partition: string
  readonly dbPath: string
  /** Adds a backup for `userid` at `dataPath` to backups.db. */
  readonly record: (userid: string, dataPath: string) => Promise<void>
}

/** A backup server layout under a fresh temp dir, owned by cyrus. */
export const makeServer = (name: string, extraConf: ReadonlyArray<string> = []): Server => {
  const dir = tempDir(`tools-${name}`)
  const partition = path.join(dir, "backups")
  for (const d of ["conf", "backups/a", "tmp", "other"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  const dbPath = path.join(dir, "conf", "backups.db")
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${dir}/conf`,
      `backuppartition-default: ${partition}`,
      `backuppartition-other: ${dir}/other`,
      `backup_db_path: ${dbPath}`,
      `temp_path: ${dir}/tmp`,
      "syslog_prefix: tools-test",
      ...extraConf,
      ""
    ].join("\n")
  )
  const record = (userid: string, dataPath: string) =>
    Effect.runPromise(
      Effect.flatMap(BackupsDb, (db) => db.record(userid, dataPath)).pipe(
        Effect.provide(BackupsDb.layer({ path: dbPath }).pipe(Layer.provide(Partitions.layer(new Map()))))
      )
    ).then(() => chownIfRoot(dir))
  return { dir, conf, partition, dbPath, record }
}

export const chownIfRoot = (dir: string) => {
  if (process.getuid?.() === 0) chownForCyrus(dir)
}

/** The golden C-written backup of alice, recorded in backups.db. */
export const goldenServer = async (name: string): Promise<Server & { readonly data: string }> => {
  const server = makeServer(name)
  const data = copyGolden(path.join(server.partition, "a"), "alice_golden")
  await server.record("alice", data)
  return { ...server, data }
}
