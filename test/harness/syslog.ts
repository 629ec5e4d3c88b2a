/**
 * Cyrus logs only through syslog(3) to /dev/log. When nothing serves it
 * (typical in containers) every Cyrus error is silently lost, so the tests
 * start `syslog_sink.py` (python3, stdlib only), shared by all test files of
 * a run through lease files; each instance filters it by its syslog_prefix.
 */
import { spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { liveSleep, pidAlive, readTextIfExists } from "./cyrus.js"

const STATE_DIR = "/tmp/cybt-syslog"
const SOCKET = "/dev/log"
// Beside this module (the harness always runs from its sources: vitest, or vite-node for bench/).
const SINK_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "syslog_sink.py")
const LOG_FILE = path.join(STATE_DIR, "syslog.log")

export interface SyslogCapture {
  /** False when no sink could be had; `reason` says why (Cyrus logs are then lost or elsewhere). */
  readonly available: boolean
  readonly reason?: string
  readonly file: string
  /** Lines of the shared log that contain `tag` (an instance's syslog_prefix). */
  readonly linesWith: (tag: string) => Effect.Effect<ReadonlyArray<string>>
}

const sinkPid = (): number | undefined => {
  try {
    const pid = Number(readFileSync(path.join(STATE_DIR, "sink.pid"), "latin1").trim())
    return pid > 0 && pidAlive(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

const unavailable = (reason: string): SyslogCapture => ({
  available: false,
  reason,
  file: LOG_FILE,
  linesWith: () => Effect.succeed([])
})

/**
 * Makes sure a sink serves /dev/log for as long as the scope is open (it
 * holds a lease named after this process). Never fails: without root or
 * python3 the capture is reported unavailable.
 */
export const syslogCapture = Effect.acquireRelease(
  Effect.gen(function*() {
    if (process.getuid?.() !== 0) return { capture: unavailable("not root: cannot bind /dev/log"), lease: undefined }
    yield* Effect.promise(() => fsp.mkdir(path.join(STATE_DIR, "leases"), { recursive: true, mode: 0o755 }))
    const lease = path.join(STATE_DIR, "leases", `${process.pid}-${Math.random().toString(36).slice(2)}`)
    yield* Effect.promise(() => fsp.writeFile(lease, `${process.pid}\n`))
    if (sinkPid() === undefined) {
      // a second concurrent starter exits at once on the flock; either way we poll for the pidfile
      const child = spawn("python3", [SINK_SCRIPT, STATE_DIR, SOCKET], { detached: true, stdio: "ignore" })
      child.on("error", () => {})
      child.unref()
    }
    for (let i = 0; i < 50 && (sinkPid() === undefined || !existsSync(SOCKET)); i++) {
      yield* liveSleep("100 millis")
    }
    const capture: SyslogCapture = sinkPid() !== undefined
      ? {
        available: true,
        file: LOG_FILE,
        linesWith: (tag) =>
          readTextIfExists(LOG_FILE).pipe(
            Effect.map((text) => text.split("\n").filter((l) => l.includes(tag))),
            Effect.orElseSucceed(() => [])
          )
      }
      : unavailable(existsSync(SOCKET)
        ? "/dev/log is served by another syslog daemon; Cyrus logs go there"
        : "could not start syslog_sink.py (python3 missing?)")
    return { capture, lease }
  }),
  ({ lease }) => lease === undefined ? Effect.void : Effect.promise(() => fsp.rm(lease, { force: true }))
).pipe(Effect.map(({ capture }) => capture))
