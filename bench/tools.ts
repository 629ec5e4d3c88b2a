/**
 * Tools benchmark (issue 13, items 4/5): our `ctl_backups verify`, `restore`, `ctl_backups list`
 * and `cyr_backup list` against plain `gzip -dc` and Cyrus's own C tools, in ONE run, the
 * programs taking turns in every round (C, ours, C, ours ...), so that background load hits
 * them alike.
 *
 *   npm run bench:tools [-- --rounds 2 --restore-messages 1000 --doc docs/benchmarks.md]
 *   CYB_TOOLS_MB=1024   size in MB of the data file verify reads (default 1024; smaller for a quick run)
 *
 * Set-up: a real Cyrus source with two users, bob with `--restore-messages` messages and alice
 * with as many as make a data file of about CYB_TOOLS_MB MB (the bench:sync mail: text of 2–20 KB and 8%
 * multipart with a 100 KB – 2 MB attachment), replicated by the real `sync_client -A` to the
 * C backupd. Then, each round:
 *   - `gzip -dc` of alice's data file to /dev/null, the C `ctl_backups verify -u alice` (first
 *     round only: it reads at a few MB/s) and ours; the goal is ours at >= 80% of gunzip's speed;
 *   - `restore <target> -u bob -a` of bob's backup into a fresh real Cyrus (sync_server),
 *     the C one and ours, each into its own target; the goal is ours no slower than C;
 *   - `ctl_backups list` and `cyr_backup -u bob list chunks`, C and ours, and bare `node`
 *     (start-up: the goal is within 2x bare node).
 * Wall time is the program's own (spawn to exit), CPU and peak RSS from `/usr/bin/time`; every
 * figure is the best of the rounds. Everything runs as the cyrus user (the C tools refuse
 * root). The table, with the machine and its load (`uptime`), replaces the `## tools` section of
 * docs/benchmarks.md. Needs root and the Debian 12 Cyrus 3.6.1 packages.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { loadavg } from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import {
  cyrusSkipReason,
  deliver,
  makeDeliveries,
  populate,
  requireSuccess,
  runCyrus,
  runSyncClient,
  SeededStream,
  startBackupServer,
  startRestoreTarget,
  startSource,
  type BackupServerInstance,
  type MessageOptions
} from "../test/harness/index.js"
import { machineLine, writeSection } from "./report.js"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const ROUNDS = Number(arg("rounds", "2"))
const RESTORE_MESSAGES = Number(arg("restore-messages", "1000"))
const VERIFY_MB = Number(process.env["CYB_TOOLS_MB"] ?? "1024")
const DOC = path.resolve(arg("doc", "docs/benchmarks.md"))
const ROOT = path.resolve(".")
const OURS = (program: string) => path.join(ROOT, "bin", program)
const C = (program: string) => path.join("/usr/lib/cyrus/bin", program)
const MAIL: MessageOptions = { attachmentRate: 0.08, minAttachment: 100_000, maxAttachment: 2_000_000 }
/** Bytes of data file per bench message (bench:sync: 274 MB of mail for 3,000, 158 MB gzipped). */
const AVERAGE_MESSAGE = 55_000
/** NODE_OPTIONS for our programs only (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` to profile them). */
const OUR_NODE_OPTIONS = process.env["CYB_TOOLS_NODE_OPTIONS"]

interface Run {
  readonly wallMs: number
  readonly cpuMs: number
  readonly rssMb: number
}

const TIME_DIR = fs.mkdtempSync("/tmp/cyb-tools-time-")
fs.chmodSync(TIME_DIR, 0o777)

/** Runs argv as the cyrus user under /usr/bin/time; fails unless it exits 0. */
const timed = (argv: ReadonlyArray<string>, stdoutTo?: string) =>
  Effect.gen(function* () {
    const ours = argv[0]!.startsWith(ROOT)
    if (ours && OUR_NODE_OPTIONS !== undefined) process.env["NODE_OPTIONS"] = OUR_NODE_OPTIONS
    else delete process.env["NODE_OPTIONS"]
    const timeFile = path.join(TIME_DIR, "time.txt")
    fs.rmSync(timeFile, { force: true })
    const inner = stdoutTo === undefined ? [...argv] : ["/bin/sh", "-c", `exec "$@" > ${stdoutTo}`, "sh", ...argv]
    const r = yield* runCyrus("/usr/bin/time", ["-f", "%U %S %M", "-o", timeFile, ...inner], { timeout: "30 minutes" })
    yield* requireSuccess(r)
    const [user, sys, kb] = fs.readFileSync(timeFile, "utf8").trim().split("\n").pop()!.split(" ").map(Number)
    const run: Run = { wallMs: r.durationMs, cpuMs: (user! + sys!) * 1000, rssMb: kb! / 1024 }
    return run
  })

/** The largest data file (not an index) under the backup partition: alice's. */
const largestDataFile = (backup: BackupServerInstance): string => {
  let best = ""
  let size = -1
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (!e.name.endsWith(".index") && fs.statSync(p).size > size) {
        best = p
        size = fs.statSync(p).size
      }
    }
  }
  walk(backup.partitionDir)
  return best
}

const best = (rs: ReadonlyArray<Run>): Run => ({
  wallMs: Math.min(...rs.map((r) => r.wallMs)),
  cpuMs: Math.min(...rs.map((r) => r.cpuMs)),
  rssMb: Math.min(...rs.map((r) => r.rssMb))
})

const program = Effect.scoped(
  Effect.gen(function* () {
    const backup = yield* startBackupServer()
    const source = yield* startSource({ backupPort: backup.port, users: ["bob", "alice"] })
    const t0 = Date.now()
    // bob and alice alternate: each gets RESTORE_MESSAGES; alice then gets the rest of the size
    yield* populate(source, { messages: 2 * RESTORE_MESSAGES, ...MAIL })
    const extra = Math.max(0, Math.round((VERIFY_MB * 1024 * 1024) / AVERAGE_MESSAGE) - RESTORE_MESSAGES)
    const rng = new SeededStream(91)
    for (let i = 0; i < extra; i += 2000) {
      yield* deliver(source.lmtpPort, makeDeliveries(rng, ["alice"], Math.min(2000, extra - i), { ...MAIL, firstIndex: 300_000 + i, tag: "fill" }))
    }
    const sync = yield* runSyncClient(source, ["-A"], { timeout: "60 minutes" })
    yield* requireSuccess(sync)
    yield* backup.awaitBackupsClosed("120 seconds")
    const setUpS = (Date.now() - t0) / 1000
    const data = largestDataFile(backup)
    const dataMb = fs.statSync(data).size / 1e6
    console.log(`set up in ${setUpS.toFixed(0)} s: alice's data file ${dataMb.toFixed(0)} MB (${data}); sync_client -A took ${(sync.durationMs / 1000).toFixed(1)} s`)

    const runs = new Map<string, Array<Run>>()
    const add = (key: string, r: Run) => runs.set(key, [...(runs.get(key) ?? []), r])
    const loads: Array<number> = []
    const conf = ["-C", backup.conf]
    for (let round = 0; round < ROUNDS; round++) {
      loads.push(loadavg()[0]!)
      add("gunzip", yield* timed(["gzip", "-dc", data], "/dev/null"))
      // the C verify reads at a few MB/s: once is enough
      if (round === 0) add("verify C", yield* timed([C("ctl_backups"), ...conf, "verify", "-u", "alice"]))
      add("verify ours", yield* timed([OURS("ctl_backups"), ...conf, "verify", "-u", "alice"]))
      loads.push(loadavg()[0]!)
      for (const [who, prog] of [["C", C("restore")], ["ours", OURS("restore")]] as const) {
        const target = yield* startRestoreTarget()
        add(`restore ${who}`, yield* timed([prog, ...conf, target.syncAddress, "-u", "bob", "-a"]))
      }
      for (let k = 0; k < 3; k++) add("node", yield* timed([process.execPath, "-e", "0"]))
      for (const [who, dir] of [["C", C], ["ours", OURS]] as const) {
        // list verifies the last chunk of each backup: here alice's whole data file
        add(`ctl list ${who}`, yield* timed([dir("ctl_backups"), ...conf, "list"], "/dev/null"))
        for (let k = 0; k < 3; k++) add(`cyr list ${who}`, yield* timed([dir("cyr_backup"), ...conf, "-u", "bob", "list", "chunks"], "/dev/null"))
      }
    }
    return { runs, loads, dataMb, setUpS, uptime: execFileSync("uptime", { encoding: "utf8" }).trim() }
  })
)

const fmt = (n: number, digits = 2) => n.toFixed(digits)

const section = (r: Effect.Effect.Success<typeof program>): string => {
  const b = (key: string) => best(r.runs.get(key)!)
  const mbps = (run: Run) => r.dataMb / (run.wallMs / 1000)
  const gunzip = b("gunzip")
  const row = (label: string, key: string, ref: Run, refName: string, speed: boolean) => {
    const x = b(key)
    return (
      `| ${label} | ${fmt(x.wallMs / 1000)} s${speed ? ` (${fmt(mbps(x), 0)} MB/s)` : ""} | ${fmt(x.cpuMs / 1000)} s | ${fmt(x.rssMb, 1)} MB | ` +
      `${fmt(speed ? mbps(x) / mbps(ref) : x.wallMs / ref.wallMs)} ${speed ? `of ${refName}'s speed` : `x ${refName}`} |`
    )
  }
  const date = new Date().toISOString().slice(0, 10)
  return [
    "## tools",
    "",
    "Our `ctl_backups verify`, `restore`, `ctl_backups list` and `cyr_backup list` against plain",
    "`gzip -dc` and Cyrus's C tools, in one run, taking turns in every round; each figure is the",
    "best of the rounds (wall = spawn to exit, CPU = user + system, peak RSS = VmHWM, from",
    "`/usr/bin/time`). Goals (issue 13): verify at >= 80% of gunzip's speed on the same data file;",
    "restore of 1,000 messages no slower than Cyrus's `restore`; `cyr_backup list` within 2x bare",
    "`node` (start-up; `ctl_backups list` verifies the last chunk of every backup, which here is all",
    "of alice's data file, so it is compared with C; start-up on a one-message backup: \"start-up\").",
    "",
    "### Reproduce",
    "",
    "```sh",
    `CYB_TOOLS_MB=${VERIFY_MB} npm run bench:tools -- --rounds ${ROUNDS} --restore-messages ${RESTORE_MESSAGES}`,
    "```",
    "",
    "As root, with the Debian 12 Cyrus 3.6.1 packages; the programs run as the cyrus user. A real",
    "Cyrus source gets bob (the restore's messages) and alice (messages up to CYB_TOOLS_MB MB, the",
    "bench:sync mail), replicated by the real `sync_client -A` to the C backupd; verify reads",
    "alice's data file (`ctl_backups verify -u alice`), restore puts bob's backup into a fresh real",
    "Cyrus each time (`restore <sync_server> -u bob -a`). It rewrites this section.",
    "",
    "### Figures measured",
    "",
    `Machine: ${machineLine()}; ${date}; set-up ${fmt(r.setUpS, 0)} s; ${ROUNDS} rounds; load average (1 min) at the rounds`,
    `${r.loads.map((l) => fmt(l)).join(", ")}; \`uptime\` at the end: ${r.uptime}.`,
    "",
    "| program | wall | CPU | peak RSS | ratio |",
    "|---|---|---|---|---|",
    `| \`gzip -dc\` of alice's data file (${fmt(r.dataMb, 0)} MB) | ${fmt(gunzip.wallMs / 1000)} s (${fmt(mbps(gunzip), 0)} MB/s) | ${fmt(gunzip.cpuMs / 1000)} s | ${fmt(gunzip.rssMb, 1)} MB | 1.00 |`,
    row("`ctl_backups verify -u alice`, C", "verify C", gunzip, "gunzip", true),
    row("`ctl_backups verify -u alice`, ours", "verify ours", gunzip, "gunzip", true),
    row(`\`restore -u bob -a\` (${RESTORE_MESSAGES} messages), C`, "restore C", b("restore C"), "C", false),
    row(`\`restore -u bob -a\` (${RESTORE_MESSAGES} messages), ours`, "restore ours", b("restore C"), "C", false),
    row("bare `node -e 0`", "node", b("node"), "node", false),
    row("`ctl_backups list` (verifies alice's last chunk: the whole file), C", "ctl list C", b("ctl list C"), "C", false),
    row("`ctl_backups list` (verifies alice's last chunk: the whole file), ours", "ctl list ours", b("ctl list C"), "C", false),
    row("`cyr_backup -u bob list chunks`, C", "cyr list C", b("node"), "node", false),
    row("`cyr_backup -u bob list chunks`, ours", "cyr list ours", b("node"), "node", false),
    ""
  ].join("\n")
}

{
  const skip = cyrusSkipReason()
  if (skip !== undefined) {
    console.error(`bench:tools cannot run: ${skip}`)
    process.exit(2)
  }
  Effect.runPromise(program).then(
    (r) => {
      const text = section(r)
      console.log(text)
      writeSection(DOC, "tools", text)
      console.log(`wrote the ## tools section of ${DOC}`)
      fs.rmSync(TIME_DIR, { recursive: true, force: true })
      process.exit(0)
    },
    (e) => {
      console.error(`bench:tools failed: ${e instanceof Error ? e.message : String(e)}`)
      process.exit(1)
    }
  )
}
