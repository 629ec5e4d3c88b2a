/**
 * Start-up benchmark: how soon each program answers and how much memory it takes, against bare
 * `node` and against Cyrus's C programs, in ONE run, the programs taking turns in every round.
 *
 *   npm run bench:startup [-- --rounds 10] [--doc docs/benchmarks.md]
 *
 * Programs: `backupd -X` serving `GET USER x` + `EXIT` on a pipe (latency = until the banner's
 * first byte, as master's client sees it), `backupd --version`, `ctl_backups list` and
 * `cyr_backup -u anne list chunks` on a one-user backup host. Ours both as `bin/*` of this
 * checkout (what `npm run build` made) and as an installed release (scripts/build-release.mjs
 * then scripts/install-prefix.mjs into a temporary prefix, code caches included). Each figure
 * is the median of the rounds; peak RSS is VmHWM (`/usr/bin/time %M`). Everything runs as the
 * cyrus user when the bench runs as root (the C tools refuse root), else as the caller, then
 * without the C programs. The table, with the machine and its load, replaces the
 * `## start-up` section of docs/benchmarks.md.
 */
import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { loadavg, tmpdir } from "node:os"
import * as path from "node:path"
import { machineLine, writeSection } from "./report.js"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const ROUNDS = Number(arg("rounds", "10"))
const DOC = path.resolve(arg("doc", "docs/benchmarks.md"))
const ROOT = path.resolve(".")
const CYRUS = "/usr/lib/cyrus/bin"
const asRoot = process.getuid?.() === 0
const haveC = asRoot && fs.existsSync(path.join(CYRUS, "backupd"))
/** The C tools refuse to run as root; ours run as the same user, for a fair comparison. */
const asCyrus = (argv: ReadonlyArray<string>) => (asRoot ? ["setpriv", "--reuid=cyrus", "--regid=mail", "--init-groups", "--", ...argv] : [...argv])

const MESSAGE = "From: a@example.com\r\nSubject: start-up\r\n\r\nhello\r\n"
const GUID = createHash("sha1").update(MESSAGE, "latin1").digest("hex")
const STORE = [
  "GET USER anne",
  `APPLY MESSAGE (%{default ${GUID} ${MESSAGE.length}}\r\n${MESSAGE})`,
  "APPLY MAILBOX %(UNIQUEID startup0mailbox0000000001 MBOXNAME user.anne SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID 1" +
    " HIGHESTMODSEQ 2 RECENTUID 1 RECENTTIME 1700000000 LAST_APPENDDATE 1700000000 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0" +
    ' UIDVALIDITY 1700000000 PARTITION default ACL "anne\tlrswipkxtecdan\t" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1' +
    ` RECORD (%(UID 1 MODSEQ 2 LAST_UPDATED 1700000000 FLAGS (\\Seen) INTERNALDATE 1700000000 SIZE ${MESSAGE.length} GUID ${GUID})))`,
  "EXIT",
  ""
].join("\r\n")
const SESSION = "GET USER x\r\nEXIT\r\n"
const ENV = { ...process.env, CYRUS_SERVICE: "backupd", CYRUS_ID: "0", BACKUPD_LOG_STDERR: "1" }

interface Run {
  readonly firstByteMs: number
  readonly totalMs: number
  readonly rssMb: number
  readonly cpuMs: number
}

/** One run of argv with `input` on stdin, timed from spawn to its first stdout byte and to its end. */
const runOnce = (argv: ReadonlyArray<string>, input: string, timeFile: string): Promise<Run> =>
  new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    let first: bigint | undefined
    const child = spawn("/usr/bin/time", ["-f", "%M %U %S", "-o", timeFile, ...argv], { stdio: ["pipe", "pipe", "ignore"], env: ENV, cwd: "/" })
    child.stdout.on("data", () => void (first ??= process.hrtime.bigint()))
    child.stdin.on("error", () => {})
    child.stdin.end(input, "latin1")
    child.on("error", reject)
    child.on("close", () => {
      const t1 = process.hrtime.bigint()
      const [kb, user, sys] = fs.readFileSync(timeFile, "utf8").trim().split("\n").pop()!.split(" ").map(Number)
      resolve({
        firstByteMs: Number((first ?? t1) - t0) / 1e6,
        totalMs: Number(t1 - t0) / 1e6,
        rssMb: kb! / 1024,
        cpuMs: (user! + sys!) * 1000
      })
    })
  })

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!

interface Case {
  readonly label: string
  readonly who: "node" | "C" | "checkout" | "installed"
  readonly argv: ReadonlyArray<string>
  readonly input: string
}

/** A backup host's configuration under `dir` (with its directories); returns the imapd.conf path. */
const hostConf = (dir: string): string => {
  for (const d of ["conf", "part", "staging", "tmp"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${dir}/conf`,
      `backuppartition-default: ${dir}/part`,
      `backup_db_path: ${dir}/conf/backups.db`,
      `backup_staging_path: ${dir}/staging`,
      `temp_path: ${dir}/tmp`,
      "servername: startup",
      ""
    ].join("\n")
  )
  return conf
}

const setUp = (work: string) => {
  // Ours and the C programs each get a host of their own: the C backupd creates an empty backup
  // for every user it is asked about (GET USER x), after which ours would open that one.
  const conf = hostConf(path.join(work, "ours"))
  const confC = hostConf(path.join(work, "c"))
  // the release, installed under a prefix as `make install` does (code caches included)
  const release = path.join(work, "release")
  const prefix = path.join(work, "prefix")
  for (const [script, args] of [
    ["build-release.mjs", ["--out", release]],
    ["install-prefix.mjs", ["--prefix", prefix, "--from", release]]
  ] as const) {
    const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", script), ...args], { encoding: "utf8" })
    if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`)
  }
  if (asRoot) spawnSync("chown", ["-R", "cyrus:mail", work])
  fs.chmodSync(work, 0o755)
  // one user with a backup, for cyr_backup
  for (const c of [conf, confC]) {
    const [cmd, ...args] = asCyrus([path.join(ROOT, "bin", "backupd"), "-C", c, "-X"])
    const store = spawnSync(cmd!, args, { input: STORE, env: ENV, encoding: "latin1" })
    if (store.status !== 0) throw new Error(`storing the test backup failed: ${store.stdout}${store.stderr}`)
  }
  return { conf, confC, installed: path.join(prefix, "libexec", "cyrus-backupd") }
}

const cases = (conf: string, confC: string, installed: string): ReadonlyArray<Case> => {
  const ours = (who: "checkout" | "installed", program: string) => (who === "checkout" ? path.join(ROOT, "bin", program) : path.join(installed, program))
  const out: Array<Case> = [{ label: "bare node", who: "node", argv: asCyrus([process.execPath, "-e", 'process.stdout.write("x")']), input: "" }]
  const programs: ReadonlyArray<[string, (bin: string, conf: string) => ReadonlyArray<string>, string]> = [
    ["`backupd -X`: `GET USER x`, `EXIT`", (bin, c) => [bin, "-C", c, "-X"], SESSION],
    ["`backupd --version`", (bin) => [bin, "--version"], ""],
    ["`ctl_backups list`", (bin, c) => [bin, "-C", c, "list"], ""],
    ["`cyr_backup -u anne list chunks`", (bin, c) => [bin, "-C", c, "-u", "anne", "list", "chunks"], ""]
  ]
  for (const [label, argv, input] of programs) {
    const program = /`(\w+)/.exec(label)![1]!
    if (haveC && !label.includes("--version")) out.push({ label, who: "C", argv: asCyrus(argv(path.join(CYRUS, program), confC)), input })
    for (const who of ["checkout", "installed"] as const) out.push({ label, who, argv: asCyrus(argv(ours(who, program), conf)), input })
  }
  return out
}

const main = async () => {
  if (!fs.existsSync(path.join(ROOT, "dist", "bundle", "backupd.bundle.cjs"))) {
    console.error("bench:startup: run `npm run build` first (bin/* run dist/bundle/)")
    process.exit(2)
  }
  const work = fs.mkdtempSync(path.join(tmpdir(), "cyb-startup-"))
  try {
    const { conf, confC, installed } = setUp(work)
    const all = cases(conf, confC, installed)
    const runs = new Map<Case, Array<Run>>(all.map((c) => [c, []]))
    const loads: Array<number> = []
    const timeFile = path.join(work, "time.txt")
    for (let round = 0; round < ROUNDS + 1; round++) {
      loads.push(loadavg()[0]!)
      for (const c of all) {
        const r = await runOnce(c.argv, c.input, timeFile)
        if (round > 0) runs.get(c)!.push(r) // round 0 warms the page cache
      }
    }
    const node = runs.get(all[0]!)!
    const nodeFirst = median(node.map((r) => r.firstByteMs))
    const nodeRss = median(node.map((r) => r.rssMb))
    const rows = all.map((c) => {
      const rs = runs.get(c)!
      const first = median(rs.map((r) => r.firstByteMs))
      const rss = median(rs.map((r) => r.rssMb))
      return (
        `| ${c.label} | ${c.who} | ${first.toFixed(0)} ms | ${median(rs.map((r) => r.totalMs)).toFixed(0)} ms | ` +
        `${median(rs.map((r) => r.cpuMs)).toFixed(0)} ms | ${rss.toFixed(1)} MB | ${(first / nodeFirst).toFixed(2)} | ${(rss / nodeRss).toFixed(2)} |`
      )
    })
    const date = new Date().toISOString().slice(0, 10)
    const text = [
      "## start-up",
      "",
      "How soon each program answers, and its peak memory, against bare `node` and Cyrus's C programs,",
      "in one run: every round runs each case once, in turn; each figure is the median of the rounds",
      "(a first round, not counted, warms the page cache). First byte = from spawn to the first byte",
      "on stdout (for `backupd -X`, the banner, what a client of master waits for); total = until it",
      "exited; CPU = user + system time; peak RSS = VmHWM. Ratios are ours / bare node. Goal",
      "(issue 13): `backupd -X` within 2x bare node and 64 MB.",
      "",
      "### Reproduce",
      "",
      "```sh",
      `npm run bench:startup -- --rounds ${ROUNDS}`,
      "```",
      "",
      "It builds a release and installs it into a temporary prefix (`make install`'s script, which",
      "makes the V8 code caches), stores a one-message backup for `anne`, then times; as root every",
      "program runs as the cyrus user (the C tools refuse root). `checkout` is `bin/*` (what",
      "`npm run build` made: dist/bundle/ with its code caches); `installed` the installed wrappers.",
      "",
      "### Figures measured",
      "",
      `Machine: ${machineLine()}; ${date}; load average (1 min) over the rounds ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}; ${ROUNDS} rounds.`,
      "",
      "| program | run | first byte | total | CPU | peak RSS | first byte / node | RSS / node |",
      "|---|---|---|---|---|---|---|---|",
      ...rows,
      ""
    ].join("\n")
    console.log(text)
    writeSection(DOC, "start-up", text)
    console.log(`wrote the ## start-up section of ${DOC}`)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  console.error(`bench:startup failed: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
