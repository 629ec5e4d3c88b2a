/**
 * `ctl_backups`: list, stat, verify, reindex and lock backups, named by userid, mailbox,
 * file, domain, userid prefix or all of backups.db — with Cyrus 3.6.1's output lines, JSON
 * objects and exit codes (64 usage, 75 when anything failed or was skipped, 78 configuration).
 *
 * Beyond the original (which prints "unimplemented" or does nothing): `delete`, `move` to
 * another partition and `reconstruct` (rebuild backups.db from the partitions); see
 * maintenance.ts. `compact` is src/store/compact.ts (Cyrus's rules, but unchanged leading
 * chunks are kept byte for byte).
 */
import { spawn } from "node:child_process"
import { Effect, Option } from "effect"
import type { CyrusConfig } from "../config/index.js"
import { BackupsDb, compactBackup, dataFileSize, reindexFile, type BackupsDbService } from "../store/index.js"
import { EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE } from "../util/sysexits.js"
import { versionLine } from "../util/version.js"
import { errorMessage, fixed6_1, IMAP_INTERNAL, IMAP_IOERROR, IMAP_MAILBOX_LOCKED, localTime } from "./cFormat.js"
import { cyrusVerify } from "./cyrusVerify.js"
import { getopt } from "./getopt.js"
import { JObject, jreal, jsonDump, jstring } from "./jansson.js"
import { deleteBackup, moveBackup, reconstructBackupsDb } from "./maintenance.js"
import { openErrorCode } from "./openErrors.js"
import { progressBar } from "./Progress.js"
import { listFromDb, lookupNamed, type Target } from "./targets.js"
import { openToolBackup } from "./ToolBackup.js"
import { printer, type Printer, type ToolIo } from "./ToolIo.js"
import { atoi, backupsDbLayer, loadConfig, runTool, ToolExit } from "./toolRuntime.js"
import { ctlBackupsUsage } from "./usageTexts.js"

const PROGRAM = "ctl_backups"

export type CtlCommand = "compact" | "delete" | "list" | "lock" | "move" | "reconstruct" | "reindex" | "stat" | "verify"
export type CtlMode = "all" | "domain" | "prefix" | "file" | "mboxname" | "userid"

export interface CtlArgs {
  readonly altConfig: string | undefined
  readonly command: CtlCommand
  readonly mode: CtlMode
  readonly lockMode: "pipe" | "sql" | "exec"
  readonly lockCommand: string | undefined
  readonly createExclusive: boolean
  readonly wait: boolean
  readonly verbose: number
  readonly stopOnError: boolean
  readonly listStale: number
  readonly force: boolean
  readonly noVerify: boolean
  readonly json: boolean
  readonly names: ReadonlyArray<string>
}

const COMMANDS: ReadonlyArray<CtlCommand> = ["compact", "delete", "list", "lock", "move", "reconstruct", "reindex", "stat", "verify"]

/** Parses the command line as the original does (getopt ":AC:DFPSVcfjmpst:x:uvw"). */
export const parseCtlArgs = (argv: ReadonlyArray<string>): CtlArgs | { readonly usage: true } => {
  const usage = { usage: true } as const
  const { events, operands } = getopt(argv, ":AC:DFPSVcfjmpst:x:uvw")
  let altConfig: string | undefined
  let mode: CtlMode | undefined
  let lockMode: CtlArgs["lockMode"] | undefined
  let lockCommand: string | undefined
  let createExclusive = false
  let wait = false
  let verbose = 0
  let stopOnError = false
  let listStale = 0
  let force = false
  let noVerify = false
  let json = false
  const setMode = (m: CtlMode) => {
    if (mode !== undefined) return false
    mode = m
    return true
  }
  const setLock = (m: CtlArgs["lockMode"]) => {
    if (lockMode !== undefined) return false
    lockMode = m
    return true
  }
  for (const ev of events) {
    if (ev._tag === "Unknown") return usage
    if (ev._tag === "MissingArgument") {
      if (ev.opt !== "t") return usage
      listStale = 24
      continue
    }
    const ok = (() => {
      switch (ev.opt) {
        case "A": return setMode("all")
        case "D": return setMode("domain")
        case "P": return setMode("prefix")
        case "f": return setMode("file")
        case "m": return setMode("mboxname")
        case "u": return setMode("userid")
        case "C": altConfig = ev.arg; return true
        case "F": force = true; return true
        case "S": stopOnError = true; return true
        case "V": noVerify = true; return true
        case "c": createExclusive = true; return true
        case "w": wait = true; return true
        case "j": if (verbose > 0) return false; json = true; return true
        case "v": if (json) return false; verbose++; return true
        case "p": return setLock("pipe")
        case "s": return setLock("sql")
        case "x": lockCommand = ev.arg; return setLock("exec")
        case "t": listStale = atoi(ev.arg ?? ""); return listStale !== 0
        default: return false
      }
    })()
    if (!ok) return usage
  }
  if (operands.length === 0) return usage
  const command = operands[0] as CtlCommand
  if (!COMMANDS.includes(command)) return usage
  const names = operands.slice(1)
  if (lockMode !== undefined && command !== "lock") return usage
  switch (command) {
    case "list":
      if (mode === undefined && names.length === 0) mode = "all"
      break
    case "lock":
    case "delete":
    case "move":
      if (mode === "all" || mode === "domain" || mode === "prefix") return usage
      // move names the backup and the destination partition
      if (command === "move" ? names.length !== 2 : names.length > 1) return usage
      break
    case "reconstruct":
      if (mode !== undefined || names.length > 0) return usage
      break
    default:
      break
  }
  const finalMode = mode ?? "userid"
  if (finalMode === "all" && names.length > 0) return usage
  return {
    altConfig, command, mode: finalMode, lockMode: lockMode ?? "pipe", lockCommand, createExclusive, wait, verbose,
    stopOnError, listStale, force, noVerify, json, names
  }
}

interface Run {
  readonly args: CtlArgs
  readonly config: CyrusConfig
  readonly db: BackupsDbService
  readonly io: ToolIo
  readonly p: Printer
  /** Backups skipped or failed so far (any makes the exit code 75). */
  skipsFails: number
}

const who = (t: Target) => t.userid ?? t.dataPath

const statusText = (r: number) =>
  r === 1 ? "skipped" : r === 0 ? "ok" : r === IMAP_MAILBOX_LOCKED ? "locked" : `failed (${errorMessage(r)})`

const printStatus = (run: Run, command: string, t: Target, r: number) =>
  run.args.json
    ? run.p.outUtf8(
        jsonDump(
          new JObject()
            .set("command", command)
            .set("userid", jstring(t.userid))
            .set("fname", jstring(t.dataPath))
            .set("status", statusText(r))
        ) + "\n"
      )
    : run.p.out(`${command} ${who(t)}: ${statusText(r)}\n`)

/** What the C loop does with one backup's result: count it, forgive locks, stop only with -S. */
const settle = (run: Run, r: number, counted = true) => {
  if (r !== 0 && counted) run.skipsFails++
  const kept = r === IMAP_MAILBOX_LOCKED ? 0 : r
  return run.args.stopOnError ? kept : 0
}

const listOne = (run: Run, t: Target) =>
  Effect.scoped(
    Effect.gen(function*() {
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
      let r = opened._tag === "Left" ? openErrorCode(opened.left) : 0
      if (opened._tag === "Right" && !run.args.noVerify) r = (yield* cyrusVerify(opened.right, "quick", 0)).code
      if (opened._tag === "Left" || r !== 0) {
        yield* run.p.err(`${who(t)}: ${errorMessage(r)}\n`)
        return settle(run, r)
      }
      const b = opened.right
      const latest = yield* b.queries.latestChunk.pipe(Effect.orElseSucceed(() => undefined))
      let timestamp = "[unknown]"
      if (latest !== undefined) {
        const end = latest.tsEnd ?? 0
        if (run.args.listStale && Math.floor(Date.now() / 1000) - end < 3600 * run.args.listStale) return settle(run, 0)
        timestamp = localTime(end)
      }
      const size = yield* dataFileSize(b).pipe(Effect.orElseSucceed(() => -1))
      if (run.args.json) {
        yield* run.p.outUtf8(
          jsonDump(
            new JObject()
              .set("timestamp", timestamp)
              .set("compressed", size)
              .set("userid", jstring(t.userid))
              .set("fname", jstring(t.dataPath))
          ) + "\n"
        )
      } else {
        yield* run.p.out(`${timestamp}\t${size}\t${t.userid ?? "[unknown]"}\t${t.dataPath}\n`)
      }
      return settle(run, 0)
    })
  )

const statOne = (run: Run, t: Target) =>
  Effect.scoped(
    Effect.gen(function*() {
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
      const fail = (r: number) => Effect.as(run.p.err(`${who(t)}: ${errorMessage(r)}\n`), run.args.stopOnError ? r : 0)
      if (opened._tag === "Left") return yield* fail(openErrorCode(opened.left))
      const b = opened.right
      if (!run.args.noVerify) {
        const v = yield* cyrusVerify(b, "quick", 0)
        if (v.code !== 0) return yield* fail(v.code)
      }
      const retention = run.config.backupRetention
      const since = retention > 0 ? Math.floor(Date.now() / 1000) - retention : -1
      const q = b.queries
      const figures = yield* Effect.either(
        Effect.gen(function*() {
          const all = yield* q.chunks
          const keep = yield* q.liveChunks(since)
          let uncompressed = 0
          for (const c of all) uncompressed += c.length ?? 0
          let compactable = 0
          for (const c of keep) for (const m of yield* q.liveMessages(c.id, since)) compactable += m.size
          const latest = yield* q.latestChunk
          return { uncompressed, compactable, latest }
        })
      )
      if (figures._tag === "Left") return yield* fail(IMAP_INTERNAL)
      const { uncompressed, compactable, latest } = figures.right
      const size = yield* dataFileSize(b).pipe(Effect.orElseSucceed(() => -1))
      if (size < 0) return yield* fail(IMAP_IOERROR)
      const cmp = (100.0 * size) / uncompressed
      const utl = (100.0 * compactable) / uncompressed
      const start = latest === undefined ? "[unknown]" : localTime(latest.tsStart)
      const end = latest === undefined ? "[unknown]" : localTime(latest.tsEnd ?? 0)
      if (run.args.json) {
        yield* run.p.outUtf8(
          jsonDump(
            new JObject()
              .set("userid", jstring(t.userid))
              .set("fname", jstring(t.dataPath))
              .set("compressed", size)
              .set("uncompressed", uncompressed)
              .set("compactable", compactable)
              .set("compression_ratio", jreal(cmp))
              .set("utilisation_ratio", jreal(utl))
              .set("last_start_time", start)
              .set("last_end_time", end)
          ) + "\n"
        )
      } else {
        yield* run.p.out(
          `${who(t)}\t${size}\t${uncompressed}\t${compactable}\t${fixed6_1(cmp)}%\t${fixed6_1(utl)}%\t${start.padStart(21)}\t${end}\n`
        )
      }
      return 0
    })
  )

const verifyOne = (run: Run, t: Target) =>
  Effect.gen(function*() {
    const r = yield* Effect.scoped(
      Effect.gen(function*() {
        const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: run.args.wait }))
        if (opened._tag === "Left") return openErrorCode(opened.left)
        const v = yield* cyrusVerify(opened.right, "full", run.args.verbose)
        yield* run.p.out(v.output)
        for (const d of v.diagnostics) yield* run.p.err(`${who(t)}: ${d}\n`)
        return v.code
      })
    )
    yield* printStatus(run, "verify", t, r)
    return settle(run, r)
  })

const reindexOne = (run: Run, t: Target) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(reindexFile(t.dataPath, { wait: run.args.wait, keepPrevious: run.config.backupKeepPrevious }))
    let r = 0
    if (result._tag === "Left") {
      const e = result.left
      r = e._tag === "BackupIndexError" ? IMAP_INTERNAL : openErrorCode(e)
    } else {
      const report = result.right
      if (run.args.verbose > 0) {
        // the offsets of the members found, read back from the new index
        const offsets = yield* Effect.scoped(
          Effect.flatMap(openToolBackup(t.dataPath, { wait: run.args.wait }), (b) =>
            Effect.zip(Effect.map(b.queries.chunks, (cs) => cs.map((c) => c.offset)), dataFileSize(b))
          )
        ).pipe(Effect.orElseSucceed(() => [[], undefined] as const))
        const [found, size] = offsets
        let text = found.map((o) => `\nfound chunk at offset ${o}\n\n`).join("")
        // Cyrus's reader only notices the end of the file after one more, empty, member
        if (size !== undefined && found.length > 0) text += `\nfound chunk at offset ${size}\n\n`
        yield* run.p.out(text + "reached end of file\n")
      }
      for (const prob of report.problems) {
        yield* run.p.out(`error reading chunk at offset ${prob.offset}, byte 0: ${prob.message}\n`)
        r = IMAP_IOERROR
      }
      for (const rej of report.rejected) {
        yield* run.p.err(`${who(t)}: chunk ${rej.chunkId} offset ${rej.offset}: ${rej.key} not indexed (${rej.reason}: ${rej.message})\n`)
      }
    }
    yield* printStatus(run, "reindex", t, r)
    return settle(run, r)
  })

const compactOne = (run: Run, t: Target) =>
  Effect.gen(function*() {
    const c = run.config
    const result = yield* Effect.either(
      compactBackup(t.dataPath, {
        retention: c.backupRetention,
        minBytes: c.backupCompactMinBytes,
        maxBytes: c.backupCompactMaxBytes,
        workThreshold: c.backupCompactEffectiveWorkThreshold,
        keepPrevious: c.backupKeepPrevious,
        force: run.args.force,
        wait: run.args.wait,
        stagingDir: c.backupStagingPath
      })
    )
    let r = 0
    if (result._tag === "Left") {
      const e = result.left
      r = e._tag === "CompactFailed" ? IMAP_IOERROR : openErrorCode(e)
      if (e._tag === "CompactFailed" || e._tag === "BackupIoError" || e._tag === "BackupIndexError") {
        yield* run.p.err(`${who(t)}: ${e.message}\n`)
      }
    } else if (!result.right.compacted) {
      r = 1
    } else {
      const report = result.right
      if (run.args.verbose > 0) {
        yield* run.p.out(`keeping ${report.keptChunks.length} chunks:\n${report.keptChunks.map((id) => ` ${id}`).join("")}\n`)
        for (const line of report.log) yield* run.p.out(`${line}\n`)
      }
      for (const e of report.readErrors) yield* run.p.out(`error reading chunk at offset ${e.offset}, byte ${e.byte}: ${e.message}\n`)
    }
    yield* printStatus(run, "compact", t, r)
    return settle(run, r)
  })

/** Waits for end of input on stdin (lock -p). */
const untilStdinEnds = (io: ToolIo) =>
  Effect.async<void>((resume) => {
    const s = io.stdin
    const done = () => {
      s.removeListener("end", done)
      s.removeListener("close", done)
      s.removeListener("error", done)
      s.removeListener("data", ignore)
      if ("pause" in s) s.pause()
      resume(Effect.void)
    }
    const ignore = () => {}
    s.on("data", ignore)
    s.once("end", done)
    s.once("close", done)
    s.once("error", done)
    s.resume()
  })

/** Runs a child with our standard streams and returns its exit status (EX_SOFTWARE on signal or spawn failure). */
const runChild = (io: ToolIo, file: string, argv: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
  Effect.async<number>((resume) => {
    const inherit = io.stdout === process.stdout && io.stderr === process.stderr
    const child = spawn(file, argv, { stdio: inherit ? "inherit" : ["pipe", "pipe", "pipe"], env })
    if (!inherit) {
      child.stdout?.pipe(io.stdout, { end: false })
      child.stderr?.pipe(io.stderr, { end: false })
      io.stdin.pipe(child.stdin!)
    }
    child.once("error", (e) => {
      io.stderr.write(`${file}: ${e.message}\n`)
      resume(Effect.succeed(EX_SOFTWARE))
    })
    child.once("close", (code) => {
      if (!inherit) io.stdin.unpipe(child.stdin!)
      resume(Effect.succeed(code === null ? EX_SOFTWARE : code))
    })
  })

const lockOne = (run: Run, t: Target) =>
  Effect.scoped(
    Effect.gen(function*() {
      const { p, io, args } = run
      const pipeMode = args.lockMode === "pipe"
      if (pipeMode) yield* p.out(`* Trying to obtain lock on ${who(t)}...\n`)
      else yield* p.err(`trying to obtain lock on ${who(t)}...\n`)
      const opened = yield* Effect.either(openToolBackup(t.dataPath, { wait: args.wait, createExclusive: args.createExclusive }))
      let r = opened._tag === "Left" ? openErrorCode(opened.left) : 0
      if (opened._tag === "Right") r = (yield* cyrusVerify(opened.right, "quick", 0)).code
      if (opened._tag === "Left" || r !== 0) {
        if (pipeMode) yield* p.out(`NO failed (${errorMessage(r)})\n`)
        else yield* p.err(`unable to lock ${who(t)}: ${errorMessage(r)}\n`)
        run.skipsFails++
        return EX_SOFTWARE
      }
      const b = opened.right
      let status = 0
      if (pipeMode) {
        yield* p.out("OK locked\n")
        yield* untilStdinEnds(io)
      } else if (args.lockMode === "sql") {
        yield* p.err(`execlp: sqlite3 ${b.indexPath}\n`)
        status = yield* runChild(io, "sqlite3", [b.indexPath], { ...io.env })
      } else {
        status = yield* runChild(io, "/bin/sh", ["-c", args.lockCommand ?? ""], {
          ...io.env,
          ctl_backups_lock_data_fname: b.dataPath,
          ctl_backups_lock_index_fname: b.indexPath
        })
      }
      if (status !== 0) run.skipsFails++
      return status
    })
  )

const deleteOne = (run: Run, t: Target) =>
  Effect.gen(function*() {
    const r = yield* deleteBackup(run.db, t, { wait: run.args.wait }).pipe(Effect.map(() => 0), Effect.catchAll((e) => Effect.succeed(e.code)))
    yield* printStatus(run, "delete", t, r)
    return settle(run, r)
  })

const moveOne = (partition: string) => (run: Run, t: Target) =>
  Effect.gen(function*() {
    const r = yield* moveBackup(run.db, run.config, t, partition, { wait: run.args.wait }).pipe(
      Effect.flatMap((to) => (run.args.verbose > 0 ? run.p.out(`moved ${t.dataPath} to ${to}\n`) : Effect.void)),
      Effect.map(() => 0),
      Effect.catchAll((e) => Effect.succeed(e.code))
    )
    yield* printStatus(run, "move", t, r)
    return settle(run, r)
  })

type One = (run: Run, t: Target) => Effect.Effect<number>

const perBackup = (args: CtlArgs): One | undefined => {
  switch (args.command) {
    case "list": return listOne
    case "stat": return statOne
    case "verify": return verifyOne
    case "reindex": return reindexOne
    case "compact": return compactOne
    case "lock": return lockOne
    case "delete": return deleteOne
    case "move": return moveOne(args.names[1]!)
    default: return undefined
  }
}

const program = (args: CtlArgs, io: ToolIo): Effect.Effect<number, ToolExit> =>
  Effect.gen(function*() {
    const p = printer(io)
    const config = yield* loadConfig(PROGRAM, args.altConfig, io)
    const main = Effect.gen(function*() {
      const db = yield* BackupsDb
      const bar = progressBar(io)
      // anything printed first erases the progress bar
      const clear = Effect.sync(bar.clear)
      const out: Printer = {
        out: (s) => Effect.zipRight(clear, p.out(s)),
        err: (s) => Effect.zipRight(clear, p.err(s)),
        outBytes: (b) => Effect.zipRight(clear, p.outBytes(b)),
        outUtf8: (s) => Effect.zipRight(clear, p.outUtf8(s))
      }
      const run: Run = { args, config, db, io, p: out, skipsFails: 0 }
      if (args.command === "reconstruct") {
        const r = yield* reconstructBackupsDb(db, config, { json: args.json, verbose: args.verbose, printer: p })
        return r === 0 ? EX_OK : EX_TEMPFAIL
      }
      const one = perBackup(args)!
      const each = (targets: ReadonlyArray<Target>) =>
        Effect.gen(function*() {
          let i = 0
          for (const t of targets) {
            bar.step(i++, targets.length, who(t))
            const r = yield* one(run, t)
            if (r !== 0) {
              bar.clear()
              return r
            }
          }
          bar.clear()
          return 0
        })
      let r = 0
      if (args.mode === "all" || args.mode === "domain" || args.mode === "prefix") {
        const listed = yield* Effect.either(listFromDb(db, config, args.mode, args.names))
        if (listed._tag === "Left") {
          yield* p.err(`${PROGRAM}: cannot read backups.db: ${String((listed.left as { message?: string }).message ?? listed.left._tag)}\n`)
          r = IMAP_IOERROR
        } else if (args.mode === "all") {
          r = yield* each(listed.right)
        } else {
          // one pass per argument, stopping at the first that fails
          for (const name of args.names) {
            if (r !== 0) break
            const part = yield* Effect.orElseSucceed(listFromDb(db, config, args.mode, [name]), () => [])
            r = yield* each(part)
          }
        }
      } else {
        const names = args.command === "move" ? args.names.slice(0, 1) : args.names
        for (const name of names) {
          let target: Target
          if (args.mode === "file") {
            target = { userid: undefined, dataPath: name }
          } else {
            const found = yield* Effect.either(lookupNamed(db, config, args.mode, name))
            if (found._tag === "Left" || Option.isNone(found.right)) {
              yield* p.err(`${name}: not found in backups.db\n`)
              r = -5
              continue
            }
            r = 0
            target = found.right.value
          }
          if (r === 0) r = yield* one(run, target)
          if (r !== 0) break
        }
      }
      return r !== 0 || run.skipsFails > 0 ? EX_TEMPFAIL : EX_OK
    })
    return yield* main.pipe(Effect.provide(backupsDbLayer(config)), Effect.catchAll((e) =>
      Effect.as(p.err(`${PROGRAM}: ${(e as { message?: string }).message ?? (e as { _tag?: string })._tag ?? String(e)}\n`), EX_TEMPFAIL)
    ))
  })

/** Runs `ctl_backups` with `argv` (without the program name); resolves to the exit code. */
export const runCtlBackups = (argv: ReadonlyArray<string>, io: ToolIo): Promise<number> => {
  if (argv.length === 1 && argv[0] === "--version") {
    io.stdout.write(versionLine(PROGRAM) + "\n")
    return Promise.resolve(EX_OK)
  }
  const parsed = parseCtlArgs(argv)
  if ("usage" in parsed) {
    io.stderr.write(ctlBackupsUsage(PROGRAM))
    return Promise.resolve(EX_USAGE)
  }
  return runTool(PROGRAM, io, program(parsed, io))
}
