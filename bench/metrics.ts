/**
 * `ctl_backups metrics` over many synthetic backups (test/support/syntheticBackups.ts: entries
 * in backups.db, each with a small data file and index of its own), the built program as an
 * administrator's cron or EVENTS entry runs it. Each round is one child process; wall time and
 * peak RSS are its own (`/usr/bin/time %e %M`); the median is reported with the machine and
 * its load, replacing the `## metrics` section of docs/benchmarks.md. Run without and with object
 * storage configured (then the same pass reads each index's upload state; the endpoint is a
 * local port nothing listens on, and metrics makes no request to it).
 *
 *   npm run bench:metrics [-- --users 10000] [--rounds 5] [--doc docs/benchmarks.md]
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { loadavg, tmpdir } from "node:os"
import * as path from "node:path"
import { makeSyntheticHost, uploadPendingOf } from "../test/support/syntheticBackups.js"
import { machineLine, writeSection } from "./report.js"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}
const USERS = Number(arg("users", "10000"))
const ROUNDS = Number(arg("rounds", "5"))
const DOC = path.resolve(arg("doc", "docs/benchmarks.md"))
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const main = async () => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), "bench-metrics-"))
  try {
    const host = await makeSyntheticHost(dir, USERS, { ageOf: (i) => (i % 100 === 0 ? 3 * 86400 : undefined) })
    const measure = (conf: string, what: string) => {
      const runs: Array<{ seconds: number; mb: number; load: number }> = []
      for (let r = 0; r < ROUNDS; r++) {
        const load = loadavg()[0]!
        const p = spawnSync("/usr/bin/time", ["-f", "TIME %e %M", path.resolve("bin/ctl_backups"), "-C", conf, "metrics"], {
          encoding: "utf8",
          maxBuffer: 1 << 26
        })
        const m = /TIME ([\d.]+) (\d+)/.exec(p.stderr)
        if (p.status !== 0 || m === null) throw new Error(`ctl_backups metrics failed: ${p.stderr}`)
        runs.push({ seconds: Number(m[1]), mb: Number(m[2]) / 1024, load })
        console.log(`${what} round ${r + 1}: ${m[1]} s, ${(Number(m[2]) / 1024).toFixed(1)} MB (load ${load.toFixed(2)})`)
      }
      return { what, runs }
    }
    const results = [measure(host.conf, "no object storage"), measure(host.objectStoreConf("http://127.0.0.1:9"), "object storage configured")]
    const all = results.flatMap((r) => r.runs)
    const pending = uploadPendingOf(USERS)
    const text = [
      "## metrics",
      "",
      `\`npm run bench:metrics -- --users ${USERS} --rounds ${ROUNDS}\`: \`ctl_backups metrics\` over ${USERS} synthetic backups`,
      "(one backups.db entry, a 300-byte data file and a 3-chunk index each, with upload-state rows",
      `recording 2 of the 3 chunks, none in every tenth: ${pending.chunks} chunks pending; 1 % of the backups stale), the`,
      "built program in a child process; its own wall time and peak RSS (`/usr/bin/time`), median of the rounds;",
      "with object storage configured the same pass also reads each index's upload state (no request to the store).",
      `Machine: ${machineLine()}; load average during the rounds ${Math.min(...all.map((r) => r.load)).toFixed(2)}–${Math.max(...all.map((r) => r.load)).toFixed(2)}.`,
      "The issue's bounds (under 10 s and 128 MB) are checked by test/tools/metricsScale.test.ts.",
      "",
      "| backups | | wall (median) | wall (min–max) | peak RSS (median) |",
      "| --- | --- | --- | --- | --- |",
      ...results.map(
        ({ what, runs }) =>
          `| ${USERS} | ${what} | ${median(runs.map((r) => r.seconds)).toFixed(2)} s | ${Math.min(...runs.map((r) => r.seconds)).toFixed(2)}–${Math.max(...runs.map((r) => r.seconds)).toFixed(2)} s | ${median(runs.map((r) => r.mb)).toFixed(1)} MB |`
      ),
      ""
    ].join("\n")
    writeSection(DOC, "metrics", text)
    console.log(text)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

void main()
