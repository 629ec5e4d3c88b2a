/**
 * `ctl_backups metrics` and `health` on real backups (the golden C-written one, copied per
 * user) with real SQLite indexes and backups.db: output accepted by the real `promtool check
 * metrics`, stale counts that follow the age of each user's last chunk, the Nagios codes,
 * backupd's counter files folded, and nothing written to any backup while it is read, even
 * while a backup is locked.
 */
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { createRequire } from "node:module"
import { Effect, Scope, Exit } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { lockDataFile } from "../../src/store/dataFileLock.js"
import { BackupsDb } from "../../src/store/index.js"
import { noUploadPending, runMetrics, type UploadPendingSource } from "../../src/tools/ctlBackups/metrics.js"
import { processIo } from "../../src/tools/ToolIo.js"
import { backupsDbLayer, loadConfig } from "../../src/tools/toolRuntime.js"
import { copyGolden } from "../store/support.js"
import { promtoolCheck, sample } from "../support/prometheus.js"
import { asCyrusArgv } from "../support/cyrus.js"
import { makeServer, runOurs, type Server } from "./support.js"

const Database = createRequire(import.meta.url)("better-sqlite3") as new (p: string) => { exec(s: string): void; close(): void }
const USERS = ["alice", "bob", "carol"]
const now = () => Math.floor(Date.now() / 1000)

/** Sets the end of a backup's latest chunk (what "last success" is) to `ts`. */
const setLastSuccess = (data: string, ts: number) => {
  const db = new Database(`${data}.index`)
  db.exec(`UPDATE chunk SET ts_end = ${ts} WHERE id = (SELECT MAX(id) FROM chunk)`)
  db.close()
}

const digestTree = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name)
      if (e.isDirectory()) walk(full)
      else out[full] = `${fs.statSync(full).mtimeMs} ${createHash("sha1").update(fs.readFileSync(full)).digest("hex")}`
    }
  }
  walk(dir)
  return out
}

describe("ctl_backups metrics", () => {
  let server: Server
  const data: Record<string, string> = {}
  beforeAll(async () => {
    server = makeServer("metrics")
    for (const u of USERS) {
      data[u] = copyGolden(path.join(server.partition, "a"), `${u}_golden`)
      await server.record(u, data[u]!)
      setLastSuccess(data[u]!, now() - 60)
    }
  })
  const metrics = async (...extra: Array<string>) => {
    const r = await runOurs("ctl_backups", ["-C", server.conf, "metrics", ...extra])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    return r.stdout
  }

  it("aggregates every backup, and promtool accepts it", async () => {
    const text = await metrics()
    const check = promtoolCheck(text)
    expect(check.status, check.stdout + check.stderr).toBe(0)
    expect(sample(text, "cyrus_backup_users")).toBe(3)
    expect(sample(text, "cyrus_backup_users_stale")).toBe(0)
    expect(sample(text, "cyrus_backup_data_bytes")).toBe(3 * fs.statSync(data["alice"]!).size)
    expect(sample(text, "cyrus_backup_index_bytes")).toBe(3 * fs.statSync(`${data["alice"]!}.index`).size)
    expect(sample(text, "cyrus_backup_chunks")).toBeGreaterThanOrEqual(3)
    expect(sample(text, "cyrus_backup_success_age_seconds_count")).toBe(3)
    expect(sample(text, "cyrus_backup_success_age_seconds_bucket", 'le="3600"')).toBe(3)
    expect(sample(text, "cyrus_backup_oldest_success_age_seconds")).toBeLessThan(600)
    // the golden backup has expunged messages past the default retention: compaction wanted
    expect(sample(text, "cyrus_backup_compaction_wanted_users")).toBe(3)
    expect(sample(text, "cyrus_backup_locked_users")).toBe(0)
    // aggregated: no per-user series, no upload series without object storage
    expect(text).not.toContain("userid=")
    expect(text).not.toContain("cyrus_backup_upload_pending")
  })

  it("--per-user adds the gauges labelled userid", async () => {
    const ts = now() - 120
    setLastSuccess(data["carol"]!, ts)
    const text = await metrics("--per-user")
    expect(promtoolCheck(text).status).toBe(0)
    expect(sample(text, "cyrus_backup_last_success_timestamp_seconds", 'userid="carol"')).toBe(ts)
    expect(sample(text, "cyrus_backup_user_data_bytes", 'userid="bob"')).toBe(fs.statSync(data["bob"]!).size)
    expect(sample(text, "cyrus_backup_user_chunks", 'userid="alice"')).toBeGreaterThan(0)
  })

  it("the stale count follows a user's last chunk aged past backup_stale_after", async () => {
    setLastSuccess(data["bob"]!, now() - 3 * 86400)
    let text = await metrics()
    expect(sample(text, "cyrus_backup_users_stale")).toBe(1)
    expect(sample(text, "cyrus_backup_oldest_success_age_seconds")).toBeGreaterThanOrEqual(3 * 86400)
    // list -j and stat -j say the same per user
    const listed = await runOurs("ctl_backups", ["-C", server.conf, "-j", "list"])
    expect(listed.stdout.match(/"stale": true/g)?.length).toBe(1)
    expect(listed.stdout).toContain(`"last_success": ${now() - 3 * 86400}`.slice(0, 20))
    const stat = await runOurs("ctl_backups", ["-C", server.conf, "-j", "stat", "bob"])
    expect(stat.stdout).toMatch(/"stale": true\n\}/)
    setLastSuccess(data["bob"]!, now() - 60)
    text = await metrics()
    expect(sample(text, "cyrus_backup_users_stale")).toBe(0)
  })

  it("a latest chunk with no end (a C backupd stopped before ending it): list -j, stat -j and metrics all take its start", async () => {
    const start = now() - 2 * 86400
    const db = new Database(`${data["alice"]!}.index`)
    db.exec(`UPDATE chunk SET ts_start = ${start}, ts_end = NULL WHERE id = (SELECT MAX(id) FROM chunk)`)
    db.close()
    try {
      const text = await metrics("--per-user")
      expect(sample(text, "cyrus_backup_last_success_timestamp_seconds", 'userid="alice"')).toBe(start)
      const listed = await runOurs("ctl_backups", ["-C", server.conf, "-j", "list", "alice"])
      expect(listed.stdout).toContain(`"last_success": ${start},`)
      const stat = await runOurs("ctl_backups", ["-C", server.conf, "-j", "stat", "alice"])
      expect(stat.stdout).toContain(`"last_success": ${start},`)
      // what list prints as the time stays Cyrus's: the chunk's end, which is unknown (0)
      const plain = await runOurs("ctl_backups", ["-C", server.conf, "list", "alice"])
      expect(plain.stdout).toContain(String(new Date(0).getFullYear()))
    } finally {
      setLastSuccess(data["alice"]!, now() - 60)
    }
  })

  it("reads without writing anything and without a lock: a locked backup is counted, not waited for", async () => {
    const before = digestTree(server.partition)
    const dbBefore = fs.readFileSync(server.dbPath)
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(Scope.extend(lockDataFile(data["alice"]!), scope))
    try {
      const text = await metrics("--per-user")
      expect(sample(text, "cyrus_backup_locked_users")).toBe(1)
      expect(sample(text, "cyrus_backup_users")).toBe(3)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
    expect(digestTree(server.partition)).toEqual(before)
    expect(fs.readFileSync(server.dbPath).equals(dbBefore)).toBe(true)
  })

  it("folds backupd's per-process counter files, once", async () => {
    const dir = path.join(server.dir, "conf", "backupd-counters")
    fs.mkdirSync(dir, { recursive: true })
    const line = (o: object) => JSON.stringify(o) + "\n"
    // a process that has ended (no such pid), with a line cut short at the end
    fs.writeFileSync(
      path.join(dir, "999999999.1.jsonl"),
      line({ sessions: { "": 1 }, apply: { mailbox: 2, message: 1 }, no: { mailbox_locked: 1 }, sessions_refused: { locked: 1 } }) +
        line({ sessions: { "": 1 }, get: { user: 1 }, received_bytes: { protocol: 100, wire: 40 } }) +
        '{"sessions":{"":'
    )
    // this (live) process
    fs.writeFileSync(path.join(dir, `${process.pid}.5.jsonl`), line({ sessions: { "": 1 }, apply: { mailbox: 1 }, bad: { null_command: 1 } }))
    const check = (text: string) => {
      expect(sample(text, "cyrus_backupd_sessions_total")).toBe(3)
      expect(sample(text, "cyrus_backupd_apply_total", 'kind="mailbox"')).toBe(3)
      expect(sample(text, "cyrus_backupd_apply_total", 'kind="message"')).toBe(1)
      expect(sample(text, "cyrus_backupd_get_total", 'kind="user"')).toBe(1)
      expect(sample(text, "cyrus_backupd_no_total", 'reason="mailbox_locked"')).toBe(1)
      expect(sample(text, "cyrus_backupd_bad_total", 'reason="null_command"')).toBe(1)
      expect(sample(text, "cyrus_backupd_sessions_refused_total", 'reason="locked"')).toBe(1)
      expect(sample(text, "cyrus_backupd_received_bytes_total", 'layer="protocol"')).toBe(100)
    }
    const first = await metrics()
    check(first)
    expect(promtoolCheck(first).status).toBe(0)
    // the ended process's file was absorbed into folded.json; the live one stays
    expect(fs.readdirSync(dir).sort()).toEqual([".fold.lock", `${process.pid}.5.jsonl`, "folded.json"])
    check(await metrics())
  })

  it.skipIf(process.getuid?.() !== 0 || !fs.existsSync("dist/bundle/ctl_backups.bundle.cjs"))("run as root, it leaves nothing that keeps a later run as cyrus from folding", async () => {
    const srv = makeServer("metrics-root")
    const dir = path.join(srv.dir, "conf", "backupd-counters")
    fs.mkdirSync(dir, { recursive: true })
    await srv.record("alice", copyGolden(path.join(srv.partition, "a"), "alice_golden")) // gives the tree to cyrus
    const cyrus = fs.statSync(dir)
    const ended = (n: number) => fs.writeFileSync(path.join(dir, `99999999${n}.1.jsonl`), JSON.stringify({ sessions: { "": 1 } }) + "\n")
    // an earlier root run of the old code left the lock file to root
    fs.writeFileSync(path.join(dir, ".fold.lock"), "", { mode: 0o640 })
    ended(1)
    const asRoot = await runOurs("ctl_backups", ["-C", srv.conf, "metrics"])
    expect(asRoot.code).toBe(0)
    expect(sample(asRoot.stdout, "cyrus_backupd_sessions_total")).toBe(1)
    for (const f of [".fold.lock", "folded.json"]) expect(fs.statSync(path.join(dir, f)), f).toMatchObject({ uid: cyrus.uid, gid: cyrus.gid })
    // the next run as cyrus folds what came since
    ended(2)
    const [cmd, ...args] = asCyrusArgv([process.execPath, path.resolve("bin/ctl_backups"), "-C", srv.conf, "metrics"])
    const asCyrus = spawnSync(cmd!, args, { encoding: "utf8" })
    expect(asCyrus.status, asCyrus.stderr).toBe(0)
    expect(sample(asCyrus.stdout, "cyrus_backupd_sessions_total")).toBe(2)
    expect(fs.readdirSync(dir).sort()).toEqual([".fold.lock", "folded.json"])
  })

  it("--textfile writes DIR/cyrus_backup.prom atomically (no temporary file left)", async () => {
    const dir = path.join(server.dir, "textfile")
    fs.mkdirSync(dir, { recursive: true })
    const r = await runOurs("ctl_backups", ["-C", server.conf, "metrics", "--textfile", dir])
    expect(r).toMatchObject({ code: 0, stdout: "", stderr: "" })
    expect(fs.readdirSync(dir)).toEqual(["cyrus_backup.prom"])
    const text = fs.readFileSync(path.join(dir, "cyrus_backup.prom"), "utf8")
    expect(sample(text, "cyrus_backup_users")).toBe(3)
    const missing = await runOurs("ctl_backups", ["-C", server.conf, "metrics", "--textfile", path.join(dir, "nonexistent")])
    expect(missing.code).toBe(74)
    expect(missing.stderr).toContain("cannot write")
  })
})

describe("upload-pending hook", () => {
  it("series only with object storage configured, from the host's upload state by default", async () => {
    const server = makeServer("metrics-upload", [
      "backup_objectstore_endpoint: http://127.0.0.1:9",
      "backup_objectstore_bucket: cyrus-backups",
      "backup_objectstore_credentials: /nonexistent"
    ])
    const golden = copyGolden(path.join(server.partition, "a"), "alice_golden")
    await server.record("alice", golden)
    const plain = makeServer("metrics-noupload")
    const run = (conf: string, source?: UploadPendingSource) =>
      Effect.runPromise(
        Effect.gen(function* () {
          const config = yield* loadConfig("ctl_backups", conf, { ...processIo(), env: {} })
          const out: Array<string> = []
          const p = { out: () => Effect.void, err: () => Effect.void, outBytes: () => Effect.void, outUtf8: (t: string) => Effect.sync(() => void out.push(t)) }
          const args = { command: "metrics", altConfig: conf, perUser: false, textfileDir: undefined, warn: undefined, crit: undefined } as const
          const code = yield* Effect.flatMap(BackupsDb, (db) => runMetrics(p, "ctl_backups", config, db, args, source)).pipe(Effect.provide(backupsDbLayer(config)))
          return { code, text: out.join("") }
        })
      )
    // the default: the local upload state (src/objectstore/pending.ts); an index the C tools
    // wrote has no upload record, so every sealed chunk is pending
    let r = await run(server.conf)
    expect(r.code).toBe(0)
    expect(promtoolCheck(r.text).status).toBe(0)
    expect(sample(r.text, "cyrus_backup_upload_pending_chunks")).toBe(sample(r.text, "cyrus_backup_chunks"))
    expect(sample(r.text, "cyrus_backup_upload_pending_bytes")).toBeGreaterThan(0)
    r = await run(server.conf, () => Effect.succeed({ chunks: 2, bytes: 4096 }))
    expect(sample(r.text, "cyrus_backup_upload_pending_chunks")).toBe(2)
    expect(sample(r.text, "cyrus_backup_upload_pending_bytes")).toBe(4096)
    // a source that knows nothing: no series
    r = await run(server.conf, noUploadPending)
    expect(r.text).not.toContain("cyrus_backup_upload_pending")
    // no object storage: the source is not asked
    r = await run(plain.conf, () => Effect.die("asked"))
    expect(r.text).not.toContain("cyrus_backup_upload_pending")
  })
})

describe("ctl_backups health", () => {
  let server: Server
  const data: Record<string, string> = {}
  beforeAll(async () => {
    server = makeServer("health")
    for (const u of USERS) {
      data[u] = copyGolden(path.join(server.partition, "a"), `${u}_golden`)
      await server.record(u, data[u]!)
      setLastSuccess(data[u]!, now() - 600)
    }
  })
  const health = (...args: Array<string>) => runOurs("ctl_backups", ["-C", server.conf, "health", ...args])

  it("0 when every backup is recent, 1 past -w, 2 past -c, 3 when it cannot tell", async () => {
    let r = await health("-w", "1h", "-c", "10h")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^OK - 3 users, oldest backup 10m ago \| users=3 stale=0 critical=0 oldest_age=\d+s;3600;36000;0\n$/)
    setLastSuccess(data["bob"]!, now() - 2 * 3600)
    r = await health("-w", "1h", "-c", "10h")
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^WARNING - 3 users, oldest backup 2h ago \(bob\), 1 older than 1h \| users=3 stale=1 critical=0 /)
    setLastSuccess(data["carol"]!, now() - 20 * 3600)
    r = await health("-w", "1", "-c", "10")
    expect(r.code).toBe(2)
    expect(r.stdout).toMatch(/^CRITICAL - 3 users, oldest backup 20h ago \(carol\), 1 older than 10h, 1 older than 1h \| users=3 stale=2 critical=1 /)
    // defaults: backup_stale_after (2d) and twice that
    expect((await health()).code).toBe(0)
    r = await health("-w", "soon")
    expect(r.code).toBe(3)
    expect(r.stdout).toMatch(/^UNKNOWN - invalid -w "soon"/)
    r = await runOurs("ctl_backups", ["-C", path.join(server.dir, "nonexistent.conf"), "health"])
    expect(r.code).toBe(3)
    expect(r.stdout).toMatch(/^UNKNOWN - /)
  })
})
