/**
 * Low-level access to the real Cyrus 3.6.1 installation used as oracle:
 * detection, running its programs as the cyrus user, loopback ports and
 * temp roots the cyrus user may write.
 */
import { execFile } from "node:child_process"
import { readdirSync, readlinkSync } from "node:fs"
import * as fsp from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Clock, Data, Duration, Effect } from "effect"
import { asCyrusArgv, cyrusIds, cyrusProgram, isExecutable, SETPRIV, warnSkipping } from "../support/cyrus.js"

export const SASLPASSWD2 = "/usr/sbin/saslpasswd2"

/** Programs the interop tests need; all must be present for haveCyrus(). */
export const REQUIRED_PROGRAMS = [
  "master",
  "sync_client",
  "backupd",
  "ctl_backups",
  "cyr_backup",
  "restore",
  "imapd",
  "lmtpd"
] as const

/** A process failed to start, timed out, or exited non-zero when that was required. */
export class CyrusProcessError extends Data.TaggedError("CyrusProcessError")<{
  readonly command: string
  readonly reason: string
  readonly stdout?: string
  readonly stderr?: string
}> {
  override get message(): string {
    return `${this.command}: ${this.reason}${this.stderr ? `\n${this.stderr.slice(-2000)}` : ""}`
  }
}

/** Waited too long for a condition on real processes. */
export class HarnessTimeoutError extends Data.TaggedError("HarnessTimeoutError")<{
  readonly waitingFor: string
  readonly detail: string
}> {
  override get message(): string {
    return `timed out waiting for ${this.waitingFor}: ${this.detail}`
  }
}

/** A file-system step of the harness failed. */
export class HarnessFsError extends Data.TaggedError("HarnessFsError")<{
  readonly operation: string
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.operation} ${this.path}: ${this.reason}`
  }
}

const liveClock = Clock.make()

/**
 * Runs with the real clock even under @effect/vitest's TestClock (it.effect),
 * where a plain Effect.sleep or timeout would never fire. The harness waits on
 * real processes, so all its sleeps and timeouts go through this.
 */
export const withLiveClock = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withClock(self, liveClock)

/** Effect.sleep on the real clock. */
export const liveSleep = (d: Duration.DurationInput): Effect.Effect<void> => withLiveClock(Effect.sleep(d))

/** Why the interop tests cannot run here, or undefined when they can. */
export const cyrusSkipReason = (): string | undefined => {
  if (process.env["CYB_SKIP_INTEROP"] === "1") return "CYB_SKIP_INTEROP=1 is set"
  const missing = [...REQUIRED_PROGRAMS.map(cyrusProgram), SASLPASSWD2].filter((p) => !isExecutable(p))
  if (missing.length > 0) return `Cyrus 3.6.1 programs missing: ${missing.join(", ")}`
  const ids = cyrusIds()
  if (ids === null) return "no user 'cyrus' / group 'mail' on this machine"
  const uid = process.getuid?.()
  if (uid !== 0 && uid !== ids.uid) {
    return "must run as root (to setpriv to cyrus and bind /dev/log) or as the cyrus user"
  }
  if (uid === 0 && !isExecutable(SETPRIV)) return `${SETPRIV} missing`
  return undefined
}

/** True when the real Cyrus programs are installed and can be run as user cyrus. */
export const haveCyrus = (): boolean => cyrusSkipReason() === undefined

/**
 * For `describe.skipIf(!haveCyrus())`: prints a loud banner when skipping, so
 * a green run without Cyrus is not mistaken for a tested one.
 */
export const warnIfNoCyrus = (suite: string): boolean => {
  const reason = cyrusSkipReason()
  warnSkipping(`interop suite "${suite}"`, reason, "Debian 12 cyrus-imapd, cyrus-replication, sasl2-bin")
  return reason === undefined
}

export interface RunResult {
  readonly command: string
  readonly exitCode: number | null
  readonly signal: string | null
  readonly stdout: string
  readonly stderr: string
  readonly durationMs: number
}

export interface RunOptions {
  /** Bytes written to the program's stdin, then closed. */
  readonly input?: string
  readonly timeout?: Duration.DurationInput
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
  /** Run as the current user rather than cyrus (e.g. saslpasswd2 as root). */
  readonly asCurrentUser?: boolean
}

/**
 * Runs a program to completion with captured output. A timeout kills it
 * (SIGKILL) and fails; a non-zero exit is a normal result — see `requireSuccess`.
 */
export const runProgram = (
  argv: ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<RunResult, CyrusProcessError> => {
  const full = options.asCurrentUser === true ? argv : asCyrusArgv(argv)
  const command = argv.join(" ")
  const timeoutMs = Duration.toMillis(options.timeout ?? "60 seconds")
  return Effect.async<RunResult, CyrusProcessError>((resume) => {
    const started = Date.now()
    const child = execFile(
      full[0]!,
      full.slice(1),
      {
        encoding: "latin1",
        maxBuffer: 256 * 1024 * 1024,
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        cwd: options.cwd ?? "/tmp",
        env: { ...process.env, ...options.env }
      },
      (error, stdout, stderr) => {
        const durationMs = Date.now() - started
        const err = error as (NodeJS.ErrnoException & { killed?: boolean; signal?: string }) | null
        if (err !== null && typeof err.code === "string") {
          resume(Effect.fail(new CyrusProcessError({ command, reason: `spawn failed: ${err.code}`, stdout, stderr })))
          return
        }
        if (err?.killed === true && durationMs >= timeoutMs) {
          resume(Effect.fail(new CyrusProcessError({ command, reason: `timed out after ${timeoutMs} ms`, stdout, stderr })))
          return
        }
        resume(Effect.succeed({
          command,
          exitCode: child.exitCode,
          signal: child.signalCode,
          stdout,
          stderr,
          durationMs
        }))
      }
    )
    child.stdin?.on("error", () => {}) // the program may exit before reading its input
    child.stdin?.end(options.input ?? "", "latin1")
    return Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
  })
}

/** Runs a Cyrus program from /usr/lib/cyrus/bin as the cyrus user. */
export const runCyrus = (
  program: string,
  args: ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<RunResult, CyrusProcessError> =>
  runProgram([program.includes("/") ? program : cyrusProgram(program), ...args], options)

/** Fails unless the program exited 0. */
export const requireSuccess = (result: RunResult): Effect.Effect<RunResult, CyrusProcessError> =>
  result.exitCode === 0
    ? Effect.succeed(result)
    : Effect.fail(
      new CyrusProcessError({
        command: result.command,
        reason: `exit ${result.exitCode ?? `signal ${result.signal}`}`,
        stdout: result.stdout,
        stderr: result.stderr
      })
    )

/**
 * A loopback TCP port that was free a moment ago (bind :0, then release).
 * Racy by nature; collisions show up as a master that cannot bind.
 */
export const freePort: Effect.Effect<number, CyrusProcessError> = Effect.async((resume) => {
  const server = createServer()
  server.once("error", (e) =>
    resume(Effect.fail(new CyrusProcessError({ command: "bind 127.0.0.1:0", reason: String(e) }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** n distinct free loopback ports. */
export const freePorts = (n: number): Effect.Effect<ReadonlyArray<number>, CyrusProcessError> =>
  Effect.gen(function*() {
    const ports = new Set<number>()
    while (ports.size < n) ports.add(yield* freePort)
    return [...ports]
  })

const fsStep = <A>(operation: string, target: string, f: () => Promise<A>): Effect.Effect<A, HarnessFsError> =>
  Effect.tryPromise({
    try: f,
    catch: (e) => new HarnessFsError({ operation, path: target, reason: String(e) })
  })

/** chown a path to cyrus:mail (no-op when not root). */
export const chownCyrus = (target: string): Effect.Effect<void, HarnessFsError> => {
  const ids = cyrusIds()
  if (process.getuid?.() !== 0 || ids === null) return Effect.void
  return fsStep("chown", target, () => fsp.chown(target, ids.uid, ids.gid))
}

/** chown -R cyrus:mail. */
export const chownCyrusRecursive = (root: string): Effect.Effect<void, HarnessFsError> =>
  Effect.gen(function*() {
    yield* chownCyrus(root)
    const entries = yield* fsStep("readdir", root, () => fsp.readdir(root, { recursive: true }))
    yield* Effect.forEach(entries, (e) => chownCyrus(path.join(root, e)), { discard: true, concurrency: 16 })
  })

/** Writes a file (latin1) and hands it to cyrus:mail. */
export const writeCyrusFile = (file: string, content: string, mode = 0o640): Effect.Effect<void, HarnessFsError> =>
  Effect.gen(function*() {
    yield* fsStep("mkdir", path.dirname(file), () => fsp.mkdir(path.dirname(file), { recursive: true }))
    yield* fsStep("write", file, () => fsp.writeFile(file, content, { encoding: "latin1", mode }))
    yield* chownCyrus(file)
  })

/** mkdir -p, each created directory owned by cyrus:mail, mode 0750. */
export const mkdirCyrus = (dir: string): Effect.Effect<void, HarnessFsError> =>
  Effect.gen(function*() {
    const first = yield* fsStep("mkdir", dir, () => fsp.mkdir(dir, { recursive: true, mode: 0o750 }))
    if (first === undefined) return
    // chown every level that mkdir created (first .. dir)
    let d = dir
    const created: Array<string> = []
    while (d.length >= first.length) {
      created.push(d)
      d = path.dirname(d)
    }
    yield* Effect.forEach(created, chownCyrus, { discard: true })
  })

/** Reads a file as latin1 text; "" when it does not exist. */
export const readTextIfExists = (file: string): Effect.Effect<string, HarnessFsError> =>
  fsStep("read", file, () =>
    fsp.readFile(file, "latin1").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return ""
      throw e
    }))

/**
 * A fresh directory under /tmp owned by cyrus:mail (mode 0750), removed when
 * the scope closes unless CYB_KEEP=1 (for post-mortems).
 */
export const makeCyrusTempRoot = (label: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const dir = yield* fsStep("mkdtemp", tmpdir(), () => fsp.mkdtemp(path.join("/tmp", `cybt-${label}-`)))
      yield* fsStep("chmod", dir, () => fsp.chmod(dir, 0o750))
      yield* chownCyrus(dir)
      return dir
    }),
    (dir) =>
      process.env["CYB_KEEP"] === "1"
        ? Effect.sync(() => console.warn(`CYB_KEEP=1: keeping ${dir}`))
        : Effect.promise(() => fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined))
  )

/** True while a process with this pid exists. */
export const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Processes that hold a file under `dir` open, as "pid path" (from /proc/<pid>/fd; needs root for other users). */
export const openersUnder = (dir: string): ReadonlyArray<string> => {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`
  const found: Array<string> = []
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let fds: Array<string>
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`)
        if (target.startsWith(prefix)) found.push(`${pid} ${target}`)
      } catch {
        // fd closed meanwhile
      }
    }
  }
  return found
}
