/**
 * The service contract with Cyrus's master, checked against a fake master (no Cyrus needed):
 * status messages and their byte layout, one connection at a time, -U, -T, signals, a changed
 * program file, -D, the accept lock, the mandatory environment.
 */
import { afterEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import { endianness } from "node:os"
import * as path from "node:path"
import { spawnSync } from "node:child_process"
import { MasterStatus, statusMessage } from "../../src/service/masterService.js"
import { formatDebugCommand } from "../../src/service/debugCommand.js"
import {
  BACKUPD,
  connectClient,
  ensureBuilt,
  eventually,
  type FakeMaster,
  makeServerDir,
  plainAuth,
  type ServerDir,
  sleep,
  startFakeMaster
} from "./support/fakeMaster.js"

const { AVAILABLE, UNAVAILABLE, CONNECTION } = MasterStatus
/** Opened just before the first accept: the process is ready (signal handlers installed). */
const lockFile = (s: ServerDir) => path.join(s.configDirectory, "socket", "backupd-7.lock")

describe("status message layout", () => {
  it("is { int message; pid_t pid } in host byte order, 8 bytes", () => {
    const b = statusMessage(CONNECTION, 0x01020304)
    expect(b.length).toBe(8)
    const expected = endianness() === "LE" ? [3, 0, 0, 0, 4, 3, 2, 1] : [0, 0, 0, 3, 1, 2, 3, 4]
    expect([...b]).toEqual(expected)
    expect([AVAILABLE, UNAVAILABLE, CONNECTION]).toEqual([1, 2, 3])
  })
})

describe("debug_command format", () => {
  it("fills program, pid and service in order, like snprintf", () => {
    expect(formatDebugCommand("gdb %s %d", "/usr/lib/cyrus/bin/backupd", 42, "backupd")).toBe("gdb /usr/lib/cyrus/bin/backupd 42")
    expect(formatDebugCommand("x %s %i %s 100%%", "p", 7, "svc")).toBe("x p 7 svc 100%")
    expect(formatDebugCommand("%s %d %s %s", "p", 7, "svc")).toBe("p 7 svc %s")
  })
})

describe("backupd under a fake master", () => {
  const cleanups: Array<() => Promise<void> | void> = []
  const start = async (server: ServerDir, opts?: Parameters<typeof startFakeMaster>[1]): Promise<FakeMaster> => {
    const m = await startFakeMaster(server, opts)
    cleanups.push(() => m.close())
    await m.ready()
    return m
  }
  const serverDir = (extra?: ReadonlyArray<string>) => {
    const s = makeServerDir(extra)
    cleanups.push(() => fs.rmSync(s.dir, { recursive: true, force: true }))
    return s
  }
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it("serves -U connections one at a time, telling master UNAVAILABLE, CONNECTION, AVAILABLE", async () => {
    const server = serverDir()
    const m = await start(server, { args: ["-U", "2"] })
    const a = await connectClient(m.port)
    const banner = await a.banner()
    expect(banner.at(-1)).toMatch(/^\* OK svc-test Cyrus backup server cyrus-backupd-/)
    expect(banner).toContain("* SASL PLAIN")
    await eventually(() => m.statuses.length >= 2, 5000, "two status messages")
    // A second client waits in the backlog while the first session runs.
    const b = await connectClient(m.port)
    await expect(b.line(1000)).rejects.toThrow(/no line/)
    a.send(plainAuth("admin"))
    expect(await a.line()).toMatch(/^OK Success/)
    a.send("EXIT\r\n")
    expect(await a.line()).toBe("OK Finished")
    await a.closed
    // Now the same process takes the second one; after it the use count is spent.
    expect((await b.banner()).at(-1)).toMatch(/^\* OK /)
    b.send("NOOP\r\nEXIT\r\n")
    expect(await b.line()).toBe("OK Noop completed")
    expect(await b.line()).toBe("OK Finished")
    expect(await m.exited).toBe(0)
    expect(m.statuses.map((s) => s.message)).toEqual([UNAVAILABLE, CONNECTION, AVAILABLE, UNAVAILABLE, CONNECTION])
    expect(new Set(m.statuses.map((s) => s.pid))).toEqual(new Set([m.pid]))
    expect(m.statusBytes().length).toBe(5 * 8)
    // The accept lock lives under {configdirectory}/socket/<service>-<id>.lock.
    expect(fs.existsSync(lockFile(server))).toBe(true)
    // Login and the per-session totals are logged.
    expect(m.stderr()).toMatch(/backupd\[\d+\]: login: \[127\.0\.0\.1\] admin PLAIN User logged in/)
    expect(m.stderr()).toMatch(/session totals: \[127\.0\.0\.1\] user=admin apply=0 get=0 in=\d+ out=\d+ wire_in=\d+ wire_out=\d+ secs=/)
    expect(m.stderr().match(/session totals/g)?.length).toBe(2)
  })

  it("-T: an idle process ends within [T, 2T) after its first connection, but not before one", async () => {
    const m = await start(serverDir(), { args: ["-T", "1"] })
    await sleep(2500)
    expect(m.child.exitCode).toBeNull()
    const c = await connectClient(m.port)
    await c.banner()
    c.send("EXIT\r\n")
    await c.line()
    const ended = Date.now()
    expect(await m.exited).toBe(0)
    const waited = Date.now() - ended
    expect(waited).toBeGreaterThanOrEqual(900)
    expect(waited).toBeLessThan(3500)
    expect(m.statuses.map((s) => s.message)).toEqual([UNAVAILABLE, CONNECTION, AVAILABLE])
  })

  it("SIGTERM while waiting for a connection exits 75, SIGHUP exits 0", async () => {
    const termDir = serverDir()
    const term = await start(termDir)
    term.child.kill("SIGTERM")
    expect(await term.exited).toBe(75)
    expect(term.stderr()).toMatch(/graceful shutdown/)
    const hupDir = serverDir()
    const hup = await start(hupDir)
    hup.child.kill("SIGHUP")
    expect(await hup.exited).toBe(0)
    expect(hup.statuses).toEqual([])
  })

  it("SIGHUP during a session lets the session go on, then ends the process without AVAILABLE", async () => {
    const m = await start(serverDir())
    const c = await connectClient(m.port)
    await c.banner()
    await eventually(() => m.statuses.length >= 2)
    m.child.kill("SIGHUP")
    await sleep(300)
    c.send(plainAuth("admin"))
    expect(await c.line()).toMatch(/^OK Success/)
    c.send("NOOP\r\nEXIT\r\n")
    expect(await c.line()).toBe("OK Noop completed")
    expect(await c.line()).toBe("OK Finished")
    expect(await m.exited).toBe(0)
    expect(m.statuses.map((s) => s.message)).toEqual([UNAVAILABLE, CONNECTION])
  })

  it("SIGTERM during a session ends it at the next command boundary, exit 75, nothing more is answered", async () => {
    const m = await start(serverDir())
    const c = await connectClient(m.port)
    await c.banner()
    c.send(plainAuth("admin"))
    expect(await c.line()).toMatch(/^OK Success/)
    m.child.kill("SIGTERM")
    expect(await m.exited).toBe(75)
    await c.closed
    expect(m.statuses.map((s) => s.message)).toEqual([UNAVAILABLE, CONNECTION])
  })

  it("ends when its program file changes (an upgrade was installed)", async () => {
    const server = serverDir()
    const script = path.join(server.dir, "backupd.mjs")
    fs.writeFileSync(script, `import(${JSON.stringify(path.join(path.dirname(BACKUPD), "..", "dist", "bin", "backupd.js"))})\n`)
    const m = await start(server, { script })
    const changed = Date.now()
    expect(m.child.exitCode).toBeNull()
    fs.appendFileSync(script, "// upgraded\n")
    expect(await m.exited).toBe(0)
    expect(Date.now() - changed).toBeLessThan(10_000)
    expect(m.stderr()).toMatch(/process file has changed/)
  })

  it("-D runs debug_command with program, pid and service before serving", async () => {
    const dir = fs.mkdtempSync("/tmp/cyb-svc-d-")
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const out = path.join(dir, "debug.out")
    const m = await start(serverDir([`debug_command: echo %s %d %s > ${out}`]), { args: ["-D"] })
    await eventually(() => fs.existsSync(out) && fs.readFileSync(out, "latin1").endsWith("\n"), 10_000, "debug.out")
    expect(fs.readFileSync(out, "latin1")).toBe(`${BACKUPD} ${m.pid} backupd\n`)
    const c = await connectClient(m.port)
    expect((await c.banner()).at(-1)).toMatch(/^\* OK /)
  })

  it("under master, refuses to run without CYRUS_SERVICE or CYRUS_ID (exit 70); bad options are usage errors (64)", () => {
    ensureBuilt()
    const server = serverDir()
    const run = (env: Record<string, string | undefined>, args: ReadonlyArray<string> = ["-X"]) =>
      spawnSync(process.execPath, [BACKUPD, "-C", server.conf, ...args], {
        env: Object.fromEntries(
          Object.entries({ ...process.env, CYRUS_SERVICE: "backupd", CYRUS_ID: "0", ...env }).filter(([, v]) => v !== undefined)
        ),
        input: "",
        encoding: "latin1"
      })
    const noId = run({ CYRUS_ID: undefined }, [])
    expect(noId.status).toBe(70)
    expect(noId.stderr).toMatch(/could not getenv\(CYRUS_ID\); exiting/)
    expect(run({ CYRUS_SERVICE: undefined }, []).status).toBe(70)
    expect(run({}, ["-X", "-U3"]).status).toBe(64)
    // -s without a certificate: Cyrus's imaps refusal, a configuration error.
    const noTls = run({ BACKUPD_LOG_STDERR: "1" }, ["-X", "-s"])
    expect(noTls.status).toBe(78)
    expect(noTls.stderr).toMatch(/required OpenSSL options not present/)
  })
})
