/**
 * Sync benchmark: the real `sync_client` 3.6.1 replicating the same mail to Cyrus's C backupd
 * and to ours, in ONE run. One source (one user, the interop harness's bench workload: text
 * mail of 2–20 KB plus 8% multipart with a 100 KB–2 MB attachment), four backup servers (two
 * C, two ours, each under its own master), the source's channel retargeted between them, in
 * the order C, ours, C, ours for every step, so background load hits both alike; each figure
 * is the best (lowest) of the two runs of its program.
 *
 * Steps: an initial `sync_client -A` of `--messages` messages; an incremental `-A` after
 * `--changes` more messages; an `-A` after one message of `--big-mb` MB. Before each timed
 * sync the idle backupd processes are ended, so the figures are those of a fresh process
 * (start-up included). CPU time and peak RSS (VmHWM) of master's children are sampled in /proc
 * every 20 ms. All backups are then checked with the real `ctl_backups verify -A`. The table
 * (with the machine and its load) replaces the `## sync` section of docs/benchmarks.md.
 *
 *   npm run bench:sync -- [--messages 3000] [--changes 50] [--big-mb 50]
 *                          [--backupd bin/backupd] [--doc docs/benchmarks.md]
 *
 * Needs root and the Debian 12 Cyrus 3.6.1 packages (see docs/testing.md). Our backupd runs
 * with `sasl_pwcheck_method: alwaystrue` here: the benchmark measures replication, not SASL.
 */
import { readdirSync, readFileSync, existsSync } from "node:fs"
import { loadavg } from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import {
  cyrusSkipReason,
  deliver,
  liveSleep,
  makeDeliveries,
  populate,
  requireSuccess,
  runCtlBackups,
  runSyncClient,
  SeededStream,
  startBackupServer,
  startSource,
  type BackupServerInstance,
  type MessageOptions,
  type SourceInstance
} from "../test/harness/index.js"
import { machineLine, writeSection } from "./report.js"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const MESSAGES = Number(arg("messages", "3000"))
const CHANGES = Number(arg("changes", "50"))
const BIG_MB = Number(arg("big-mb", "50"))
const DOC = path.resolve(arg("doc", "docs/benchmarks.md"))
/** Our backupd as run: `bin/backupd` (what `npm run build` makes) or a release (`--backupd release/backupd`). */
const OUR_BACKUPD = path.resolve(arg("backupd", "bin/backupd"))
/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on Linux). */
const CLOCK_TICKS = 100
const USER = "alice"
/** bench.sh's mail: 8% multipart, attachments log-uniform 100 KB – 2 MB. */
const MAIL: MessageOptions = { attachmentRate: 0.08, minAttachment: 100_000, maxAttachment: 2_000_000 }

interface ProcSample {
  readonly cpuTicks: number
  readonly peakRssKb: number
}

/** CPU ticks and peak RSS of every child of `ppid`. */
const childrenOf = (ppid: number): Map<number, ProcSample> => {
  const out = new Map<number, ProcSample>()
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "latin1")
      // the fields after the ")" that ends the command name
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(f[1]) !== ppid) continue
      const status = readFileSync(`/proc/${d}/status`, "latin1")
      const hwm = /VmHWM:\s+(\d+) kB/.exec(status)
      out.set(Number(d), { cpuTicks: Number(f[11]) + Number(f[12]), peakRssKb: hwm ? Number(hwm[1]) : 0 })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/** Ends master's idle backupd children (as bench.sh does), so that the next sync gets a fresh one. */
const endIdleChildren = (backup: BackupServerInstance) =>
  Effect.gen(function*() {
    const pids = [...childrenOf(backup.masterPid).keys()]
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGTERM")
      } catch {
        // gone
      }
    }
    for (let i = 0; i < 100 && pids.some((p) => existsSync(`/proc/${p}`)); i++) yield* liveSleep("50 millis")
  })

interface Measured {
  readonly wallMs: number
  readonly cpuSeconds: number
  readonly peakRssMb: number
  /** 1-minute load average when the step started. */
  readonly load: number
}

/** Runs `sync_client args` against `backup`, sampling its backupd processes every 20 ms. */
const timedSync = (source: SourceInstance, backup: BackupServerInstance, args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    yield* endIdleChildren(backup)
    yield* source.retarget(backup.port)
    const load = loadavg()[0]!
    const last = new Map<number, ProcSample>()
    const sample = () => {
      for (const [pid, s] of childrenOf(backup.masterPid)) last.set(pid, s)
    }
    const timer = setInterval(sample, 20)
    const result = yield* runSyncClient(source, args, { timeout: "30 minutes" }).pipe(
      Effect.ensuring(Effect.sync(() => clearInterval(timer)))
    )
    sample()
    yield* requireSuccess(result)
    yield* backup.awaitBackupsClosed("60 seconds")
    sample()
    let ticks = 0
    let peak = 0
    for (const s of last.values()) {
      ticks += s.cpuTicks
      peak = Math.max(peak, s.peakRssKb)
    }
    const m: Measured = { wallMs: result.durationMs, cpuSeconds: ticks / CLOCK_TICKS, peakRssMb: peak / 1024, load }
    return m
  })

const verifyAll = (backup: BackupServerInstance) =>
  Effect.flatMap(runCtlBackups(backup, ["verify", "-A"], { timeout: "10 minutes" }), requireSuccess)

const fmt = (n: number, digits = 2) => n.toFixed(digits)

interface Step {
  readonly label: string
  readonly c: ReadonlyArray<Measured>
  readonly ours: ReadonlyArray<Measured>
}

const program = Effect.scoped(
  Effect.gen(function*() {
    const servers = [
      { c: yield* startBackupServer(), ours: yield* startBackupServer({ backupdCmd: OUR_BACKUPD, extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"] }) },
      { c: yield* startBackupServer(), ours: yield* startBackupServer({ backupdCmd: OUR_BACKUPD, extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"] }) }
    ]
    const source = yield* startSource({ backupPort: servers[0]!.c.port, users: [USER] })
    const t0 = Date.now()
    const report = yield* populate(source, { messages: MESSAGES, ...MAIL })
    const populateMs = Date.now() - t0
    console.log(`populated ${report.delivery.delivered} messages (${fmt(report.delivery.bytes / 1e6, 1)} MB) in ${fmt(populateMs / 1000, 1)} s`)

    const steps: Array<Step> = []
    const step = (label: string) =>
      Effect.gen(function*() {
        const c: Array<Measured> = []
        const ours: Array<Measured> = []
        for (const s of servers) {
          c.push(yield* timedSync(source, s.c, ["-A"]))
          ours.push(yield* timedSync(source, s.ours, ["-A"]))
        }
        steps.push({ label, c, ours })
        console.log(`${label}: C ${c.map((m) => fmt(m.wallMs / 1000)).join("/")} s, ours ${ours.map((m) => fmt(m.wallMs / 1000)).join("/")} s`)
      })

    yield* step(`initial \`-A\`, ${report.delivery.delivered} messages (${fmt(report.delivery.bytes / 1e6, 0)} MB)`)
    const rng = new SeededStream(77)
    const inc = yield* deliver(source.lmtpPort, makeDeliveries(rng, [USER], CHANGES, { ...MAIL, firstIndex: 100_000, tag: "inc" }))
    yield* step(`incremental \`-A\`, +${inc.delivered} messages (${fmt(inc.bytes / 1e6, 1)} MB)`)
    // one message whose attachment makes it BIG_MB MB once base64-encoded
    const attachment = Math.floor((BIG_MB * 1e6 * 57) / 78)
    const big = yield* deliver(
      source.lmtpPort,
      makeDeliveries(rng, [USER], 1, { attachmentRate: 1, minAttachment: attachment, maxAttachment: attachment, firstIndex: 200_000, tag: "big" })
    )
    yield* step(`\`-A\` after one message of ${fmt(big.bytes / 1e6, 1)} MB`)
    for (const s of servers) {
      yield* verifyAll(s.c)
      yield* verifyAll(s.ours)
    }
    return { steps, populateMs }
  })
)

const best = (ms: ReadonlyArray<Measured>) => ({
  wallMs: Math.min(...ms.map((m) => m.wallMs)),
  cpuSeconds: Math.min(...ms.map((m) => m.cpuSeconds)),
  peakRssMb: Math.min(...ms.map((m) => m.peakRssMb)),
  loads: ms.map((m) => fmt(m.load)).join(", ")
})


const section = (r: Effect.Effect.Success<typeof program>): string => {
  const rows = r.steps.flatMap((s) => {
    const c = best(s.c)
    const o = best(s.ours)
    return [
      `| ${s.label} | wall | ${fmt(c.wallMs / 1000)} s | ${fmt(o.wallMs / 1000)} s | **${fmt(o.wallMs / c.wallMs)}** | ${c.loads} / ${o.loads} |`,
      `| | backupd CPU | ${fmt(c.cpuSeconds)} s | ${fmt(o.cpuSeconds)} s | **${fmt(o.cpuSeconds / Math.max(c.cpuSeconds, 0.01))}** | |`,
      `| | backupd peak RSS | ${fmt(c.peakRssMb, 1)} MB | ${fmt(o.peakRssMb, 1)} MB | **${fmt(o.peakRssMb / c.peakRssMb)}** | |`
    ]
  })
  const date = new Date().toISOString().slice(0, 10)
  return [
    "## sync",
    "",
    "The real `sync_client` 3.6.1 replicating the same mail to Cyrus's C `backupd` and to ours, in one",
    "run: one source with one user, four backup servers (two C, two ours, each under its own `master`,",
    "`prefork=0`), the source's channel retargeted between them in the order C, ours, C, ours for every",
    "step. Each figure is the best of its program's two runs; ratio = ours / C (lower is better).",
    "Before each sync the idle backupd processes are ended, so every figure is that of a fresh process:",
    "CPU and peak RSS (VmHWM) of master's children, sampled in `/proc` every 20 ms (ours is one `node`",
    "process, start-up included). Load = the 1-minute load average as each run started.",
    "",
    "### Reproduce",
    "",
    "```sh",
    `npm run bench:sync -- --messages ${MESSAGES} --changes ${CHANGES} --big-mb ${BIG_MB}   # [--backupd release/backupd]`,
    "```",
    "",
    "As root, with the Debian 12 Cyrus 3.6.1 packages (docs/testing.md). The mail is that of the interop",
    "harness's `bench.sh`: text messages of 2–20 KB and 8% multipart with a 100 KB–2 MB attachment of",
    "random bytes (seed 42), spread over nine folders, flags set and a few expunged. After the initial",
    `\`-A\`, ${CHANGES} more messages are delivered and synced, then one message of about ${BIG_MB} MB. The real`,
    "`ctl_backups verify -A` then checks all four sets of backups. It rewrites this section; it takes",
    "five to ten minutes.",
    "",
    "### Figures measured",
    "",
    `Machine: ${machineLine()}; ${date}. Our backupd: \`${path.relative(process.cwd(), OUR_BACKUPD)}\`.`,
    `Populating the source took ${fmt(r.populateMs / 1000, 1)} s.`,
    "",
    "| step | figure | C backupd 3.6.1 | ours | ratio | load C / ours |",
    "|---|---|---|---|---|---|",
    ...rows,
    ""
  ].join("\n")
}


{
  const skip = cyrusSkipReason()
  if (skip !== undefined) {
    console.error(`bench:sync cannot run: ${skip}`)
    process.exit(2)
  }
  if (!existsSync(OUR_BACKUPD)) {
    console.error(`bench:sync: ${OUR_BACKUPD} does not exist (run \`npm run build\`)`)
    process.exit(2)
  }
  Effect.runPromise(program).then(
    (r) => {
      const text = section(r)
      console.log(text)
      writeSection(DOC, "sync", text)
      console.log(`wrote the ## sync section of ${DOC}`)
      process.exit(0)
    },
    (e) => {
      console.error(`bench:sync failed: ${e instanceof Error ? e.message : String(e)}`)
      process.exit(1)
    }
  )
}
