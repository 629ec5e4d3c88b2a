/**
 * A real `saslauthd -a sasldb` for tests, scoped.
 *
 * saslauthd's sasldb backend always opens the fixed path /etc/sasldb2. So that the host's
 * file is never touched, the daemon runs in a private mount namespace (`unshare -m`) where a
 * temporary sasldb is bind-mounted over that path. That needs root, unshare, and an existing
 * /etc/sasldb2 to mount over. The mux socket lives in a cyrus-traversable directory, so a
 * backupd running as cyrus can reach it.
 *
 * Credentials are checked with an empty realm (no `@realm` in the login), for which
 * saslauthd uses the host name: users are therefore created in the realm `hostname()`.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { hostname } from "node:os"
import * as path from "node:path"
import { Effect, Scope } from "effect"
import {
  type CyrusProcessError,
  type HarnessFsError,
  HarnessTimeoutError,
  liveSleep,
  makeCyrusTempRoot,
  mkdirCyrus,
  pidAlive,
  requireSuccess,
  runProgram,
  SASLPASSWD2
} from "./cyrus.js"
import { ADMIN_PASSWORD, ADMIN_USER, DEFAULT_USERS, USER_PASSWORD } from "./instances.js"

export const SASLAUTHD = "/usr/sbin/saslauthd"
const UNSHARE = "/usr/bin/unshare"

/** Why a real saslauthd cannot run here, or undefined when it can. */
export const saslauthdSkipReason = (): string | undefined => {
  const missing = [
    !existsSync(SASLAUTHD) && SASLAUTHD,
    !existsSync(SASLPASSWD2) && SASLPASSWD2,
    !existsSync(UNSHARE) && UNSHARE,
    !existsSync("/etc/sasldb2") && "/etc/sasldb2 (bind-mount target)",
    process.getuid?.() !== 0 && "root privileges"
  ].filter((x): x is string => typeof x === "string")
  return missing.length === 0 ? undefined : `real saslauthd unavailable: missing ${missing.join(", ")} (Debian sasl2-bin)`
}

export interface SaslauthdInstance {
  /** The mux socket: `sasl_saslauthd_path`. */
  readonly muxPath: string
  readonly dir: string
  /** The realm the users were created in (the host name). */
  readonly realm: string
  readonly pid: number
}

export interface SaslauthdOptions {
  /** [user, password] pairs; default admin/adminpw plus alice, bob, carol with userpw. */
  readonly users?: ReadonlyArray<readonly [string, string]>
}

/** Starts saslauthd in its own mount namespace; stopped (TERM, then KILL) when the scope closes. */
export const startSaslauthd = (
  opts: SaslauthdOptions = {}
): Effect.Effect<SaslauthdInstance, CyrusProcessError | HarnessFsError | HarnessTimeoutError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* makeCyrusTempRoot("saslauthd")
    const runDir = path.join(dir, "run")
    yield* mkdirCyrus(runDir)
    const realm = hostname()
    const sasldb = path.join(dir, "sasldb2")
    const users = opts.users ?? [[ADMIN_USER, ADMIN_PASSWORD] as const, ...DEFAULT_USERS.map((u) => [u, USER_PASSWORD] as const)]
    for (const [user, password] of users) {
      yield* runProgram([SASLPASSWD2, "-p", "-c", "-f", sasldb, "-u", realm, user], {
        input: password,
        asCurrentUser: true,
        timeout: "10 seconds"
      }).pipe(Effect.flatMap(requireSuccess))
    }
    const script = `mount --bind "$1/sasldb2" /etc/sasldb2 && exec ${SASLAUTHD} -a sasldb -m "$1/run" -n 1 -d`
    const pid = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(UNSHARE, ["-m", "--propagation", "private", "sh", "-c", script, "sh", dir], {
          detached: true,
          stdio: "ignore"
        })
        child.on("error", () => {})
        child.unref()
        return child.pid ?? -1
      }),
      (pid) =>
        Effect.gen(function*() {
          if (pid <= 0) return
          try {
            process.kill(-pid, "SIGTERM") // the process group we created
          } catch {
            return
          }
          for (let i = 0; i < 30 && pidAlive(pid); i++) yield* liveSleep("100 millis")
          try {
            process.kill(-pid, "SIGKILL")
          } catch {
            // gone
          }
        })
    )
    const muxPath = path.join(runDir, "mux")
    for (let i = 0; i < 100 && !existsSync(muxPath); i++) {
      if (pid <= 0 || !pidAlive(pid)) break
      yield* liveSleep("50 millis")
    }
    if (!existsSync(muxPath)) {
      return yield* new HarnessTimeoutError({ waitingFor: "saslauthd's mux socket", detail: muxPath })
    }
    const instance: SaslauthdInstance = { muxPath, dir, realm, pid }
    return instance
  })
