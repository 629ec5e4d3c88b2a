/**
 * `ctl_backups`: list, stat, verify, reindex and lock backups, named by userid, mailbox,
 * file, domain, userid prefix or all of backups.db — with Cyrus 3.6.1's output lines, JSON
 * objects and exit codes (64 usage, 75 when anything failed or was skipped, 78 configuration).
 *
 * Beyond the original (which prints "unimplemented" or does nothing): `delete`, `move` to
 * another partition and `reconstruct` (rebuild backups.db from the partitions). `compact` is
 * src/store/maintain/compact.ts (Cyrus's rules, but unchanged leading chunks are kept byte
 * for byte).
 *
 * Each command is a module of its own returning a typed result (list.ts ... reconstruct.ts);
 * printer.ts prints the results; this module runs the command over the named backups as the
 * C loop does.
 */
import { Effect, Either, Option } from "effect"
import fs from "node:fs"
import { BackupsDb } from "../../store/index.js"
import { EX_OK, EX_TEMPFAIL } from "../../util/sysexits.js"
import { IMAP_IOERROR } from "../cFormat.js"
import { noProgress, progressBar } from "../Progress.js"
import { listFromDb, lookupNamed, type Target } from "../targets.js"
import { printer, type Printer, type ToolIo } from "../ToolIo.js"
import { backupsDbLayer, configFailure, loadConfig, runTool, toolMain, type ToolFailure } from "../toolRuntime.js"
import { ctlBackupsUsage } from "../usageTexts.js"
import { parseCtlArgs, type CtlArgs } from "./args.js"
import { listBackup } from "./list.js"
import {
  printCompact,
  printDbUnreadable,
  printList,
  printMoved,
  printNotFound,
  printReconstruct,
  printReindex,
  printStat,
  printStatus,
  printVerify
} from "./printer.js"
import { settle, who, type Run } from "./Run.js"
import { statBackup } from "./stat.js"
import { verifyOne } from "./verify.js"

const PROGRAM = "ctl_backups"

/** A data file's size now (for the progress bar; 0 if it is gone). */
const dataBytes = (t: Target): number => {
  try {
    return fs.statSync(t.dataPath).size
  } catch {
    return 0
  }
}

/**
 * The commands that list and stat never need are loaded on first use (each an `import()`, which
 * the bundle turns into a module initialised only then): what every `ctl_backups` start pays
 * stays what a list needs (docs/benchmarks.md, "start-up").
 */
const lazy = <M>(load: () => Promise<M>): Effect.Effect<M> => Effect.promise(load)
const compactModule = lazy(() => import("./compact.js"))
const deleteModule = lazy(() => import("./delete.js"))
const moveModule = lazy(() => import("./move.js"))
const reindexModule = lazy(() => import("./reindex.js"))
const healthModule = lazy(() => import("./health.js"))
// lock runs children (sqlite3, a shell): node:child_process is loaded with it
const lockModule = lazy(() => import("./lock.js"))

/** One command on one backup: run, print, and the code the loop goes on with (non-zero stops it). */
type One = (run: Run, t: Target) => Effect.Effect<number>

const after = (print: Effect.Effect<void>, code: () => number) => Effect.zipRight(print, Effect.sync(code))

const perBackup = (args: CtlArgs): One | undefined => {
  switch (args.command) {
    case "list":
      return (run, t) => Effect.flatMap(listBackup(run, t), (r) => after(printList(run, t, r), () => settle(run, r._tag === "Failed" ? r.code : 0)))
    case "stat":
      // as the C code: a failure is not counted, and only stops the run with -S
      return (run, t) =>
        Effect.flatMap(statBackup(run, t), (r) => after(printStat(run, t, r), () => (r._tag === "Failed" && run.args.stopOnError ? r.code : 0)))
    case "verify":
      return (run, t) => Effect.flatMap(verifyOne(run, t), (r) => after(printVerify(run, t, r), () => settle(run, r.code)))
    case "reindex":
      return (run, t) =>
        Effect.flatMap(Effect.flatMap(reindexModule, ({ reindexOne }) => reindexOne(run, t)), (r) => {
          const code = r._tag === "Failed" ? r.code : r.problems.length > 0 ? IMAP_IOERROR : 0
          return after(printReindex(run, t, r, code), () => settle(run, code))
        })
    case "compact":
      return (run, t) =>
        Effect.flatMap(Effect.flatMap(compactModule, ({ compactOne }) => compactOne(run, t)), (r) => {
          const code = r._tag === "Failed" ? r.code : r._tag === "NotNeeded" ? 1 : 0
          return after(printCompact(run, t, r, code), () => settle(run, code))
        })
    case "lock":
      return (run, t) =>
        Effect.flatMap(lockModule, ({ lockExitCode, lockOne }) =>
          Effect.map(lockOne(run, t), (r) => {
            const code = lockExitCode(r)
            if (code !== 0) run.skipsFails++
            return code
          })
        )
    case "delete":
      return (run, t) => Effect.flatMap(Effect.flatMap(deleteModule, ({ deleteOne }) => deleteOne(run, t)), (code) => after(printStatus(run, "delete", t, code), () => settle(run, code)))
    case "move": {
      const to = args.names[1]!
      return (run, t) =>
        Effect.flatMap(Effect.flatMap(moveModule, ({ moveOne }) => moveOne(to)(run, t)), (r) =>
          after(Effect.zipRight(printMoved(run, t, r.movedTo), printStatus(run, "move", t, r.code)), () => settle(run, r.code))
        )
    }
    default:
      return undefined
  }
}

const program = (args: CtlArgs, io: ToolIo) =>
  Effect.gen(function*() {
    const p = printer(io)
    const config = yield* loadConfig(PROGRAM, args.altConfig, io)
    const main = Effect.gen(function*() {
      const db = yield* BackupsDb
      // on a terminal, for the commands that take long (list and stat are quick)
      const long = ["verify", "reindex", "compact", "reconstruct", "push", "pull"].includes(args.command)
      const bar = long ? progressBar(io, { json: args.json }) : noProgress
      // anything printed first erases the progress bar
      const clear = Effect.sync(bar.clear)
      const out: Printer = {
        out: (s) => Effect.zipRight(clear, p.out(s)),
        err: (s) => Effect.zipRight(clear, p.err(s)),
        outBytes: (b) => Effect.zipRight(clear, p.outBytes(b)),
        outUtf8: (s) => Effect.zipRight(clear, p.outUtf8(s))
      }
      const run: Run = { args, config, db, io, p: out, progress: bar, skipsFails: 0 }
      if (args.monitor !== undefined) {
        const monitor = args.monitor
        return yield* monitor.command === "metrics"
          ? Effect.flatMap(lazy(() => import("./metrics.js")), ({ runMetrics }) => runMetrics(p, PROGRAM, config, db, monitor))
          : Effect.flatMap(healthModule, ({ runHealth }) => runHealth(p, config, db, monitor))
      }
      if (args.command === "reconstruct") {
        const { reconstructBackupsDb } = yield* lazy(() => import("./reconstruct.js"))
        const r = yield* reconstructBackupsDb(db, config, args.verbose, bar)
        bar.clear()
        yield* printReconstruct(p, args.json, r)
        return r.code === 0 ? EX_OK : EX_TEMPFAIL
      }
      if (args.command === "pull") return yield* Effect.flatMap(lazy(() => import("./pull.js")), ({ pullCommand }) => pullCommand(run))
      // push, verify -O: the object store (objectStore.ts)
      const store = args.command === "push" || args.objectStore ? (yield* lazy(() => import("./objectStore.js"))).storeCommand(run) : undefined
      if (store !== undefined) {
        const ended = yield* store.start
        if (ended !== undefined) return ended
      }
      const one = store?.one ?? perBackup(args)!
      const each = (targets: ReadonlyArray<Target>) =>
        Effect.gen(function*() {
          let i = 0
          for (const t of targets) {
            bar.step(i++, targets.length, who(t))
            const r = yield* one(run, t)
            bar.addBytes(dataBytes(t))
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
          yield* printDbUnreadable(p, PROGRAM, listed.left)
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
              yield* printNotFound(p, name)
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
      if (store !== undefined) return yield* store.finish(r)
      return r !== 0 || run.skipsFails > 0 ? EX_TEMPFAIL : EX_OK
    })
    return yield* main.pipe(Effect.provide(backupsDbLayer(config)))
  })

type Failure = Effect.Effect.Error<ReturnType<typeof program>>

/** How a run that failed as a whole ends: a configuration error is Cyrus's `fatal error`, anything else 75. */
const failure = (e: Failure): ToolFailure =>
  e._tag === "ConfigError" ? configFailure(e) : { exitCode: EX_TEMPFAIL, line: `${PROGRAM}: ${e.message}\n` }

/** Runs `ctl_backups` with `argv` (without the program name); resolves to the exit code. */
export const runCtlBackups = (argv: ReadonlyArray<string>, io: ToolIo): Promise<number> =>
  toolMain(
    PROGRAM,
    argv,
    io,
    (a) => {
      const parsed = parseCtlArgs(a)
      return "usage" in parsed ? Either.left(ctlBackupsUsage(PROGRAM)) : Either.right(parsed)
    },
    (args) =>
      runTool(
        PROGRAM,
        io,
        // a Nagios plugin says UNKNOWN (exit 3) on stdout for whatever stops the check
        args.command === "health" ? Effect.catchAll(program(args, io), (e) => Effect.flatMap(healthModule, ({ healthUnknown }) => healthUnknown(printer(io), failure(e).line.trim()))) : program(args, io),
        failure
      )
  )
