/**
 * The `backupd` program: options, configuration, then either one session on stdin/stdout
 * (`-X`) or the accept loop under Cyrus's `master`. Exit codes are Cyrus's: 64 for usage
 * errors, 78 for configuration errors, 75 after a graceful shutdown by signal.
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { Cause, Deferred, Duration, Effect, Either, Exit, Layer, Schedule } from "effect"
import * as fs from "node:fs"
import type { Socket as NetSocket } from "node:net"
import { hostname } from "node:os"
import * as path from "node:path"
import { makeAuthenticator, makeAuthenticatorWith, makeAuthSettings, saslFailure, type AuthenticatorShape } from "../auth/index.js"
import { Config, renderConfigError, type CyrusConfig } from "../config/index.js"
import { makeBackupSet } from "../session/BackupSet.js"
import { makeHandlers } from "../session/handlers.js"
import { runSession, type SessionSettings } from "../session/Session.js"
import { UserBackups, type UserBackupsShape } from "../store/UserBackups.js"
import { userBackupsLayer } from "../store/userBackupsLive.js"
import { makeServiceLog, type ServiceLog } from "../telemetry/ServiceLog.js"
import { EX_CONFIG, EX_OK, EX_SOFTWARE, EX_USAGE } from "../util/sysexits.js"
import { packageVersion, versionLine } from "../util/version.js"
import { fromSocket, fromStdio, stdinIsNetworkSocket, type Connection } from "./Connection.js"
import { acceptLoop } from "./MasterService.js"
import { parseServiceArgs, usageText, type ServiceArgs } from "./ServiceArgs.js"
import { Signals } from "./Signals.js"
import { tlsOptionsFrom } from "./tlsOptions.js"

const PROGRAM = "backupd"

/** Cyrus's 5-minute close of idle backups, but enforced even when the client is silent. */
const IDLE_CLOSE_MS = 5 * 60 * 1000

export const sessionSettingsFrom = (config: CyrusConfig): SessionSettings => ({
  servername: config.serverName !== "" ? config.serverName : hostname(),
  version: `cyrus-backupd-${packageVersion}`,
  maxword: config.maxWord,
  maxquoted: config.maxQuoted,
  literalMinus: config.literalMinus,
  syncTimeout: Duration.seconds(Math.max(3, config.syncTimeout)),
  tls: tlsOptionsFrom(config),
  stagingDir: config.backupStagingPath
})

export const authSettingsFrom = (config: CyrusConfig, args: ServiceArgs) =>
  makeAuthSettings({
    allowPlaintext: config.allowPlaintext,
    saslMinimumLayer: config.saslMinimumLayer,
    saslMaximumLayer: config.saslMaximumLayer,
    externalSsf: args.externalSsf,
    mechList: config.overflow("sasl_mech_list"),
    pwcheckMethod: config.overflow("sasl_pwcheck_method"),
    saslauthdPath: config.overflow("sasl_saslauthd_path"),
    admins: config.admins,
    proxyServers: config.proxyServers ?? "",
    loginRealms: config.loginRealms,
    virtdomains: config.virtDomains,
    defaultDomain: config.defaultDomain,
    usernameToLower: config.usernameToLower,
    failedLoginPause: Duration.seconds(config.failedLoginPause),
    skipPasswordCheck: args.noPassword,
    cyrusUser: config.cyrusUser
  })

/** One session on `conn`, with its own backups, staging directory and handlers. */
export const serveConnection = (
  conn: Connection,
  env: {
    readonly config: CyrusConfig
    readonly auth: AuthenticatorShape
    readonly backups: UserBackupsShape
    readonly log: ServiceLog
    readonly stop: Deferred.Deferred<"terminate" | "hangup">
  }
): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.scoped(
    Effect.gen(function* () {
      const settings = sessionSettingsFrom(env.config)
      const sessionDir = path.join(settings.stagingDir, "sync.", String(process.pid))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(sessionDir, { recursive: true, force: true })))
      const backupSet = yield* makeBackupSet(env.backups, path.join(sessionDir, "pending"))
      const handlers = makeHandlers({
        backups: backupSet,
        naming: { defaultDomain: env.config.defaultDomain ?? "internal", deletedPrefix: env.config.deletedPrefix },
        log: env.log,
        idleCloseMs: IDLE_CLOSE_MS
      })
      // Close idle backups even while the client says nothing (gaps.md G16).
      yield* Effect.forkScoped(
        Effect.repeat(backupSet.closeIdle(IDLE_CLOSE_MS), Schedule.spaced("30 seconds")).pipe(Effect.ignore)
      )
      yield* runSession({ connection: conn, settings, auth: env.auth, handlers, log: env.log, stop: env.stop })
    })
  )

/** Runs backupd with `argv` (without node and script) and returns the process exit code. */
export const runBackupd = (argv: ReadonlyArray<string>): Promise<number> => {
  const parsed = parseServiceArgs(argv)
  if (Either.isLeft(parsed)) {
    process.stderr.write(`${PROGRAM}: ${parsed.left.message}\n${usageText(PROGRAM)}\n`)
    return Promise.resolve(EX_USAGE)
  }
  const args = parsed.right
  if (args.help) {
    process.stdout.write(usageText(PROGRAM) + "\n")
    return Promise.resolve(EX_OK)
  }
  if (args.version) {
    process.stdout.write(versionLine(PROGRAM) + "\n")
    return Promise.resolve(EX_OK)
  }
  const service = process.env["CYRUS_SERVICE"] ?? PROGRAM

  const program = Effect.gen(function* () {
    const config = yield* Config
    const log = makeServiceLog({
      ident: `${process.env["CYRUS_SYSLOG_PREFIX"] ?? config.syslogPrefix ?? ""}${(process.env["CYRUS_SYSLOG_PREFIX"] ?? config.syslogPrefix) ? "/" : ""}${service}`,
      facility: config.syslogFacility,
      debug: config.debug
    })
    process.umask(config.umask)
    const authSettings = authSettingsFrom(config, args)
    const stdioIsPipe = args.stdio && !stdinIsNetworkSocket()
    const auth = yield* makeAuthenticator(authSettings).pipe(
      Effect.catchAll((e) =>
        // A session on a pipe is pre-authenticated and never checks a password.
        stdioIsPipe
          ? Effect.succeed(makeAuthenticatorWith(authSettings, { check: () => Effect.succeed(saslFailure("NOUSER", "no password check configured")) }))
          : Effect.fail({ exit: EX_CONFIG, message: `sasl_pwcheck_method: ${e.method ?? "(unset)"} is not supported; use saslauthd or alwaystrue` })
      )
    )
    const backups = yield* UserBackups
    const signals = yield* Signals
    const env = { config, auth, backups, log, stop: signals.stopRequested }
    if (args.stdio) {
      yield* serveConnection(fromStdio(), env)
      return EX_OK
    }
    const lockPath = path.join(config.configDirectory, "socket", `${service}-${process.env["CYRUS_ID"] ?? "0"}.lock`)
    return yield* acceptLoop(
      { maxUses: args.maxUses, reuseTimeout: args.reuseTimeout, lockPath, programFile: process.argv[1], log: log.error },
      (socket: NetSocket) => serveConnection(fromSocket(socket), env)
    ).pipe(Effect.mapError((e) => ({ exit: e.exitCode, message: e.message })))
  })

  const configLayer = Config.layer({ path: args.configFile, service })
  const layers = Layer.mergeAll(
    configLayer,
    Signals.live,
    userBackupsLayer.pipe(Layer.provide(configLayer))
  ).pipe(Layer.provideMerge(NodeFileSystem.layer))

  return Effect.runPromiseExit(program.pipe(Effect.provide(layers))).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") {
      const e = failure.value as { _tag?: string; exit?: number; message?: string }
      if (e._tag === "ConfigError") {
        process.stderr.write(`${PROGRAM}: ${renderConfigError(e as never)}\n`)
        return EX_CONFIG
      }
      process.stderr.write(`${PROGRAM}: ${e.message ?? String(e)}\n`)
      return e.exit ?? EX_SOFTWARE
    }
    process.stderr.write(`${PROGRAM}: internal error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
    return EX_SOFTWARE
  })
}
