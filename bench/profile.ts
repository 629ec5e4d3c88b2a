/**
 * Profiling driver: the bench:sync workload (initial `-A` of `--messages`, `--changes` more, one
 * message of `--big-mb`) against OUR backupd only, run as
 * `node <--node-flags> -r <--preload> bin/backupd`, so that a CPU or heap profile, or a memory
 * sampler, can be taken of each step's backupd process. Not a benchmark (no C, no table):
 *
 *   npx vite-node bench/profile.ts -- --messages 1500 --out /tmp/prof \
 *     [--node-flags "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--preload /path/sampler.cjs]
 *
 * Each step's backupd is ended (SIGTERM) after its sync, so that its exit handlers write their
 * files; they are then moved to `<out>/<step>/`. As root, with the Cyrus 3.6.1 packages.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import {
  deliver,
  liveSleep,
  makeDeliveries,
  populate,
  requireSuccess,
  runSyncClient,
  SeededStream,
  startBackupServer,
  startSource,
  type MessageOptions
} from "../test/harness/index.js"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const MESSAGES = Number(arg("messages", "1500"))
const CHANGES = Number(arg("changes", "50"))
const BIG_MB = Number(arg("big-mb", "50"))
const OUT = path.resolve(arg("out", "/tmp/cyb-profile"))
const NODE_FLAGS = arg("node-flags", "")
const PRELOAD = arg("preload", "")
const BACKUPD = path.resolve(arg("backupd", "bin/backupd"))
/** Environment for backupd, `K=V K2=V2` (e.g. glibc's MALLOC_ARENA_MAX). */
const ENV = arg("env", "")
const MAIL: MessageOptions = { attachmentRate: 0.08, minAttachment: 100_000, maxAttachment: 2_000_000 }

const program = Effect.scoped(
  Effect.gen(function* () {
    mkdirSync(OUT, { recursive: true })
    chmodSync(OUT, 0o777)
    const wrapper = path.join(OUT, "backupd")
    const preload = PRELOAD === "" ? "" : `-r ${path.resolve(PRELOAD)}`
    writeFileSync(wrapper, `#!/bin/sh\ncd ${OUT}\nexec env PROF_GC=$PROF_GC ${ENV} ${process.execPath} ${NODE_FLAGS} ${preload} ${BACKUPD} "$@"\n`, { mode: 0o755 })
    const backup = yield* startBackupServer({ backupdCmd: wrapper, extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"] })
    const source = yield* startSource({ backupPort: backup.port, users: ["alice"] })
    yield* populate(source, { messages: MESSAGES, ...MAIL })
    const step = (name: string) =>
      Effect.gen(function* () {
        const before = new Set(readdirSync(OUT))
        const t0 = Date.now()
        const r = yield* runSyncClient(source, ["-A"], { timeout: "30 minutes" })
        yield* requireSuccess(r)
        const ms = Date.now() - t0
        yield* backup.awaitBackupsClosed("60 seconds")
        // end master's backupd children so that their exit handlers run
        for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
          try {
            const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
            if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === backup.masterPid) process.kill(Number(pid), "SIGTERM")
          } catch {
            // gone
          }
        }
        yield* liveSleep("3 seconds")
        const dir = path.join(OUT, name)
        mkdirSync(dir, { recursive: true })
        for (const f of readdirSync(OUT)) if (!before.has(f) && f !== name) renameSync(path.join(OUT, f), path.join(dir, f))
        console.log(`${name}: ${(ms / 1000).toFixed(2)} s; files in ${dir}: ${existsSync(dir) ? readdirSync(dir).join(", ") : ""}`)
      })
    yield* step("initial")
    const rng = new SeededStream(77)
    yield* deliver(source.lmtpPort, makeDeliveries(rng, ["alice"], CHANGES, { ...MAIL, firstIndex: 100_000, tag: "inc" }))
    yield* step("incremental")
    const attachment = Math.floor((BIG_MB * 1e6 * 57) / 78)
    yield* deliver(source.lmtpPort, makeDeliveries(rng, ["alice"], 1, { attachmentRate: 1, minAttachment: attachment, maxAttachment: attachment, firstIndex: 200_000, tag: "big" }))
    yield* step("big")
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (e) => {
    console.error(`profile failed: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  }
)
