/**
 * Acceptance (issue 16): after real syncs — the real `sync_client` 3.6.1 replicating to our
 * backupd under the real master — `ctl_backups metrics --textfile DIR` (our program, run as
 * cyrus) writes a file that the real `promtool check metrics` accepts and that a real
 * `prometheus-node-exporter` serves through its textfile collector on a loopback port: the
 * backups of every synced user, none stale, and backupd's own counters (sessions, APPLY and
 * GET by kind, bytes). Ageing one user's last chunk past `backup_stale_after` shows as one
 * stale user through the exporter after the next refresh. Needs `npm run build` first.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { freePorts, haveCyrus, populate, runCtlBackups, runSyncClient, startBackupServer, startSource, warnIfNoCyrus } from "../harness/index.js"
import { ensureBuilt } from "../service/support/fakeMaster.js"
import { chownForCyrus, tempDir } from "../support/cyrus.js"
import { promtoolCheck, sample } from "../support/prometheus.js"

const cyrusPresent = haveCyrus()
const exporterPresent = fs.existsSync("/usr/bin/prometheus-node-exporter") && fs.existsSync("/usr/bin/promtool")
warnIfNoCyrus("metrics through node_exporter after real syncs")

const BACKUPD = path.resolve("bin/backupd")
const CTL_BACKUPS = path.resolve("bin/ctl_backups")
const USERS = ["anna", "bert", "cleo"]
const Database = createRequire(import.meta.url)("better-sqlite3") as new (p: string) => {
  prepare(s: string): { get(): unknown }
  exec(s: string): void
  close(): void
}

/** node_exporter with only the textfile collector, on a loopback port; stopped (by its pid) with the scope. */
const startExporter = (dir: string) =>
  Effect.gen(function* () {
    const [port] = (yield* freePorts(1)) as [number]
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(
          "/usr/bin/prometheus-node-exporter",
          [`--web.listen-address=127.0.0.1:${port}`, "--collector.disable-defaults", "--collector.textfile", `--collector.textfile.directory=${dir}`],
          { stdio: ["ignore", "ignore", "pipe"] }
        )
      ),
      (c) => Effect.sync(() => void (c.pid !== undefined && process.kill(c.pid, "SIGTERM")))
    )
    const url = `http://127.0.0.1:${port}/metrics`
    const scrape = Effect.promise(() => fetch(url).then((r) => r.text()))
    // ready when it answers
    yield* Effect.retry(Effect.tryPromise(() => fetch(url).then((r) => r.text())), { times: 100, schedule: Schedule.spaced("100 millis") }).pipe(
      Effect.catchAll(() => Effect.die(new Error(`node_exporter (pid ${child.pid}) did not answer on ${url}`)))
    )
    return { scrape, pid: child.pid }
  })

describe.skipIf(!cyrusPresent || !exporterPresent)("metrics through a real node_exporter after real syncs", () => {
  it.live(
    "users, stale users and backupd's counters, as scraped",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          ensureBuilt()
          const backup = yield* startBackupServer({ backupdCmd: BACKUPD, extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"] })
          const source = yield* startSource({ backupPort: backup.port, users: USERS })
          yield* populate(source, { messages: 12, seed: 16, sieve: false })
          const sync = yield* runSyncClient(source, ["-A"])
          expect(sync.exitCode, sync.stderr).toBe(0)
          yield* backup.awaitBackupsClosed()

          const textfiles = tempDir("metrics-textfile")
          chownForCyrus(textfiles)
          const refresh = Effect.gen(function* () {
            const r = yield* runCtlBackups(backup, ["metrics", "--textfile", textfiles], { program: CTL_BACKUPS })
            expect(r.exitCode, r.stderr).toBe(0)
            expect(r.stdout).toBe("")
            return fs.readFileSync(path.join(textfiles, "cyrus_backup.prom"), "utf8")
          })
          // the session's counts are appended once backupd has closed it
          let text = yield* refresh
          for (let i = 0; i < 50 && (sample(text, "cyrus_backupd_sessions_total") ?? 0) < 1; i++) {
            yield* Effect.sleep("200 millis")
            text = yield* refresh
          }
          const check = promtoolCheck(text)
          expect(check.status, check.stdout + check.stderr).toBe(0)

          const exporter = yield* startExporter(textfiles)
          let scraped = yield* exporter.scrape
          expect(sample(scraped, "cyrus_backup_users")).toBe(USERS.length)
          expect(sample(scraped, "cyrus_backup_users_stale")).toBe(0)
          expect(sample(scraped, "cyrus_backup_data_bytes")).toBeGreaterThan(0)
          expect(sample(scraped, "cyrus_backup_chunks")).toBeGreaterThanOrEqual(USERS.length)
          expect(sample(scraped, "cyrus_backupd_sessions_total")).toBeGreaterThanOrEqual(1)
          expect(sample(scraped, "cyrus_backupd_apply_total", 'kind="mailbox"')).toBeGreaterThanOrEqual(USERS.length)
          expect(sample(scraped, "cyrus_backupd_apply_total", 'kind="message"')).toBeGreaterThanOrEqual(1)
          expect(sample(scraped, "cyrus_backupd_get_total", 'kind="user"')).toBeGreaterThanOrEqual(USERS.length)
          expect(sample(scraped, "cyrus_backupd_received_bytes_total", 'layer="protocol"')).toBeGreaterThan(0)
          expect(sample(scraped, "cyrus_backupd_sent_bytes_total", 'layer="wire"')).toBeGreaterThan(0)
          // the collector itself read the file without error
          expect(sample(scraped, "node_textfile_scrape_error")).toBe(0)

          // age bert's last chunk past backup_stale_after (2 days)
          const list = yield* runCtlBackups(backup, ["-j", "list", "bert"], { program: CTL_BACKUPS })
          const dataPath = /"fname": "([^"]+)"/.exec(list.stdout)?.[1]
          expect(dataPath, list.stdout).toBeDefined()
          const db = new Database(`${dataPath!}.index`)
          db.exec(`UPDATE chunk SET ts_end = ${Math.floor(Date.now() / 1000) - 3 * 86400} WHERE id = (SELECT MAX(id) FROM chunk)`)
          db.close()
          yield* refresh
          scraped = yield* exporter.scrape
          expect(sample(scraped, "cyrus_backup_users_stale")).toBe(1)
          expect(sample(scraped, "cyrus_backup_oldest_success_age_seconds")).toBeGreaterThanOrEqual(3 * 86400)
          const health = yield* runCtlBackups(backup, ["health"], { program: CTL_BACKUPS })
          expect(health.exitCode, health.stdout).toBe(1)
          expect(health.stdout).toMatch(/^WARNING - 3 users, oldest backup 3d ago \(bert\)/)
        })
      ),
    600_000
  )
})
