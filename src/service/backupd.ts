/**
 * The `backupd` program: options, configuration, then either one session on stdin/stdout
 * (`-X`) or the accept loop under Cyrus's `master`. Exit codes are Cyrus's: 64 for usage
 * errors, 78 for configuration errors, 75 after a graceful shutdown by signal.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { fileURLToPath } from "node:url"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Cause, Deferred, Duration, Effect, Either, Exit, Layer, Schedule } from "effect"
import * as fs from "node:fs"
import type { Socket as NetSocket } from "node:net"
import type * as tls from "node:tls"
import { hostname } from "node:os"
import * as path from "node:path"
import {
  makeAuthenticator,
  makeAuthenticatorWith,
  makeAuthSettings,
  saslFailure,
  type AuthenticatorShape,
  type UnsupportedPwcheckMethod
} from "../auth/index.js"
import { Config, type ConfigError, type CyrusConfig } from "../config/index.js"
import { makeBackupSet } from "../session/BackupSet.js"
import { makeHandlers } from "../session/handlers.js"
import { runSession, type SessionSettings } from "../session/commandLoop.js"
import type { GetCommand } from "../session/commands.js"
import type { StopReason } from "../session/StopReason.js"
import { UserBackups, userBackupsLayer, type UnsupportedBackend, type UserBackupsShape } from "../store/index.js"
import { logNotice, makeServiceLog, syslogIdent, withServiceLog, type ServiceLog } from "../telemetry/ServiceLog.js"
import { appendSessionCounts, countersDirectory, makeSessionCounter } from "../telemetry/Counters.js"
import { telemetryOpener } from "../telemetry/TelemetryLog.js"
import { EX_CONFIG, EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE } from "../util/sysexits.js"
import { packageVersion, versionLine } from "../util/version.js"
import type { Connection } from "../transport/Connection.js"
import { fromSocket, fromStdio, stdinIsNetworkSocket } from "./nodeConnection.js"
import { TlsRequired, TlsSetupFailed } from "./errors.js"
import { acceptLoop, type MasterServiceError } from "./masterService.js"
import { parseServiceArgs, usageText, type ServiceArgs } from "./ServiceArgs.js"
import { runDebugCommand } from "./debugCommand.js"
import { Signals } from "./Signals.js"
import { loadTlsOptions } from "./tlsOptions.js"
import { startUploader, writerExtras } from "./Uploader.js"

const PROGRAM = "backupd"

/** Cyrus's 5-minute close of idle backups, but enforced even when the client is silent. */
const IDLE_CLOSE_MS = 5 * 60 * 1000

/** The GET key (the counters' kind) of each GET command. */
const GET_KIND: Record<GetCommand["_tag"], string> = {
  GetUser: "user",
  GetMeta: "meta",
  GetMailboxes: "mailboxes",
  GetFullMailbox: "fullmailbox",
  GetUniqueids: "uniqueids"
}

/** `tls`: the options read at start (loadTlsOptions), undefined without TLS. */
export const sessionSettingsFrom = (config: CyrusConfig, tls: tls.TlsOptions | undefined): SessionSettings => ({
  servername: config.serverName !== "" ? config.serverName : hostname(),
  version: `cyrus-backupd-${packageVersion}`,
  maxword: config.maxWord,
  maxquoted: config.maxQuoted,
  literalMinus: config.literalMinus,
  syncTimeout: Duration.seconds(Math.max(3, config.syncTimeout)),
  tls,
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

/** What one session needs besides its connection. */
export interface SessionEnv {
  readonly config: CyrusConfig
  readonly auth: AuthenticatorShape
  readonly backups: UserBackupsShape
  readonly log: ServiceLog
  readonly stop: Deferred.Deferred<StopReason>
  /** The TLS options read at start (STARTTLS, `-s`), undefined without TLS. */
  readonly tls?: tls.TlsOptions | undefined
  /** `-s`: TLS handshake before the banner (with `tls`). */
  readonly wrapTls?: boolean
}

/**
 * Staging directories `sync./<pid>` of processes that no longer run (killed mid-session) are
 * removed; a live process's directory is left alone. A directory that cannot be read or
 * removed is left for the next start (and logged): it never stops a session.
 */
export const removeOrphanedStaging = (base: string, log: ServiceLog): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const files = yield* FileSystem.FileSystem
    const entries = yield* files.readDirectory(base).pipe(Effect.orElseSucceed((): ReadonlyArray<string> => []))
    for (const name of entries) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid || processRuns(Number(name))) continue
      log.info(`removing staging directory of ended process ${name}`)
      yield* files.remove(path.join(base, name), { recursive: true, force: true }).pipe(
        Effect.catchAll((e) => Effect.sync(() => log.notice(`staging directory of ended process ${name} not removed: ${e.message}`)))
      )
    }
  })

/** Whether process `pid` exists (one we may not signal counts: it runs, as another user). */
const processRuns = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e instanceof Error && "code" in e && e.code === "EPERM"
  }
}

/**
 * One session on `conn`, with its own backups, staging directory and handlers. Ends with a
 * totals line in the log: who, how many APPLY/GET commands, bytes each way and duration.
 */
export const serveConnection = (conn: Connection, env: SessionEnv): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.scoped(
    Effect.gen(function* () {
      const started = Date.now()
      const totals = { apply: 0, get: 0, userid: undefined as string | undefined }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          const s = conn.stats
          env.log.notice(
            `session totals: ${conn.peer.clientHost} user=${totals.userid ?? (conn.peer.isLocal ? env.auth.unixSocketIdentity.userid : "-")}` +
              ` apply=${totals.apply} get=${totals.get} in=${s.protocolIn} out=${s.protocolOut}` +
              ` wire_in=${s.transportIn} wire_out=${s.transportOut} secs=${((Date.now() - started) / 1000).toFixed(3)}`
          )
        })
      )
      // backupd's own counters, appended once the session has ended (telemetry/Counters.ts)
      const counter = makeSessionCounter()
      yield* Effect.addFinalizer(() =>
        appendSessionCounts(countersDirectory(env.config.configDirectory), counter.finish(conn.stats, conn.peer.isLocal), (m) => env.log.error(m))
      )
      if (env.wrapTls === true && env.tls !== undefined) {
        const handshake = yield* Effect.either(conn.startTls(env.tls))
        if (Either.isLeft(handshake)) {
          env.log.notice(`TLS negotiation failed: ${conn.peer.clientHost}: ${handshake.left.message}`)
          yield* conn.close
          return
        }
      }
      const settings = sessionSettingsFrom(env.config, env.tls)
      const sessionDir = path.join(settings.stagingDir, "sync.", String(process.pid))
      yield* removeOrphanedStaging(path.join(settings.stagingDir, "sync."), env.log)
      const files = yield* FileSystem.FileSystem
      // (one left behind is removed by the next start, removeOrphanedStaging)
      yield* Effect.addFinalizer(() => Effect.ignore(files.remove(sessionDir, { recursive: true, force: true })))
      const backupSet = yield* makeBackupSet(env.backups, path.join(sessionDir, "pending"))
      const handlers = makeHandlers({
        backups: backupSet,
        naming: { defaultDomain: env.config.defaultDomain ?? "internal", deletedPrefix: env.config.deletedPrefix },
        log: env.log,
        idleCloseMs: IDLE_CLOSE_MS
      })
      const counted: typeof handlers = {
        ...handlers,
        apply: (cmd, emit) => Effect.suspend(() => ((totals.apply += 1), counter.command("apply", cmd.item.key), handlers.apply(cmd, emit))),
        get: (cmd, emit) => Effect.suspend(() => ((totals.get += 1), counter.command("get", GET_KIND[cmd._tag]), handlers.get(cmd, emit)))
      }
      // Close idle backups even while the client says nothing (docs/gaps.md G16).
      yield* Effect.forkScoped(
        Effect.repeat(backupSet.closeIdle(IDLE_CLOSE_MS), Schedule.spaced("30 seconds")).pipe(Effect.ignore)
      )
      yield* runSession({
        connection: counter.connection(conn),
        settings,
        auth: env.auth,
        handlers: counted,
        log: env.log,
        stop: env.stop,
        onLogin: (userid) => Effect.sync(() => ((totals.userid = userid), counter.loggedIn())),
        telemetry: telemetryOpener({
          configDirectory: env.config.configDirectory,
          ident: process.env["CYRUS_SERVICE"] ?? PROGRAM,
          bySessionId: env.config.telemetryBySessionId,
          sessionBase: env.config.syslogPrefix ?? env.config.serverName
        })
      })
    })
  )

/** The files whose change means a new version was installed (checked between connections). */
const programFiles = (): ReadonlyArray<string> => {
  const files = [fileURLToPath(import.meta.url)]
  const script = process.argv[1]
  if (script !== undefined && script !== "" && fs.existsSync(script)) files.unshift(path.resolve(script))
  return files
}

/** Why a run ended early: its configuration, its TLS or SASL setup, backups.db, or master's contract. */
type BackupdFailure = ConfigError | TlsSetupFailed | TlsRequired | UnsupportedPwcheckMethod | UnsupportedBackend | MasterServiceError

/** The one place a failed run becomes its exit code and its line on stderr. */
const exitFor = (e: BackupdFailure): readonly [number, string] => {
  switch (e._tag) {
    case "ConfigError":
    case "TlsSetupFailed":
    case "TlsRequired":
      return [EX_CONFIG, e.message]
    case "UnsupportedPwcheckMethod":
      return [EX_CONFIG, `sasl_pwcheck_method: ${e.method} is not supported; use saslauthd or alwaystrue`]
    case "UnsupportedBackend":
      return [EX_SOFTWARE, e.message]
    case "MasterServiceError":
      return [e.exitCode, e.message]
  }
}

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
  // master always sets both. Cyrus refuses to run without them even with -X; we let -X default
  // them (service = program name, id 0) so a session can be run by hand, and refuse otherwise.
  for (const name of ["CYRUS_SERVICE", "CYRUS_ID"]) {
    const value = process.env[name]
    if (!args.stdio && (value === undefined || value === "")) {
      process.stderr.write(`${PROGRAM}: could not getenv(${name}); exiting\n`)
      return Promise.resolve(EX_SOFTWARE)
    }
  }
  const service = process.env["CYRUS_SERVICE"] || PROGRAM
  const serviceId = process.env["CYRUS_ID"] || "0"

  // Until imapd.conf is read, lines go out under the service name and the default facility.
  const logToStderr = process.env["BACKUPD_LOG_STDERR"] === "1"
  const bootLog = makeServiceLog({
    ident: syslogIdent(process.env["CYRUS_SYSLOG_PREFIX"], service),
    facility: undefined,
    debug: false,
    stderr: logToStderr
  })

  const serve = (config: CyrusConfig, log: ServiceLog) =>
    Effect.gen(function* () {
      process.umask(config.umask)
      if (args.debugCommand) yield* runDebugCommand(config.debugCommand, process.argv[1] ?? PROGRAM, service, log.info)
      // Read once: a later change of the files cannot break a connection (see tlsOptions.ts).
      const tlsOptions = yield* loadTlsOptions(config).pipe(Effect.mapError((e) => new TlsSetupFailed({ reason: e.message })))
      if (args.tlsWrapped && tlsOptions === undefined) {
        yield* Effect.logError("Fatal error: imaps: required OpenSSL options not present")
        return yield* new TlsRequired()
      }
      const authSettings = authSettingsFrom(config, args)
      const stdioIsPipe = args.stdio && !stdinIsNetworkSocket()
      const auth = yield* makeAuthenticator(authSettings).pipe(
        Effect.catchAll((e) =>
          // A session on a pipe is pre-authenticated and never checks a password.
          stdioIsPipe
            ? Effect.succeed(makeAuthenticatorWith(authSettings, { check: () => Effect.succeed(saslFailure("NOUSER", "no password check configured")) }))
            : Effect.fail(e)
        )
      )
      // object storage: sealed chunks uploaded in the background (Uploader.ts); off = unchanged
      const uploader = yield* startUploader(config, yield* UserBackups, log)
      const backups = uploader.backups
      const signals = yield* Signals
      const env: SessionEnv = {
        config,
        auth,
        backups,
        log,
        stop: signals.stopRequested,
        tls: tlsOptions,
        wrapTls: args.tlsWrapped
      }
      yield* Effect.forkDaemon(
        Effect.flatMap(Deferred.await(signals.stopRequested), (why) =>
          why === "terminate" ? logNotice("graceful shutdown") : Effect.logInfo("hangup: exiting after this session")
        )
      )
      if (args.stdio) {
        yield* serveConnection(fromStdio(), env).pipe(Effect.ensuring(uploader.finish()))
        const reason = yield* signals.poll
        return reason._tag === "Some" && reason.value === "terminate" ? EX_TEMPFAIL : EX_OK
      }
      const lockPath = path.join(config.configDirectory, "socket", `${service}-${serviceId}.lock`)
      return yield* acceptLoop(
        { maxUses: args.maxUses, reuseTimeout: args.reuseTimeout, lockPath, programFiles: programFiles(), log: log.error },
        (socket: NetSocket) => serveConnection(fromSocket(socket), env)
      ).pipe(Effect.ensuring(uploader.finish()))
    }).pipe(withServiceLog(log, { debug: config.debug }))

  const program = Effect.gen(function* () {
    const config = yield* Config
    const log = makeServiceLog({
      ident: syslogIdent(process.env["CYRUS_SYSLOG_PREFIX"] ?? config.syslogPrefix, service),
      facility: config.syslogFacility,
      debug: config.debug,
      // BACKUPD_LOG_STDERR=1: log to stderr even when a syslog socket exists (containers, tests).
      stderr: logToStderr
    })
    return yield* serve(config, log)
  })

  const configLayer = Config.layer({ path: args.configFile, service })
  const layers = Layer.mergeAll(
    configLayer,
    Signals.live,
    userBackupsLayer(writerExtras).pipe(Layer.provide(configLayer))
  ).pipe(Layer.provideMerge(NodeFileSystem.layer))

  // The service log is the Effect Logger of the whole program, layers included: no
  // `Effect.log*` can reach stdout, which under -X is the csync stream.
  return Effect.runPromiseExit(program.pipe(Effect.provide(layers), withServiceLog(bootLog))).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") {
      const [code, line] = exitFor(failure.value)
      process.stderr.write(`${PROGRAM}: ${line}\n`)
      return code
    }
    process.stderr.write(`${PROGRAM}: internal error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
    return EX_SOFTWARE
  })
}
