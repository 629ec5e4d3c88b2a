/**
 * One csync session: banner, then the commands, until EXIT, end of input, the inactivity
 * timeout or a stop signal. The session is a stream of commands, pulled one at a time, each
 * fed to the handler of its tag:
 *
 *   connection bytes → ByteReader → command line → Command (commands.ts, readCommand)
 *     → handler of its tag → reply lines → connection
 *
 * A command is read completely (its literals and message files staged) before it is handled,
 * and the next one is only read once the answer was flushed, so back-pressure holds end to end.
 * Open user backups belong to the session's BackupSet; whatever way the session ends, the
 * set's Scope closes them (sealing chunks, releasing locks); EXIT closes them before it is
 * answered, so a client that saw `OK Finished` finds every backup sealed and unlocked.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Cause, Data, Deferred, Duration, Effect, Either, Option, Stream } from "effect"
import type * as tls from "node:tls"
import type { AuthenticatorShape, AuthStep } from "../auth/index.js"
import { ByteReader, ByteSourceError, EOF, byteClass, type ByteSource, type TokenTooLong } from "../protocol/ByteReader.js"
import type { DlistParseError } from "../protocol/dlist/errors.js"
import type { ParseOptions } from "../protocol/dlist/parse.js"
import { ConnectionError, IDLE_TIMEOUT_MESSAGE, type Connection } from "../transport/Connection.js"
import type { StopReason } from "./StopReason.js"
import { toReply } from "./answers.js"
import { eatLine, readCommand, type ItemRefused, type LineRejected } from "./commandReader.js"
import { stagedFiles, type ApplyCommand, type Authenticate, type Command, type Compress, type GetCommand } from "./commands.js"
import type { CommandHandlers } from "./handlers.js"
import { Reply } from "./replies.js"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import { tapConnection, type TappedConnection, type TelemetryLog } from "../telemetry/TelemetryLog.js"

export interface SessionSettings {
  /** `servername`, for the banner. */
  readonly servername: string
  /** The version text of the banner. */
  readonly version: string
  readonly maxword: number
  readonly maxquoted: number
  readonly literalMinus: boolean
  /** `sync_timeout`: a silent client is dropped after this long (at least 3 s). */
  readonly syncTimeout: Duration.Duration
  /** TLS server options when `tls_server_cert`/`tls_server_key` are set, else undefined. */
  readonly tls: tls.TlsOptions | undefined
  /** The session's staging directory base (`backup_staging_path`). */
  readonly stagingDir: string
}

export interface SessionDeps {
  readonly connection: Connection
  readonly settings: SessionSettings
  readonly auth: AuthenticatorShape
  readonly handlers: CommandHandlers
  readonly log: ServiceLog
  /** Completes when the process was asked to stop; checked between commands. */
  readonly stop: Deferred.Deferred<StopReason>
  /** Called after a successful AUTHENTICATE (telemetry starts there). */
  readonly onLogin?: (userid: string) => Effect.Effect<void>
  /** Opens the telemetry log of a user who just authenticated (None: no logging wanted). */
  readonly telemetry?: (userid: string) => Effect.Effect<Option.Option<TelemetryLog>>
}

type Outcome = "continue" | "exit"
const CONTINUE: Outcome = "continue"
const EXIT: Outcome = "exit"

interface State {
  /** Who authenticated (always an admin: others are refused, docs/gaps.md G12). */
  userid: string | undefined
  compressed: boolean
  tlsDone: boolean
}

/** What one pull of the session's stream yields: a command, or a line answered without one. */
type Pulled = Command | LineRejected | ItemRefused

/** The process asked the session to stop: it ends between commands, without an answer. */
class Stopped extends Data.TaggedError("Stopped")<{}> {}

const CRLF = "\r\n"

/** Runs one session to its end. Never fails: every problem becomes an answer or the end. */
export const runSession = (deps: SessionDeps): Effect.Effect<void, never, FileSystem.FileSystem> => {
  // Everything goes through the tap, so telemetry sees the session's plaintext both ways.
  const tapped = tapConnection(deps.connection)
  return Effect.ensuring(sessionLoop(deps, tapped), Effect.sync(() => tapped.log()?.close()))
}

const sessionLoop = (deps: SessionDeps, tapped: TappedConnection): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const { settings, auth, handlers, log } = deps
    const conn = tapped.connection
    // With `-s` the connection is already TLS when the session starts.
    const state: State = { userid: undefined, compressed: false, tlsDone: conn.tlsActive }
    const timeoutMs = Math.max(3000, Duration.toMillis(settings.syncTimeout))

    // A transport that times its own waits arms a timer only when a read waits; else every read
    // is raced against one (a fiber and a timer per chunk).
    const timed =
      conn.setIdleTimeout !== undefined
        ? (conn.setIdleTimeout(timeoutMs), conn.read)
        : conn.read.pipe(
            Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: () => new ConnectionError({ message: IDLE_TIMEOUT_MESSAGE }) })
          )
    const source: ByteSource = Effect.mapBoth(timed, {
      onFailure: (e) => new ByteSourceError({ cause: e.message }),
      onSuccess: Option.getOrNull
    })
    const reader = ByteReader.make(source)
    const send = (line: string) => conn.write(line + CRLF)
    const flush = conn.flush.pipe(Effect.mapError((e) => new ByteSourceError({ cause: e.message })))
    const parseOptions: ParseOptions = {
      maxQuoted: settings.maxquoted,
      literalMinus: settings.literalMinus,
      files: { _tag: "Stage", stagingDir: settings.stagingDir }
    }

    const saslConnection = () => ({
      externalSsf: conn.tlsActive ? Math.max(auth.settings.externalSsf, 256) : auth.settings.externalSsf,
      externalAuthId: conn.peerCertificateName
    })

    const banner = Effect.gen(function* () {
      if (state.userid === undefined) {
        const sasl = auth.bannerLine(saslConnection())
        if (sasl !== undefined) yield* send(sasl)
        if (settings.tls !== undefined && !state.tlsDone) yield* send("* STARTTLS")
        if (!state.compressed && !state.tlsDone) yield* send("* COMPRESS DEFLATE")
      }
      yield* send(`* OK ${settings.servername} Cyrus backup server ${settings.version}`)
      yield* conn.flush
    })

    // ---- one handler per tag ---------------------------------------------------------------

    const lineRejected = Effect.fn("csync.LineRejected")(function* (r: LineRejected) {
      yield* send(r.reply)
      yield* eatLine(reader, r.last)
      return CONTINUE
    })

    const itemRefused = Effect.fn("csync.ItemRefused")(function* (r: ItemRefused) {
      yield* send(yield* toReply(Effect.fail(r.failure), r.context, log))
      return CONTINUE
    }, (effect, r) => Effect.ensuring(effect, handlers.afterCommand(r.staged)))

    const authenticate = Effect.fn("csync.Authenticate")(function* (cmd: typeof Authenticate.Type) {
      if (state.userid !== undefined) {
        yield* send(Reply.alreadyAuthenticated)
        return CONTINUE
      }
      let step: AuthStep = yield* auth.start(saslConnection(), cmd.mechanism, cmd.initial)
      while (step._tag === "Challenge") {
        yield* send(step.line)
        yield* flush
        const line = yield* readResponseLine(reader)
        if (line === undefined) {
          yield* send(Reply.readingResponse(""))
          return CONTINUE
        }
        step = yield* step.respond(line)
      }
      if (step._tag === "Failure") {
        if (step.kind === "Rejected") log.notice(`badlogin: ${conn.peer.clientHost} ${step.mechanism} [${step.detail}]`)
        yield* send(step.reply)
        return CONTINUE
      }
      if (!step.isAdmin) {
        // Stricter than 3.6.1 (docs/gaps.md G12): a non-admin is refused at once instead of
        // being let in and then denied every command, EXIT included.
        log.notice(`badlogin: ${conn.peer.clientHost} ${step.mechanism} [${step.userid} is not an admin]`)
        yield* send(Reply.permissionDenied)
        return CONTINUE
      }
      state.userid = step.userid
      log.notice(`login: ${conn.peer.clientHost} ${step.userid} ${step.mechanism}${conn.tlsActive ? "+TLS" : ""} User logged in`)
      yield* send(step.reply)
      // The answer goes out before telemetry starts: the log begins with what follows it.
      yield* flush
      if (deps.telemetry) {
        const telemetry = yield* deps.telemetry(step.userid)
        if (Option.isSome(telemetry)) tapped.attach(telemetry.value)
      }
      if (deps.onLogin) yield* deps.onLogin(step.userid)
      return CONTINUE
    })

    const compress = Effect.fn("csync.Compress")(function* (cmd: typeof Compress.Type) {
      if (state.compressed) {
        yield* send(Reply.compressAlready(cmd.algorithm))
      } else if (cmd.algorithm.toUpperCase() !== "DEFLATE") {
        yield* send(Reply.compressUnknown(cmd.algorithm))
      } else {
        yield* send(Reply.compressActive(cmd.algorithm))
        yield* flush
        yield* conn.startCompression(reader.takeBuffered())
        state.compressed = true
      }
      return CONTINUE
    })

    const starttls = Effect.fn("csync.Starttls")(function* () {
      // readCommand makes a Starttls only when TLS is configured
      const options = settings.tls
      if (options === undefined) return CONTINUE
      if (state.tlsDone) {
        yield* send(Reply.starttlsAgain)
        return CONTINUE
      }
      yield* send(Reply.starttlsBegin)
      yield* conn.flush.pipe(Effect.orElse(() => Effect.void))
      if (reader.buffered > 0) {
        // A client that pipelines past STARTTLS is attacking or broken: nothing it sent
        // before the handshake may be taken as protected.
        yield* send(Reply.starttlsFailed)
        return EXIT
      }
      const ok = yield* Effect.either(conn.startTls(options))
      if (Either.isLeft(ok)) {
        log.notice(`STARTTLS failed: ${conn.peer.clientHost}: ${ok.left.message}`)
        return EXIT
      }
      state.tlsDone = true
      yield* banner.pipe(Effect.orElse(() => Effect.void))
      return CONTINUE
    })

    const noop = Effect.fn("csync.Noop")(function* () {
      yield* send(Reply.noop)
      return CONTINUE
    })

    const restart = Effect.fn("csync.Restart")(function* () {
      yield* handlers.closeAll
      yield* send(Reply.restart)
      return CONTINUE
    })

    const exit = Effect.fn("csync.Exit")(function* () {
      // sealed and unlocked before the answer: what the client sees next may rely on it
      yield* handlers.closeAll
      yield* send(Reply.exit)
      return EXIT
    })

    const apply = Effect.fn("csync.Apply")(function* (cmd: ApplyCommand) {
      yield* send(yield* handlers.apply(cmd, send))
      return CONTINUE
    }, (effect, cmd) => Effect.ensuring(effect, handlers.afterCommand(stagedFiles(cmd.item))))

    const get = Effect.fn("csync.Get")(function* (cmd: GetCommand) {
      yield* send(yield* handlers.get(cmd, send))
      return CONTINUE
    })

    const handle = (p: Pulled): Effect.Effect<Outcome, ByteSourceError | TokenTooLong, FileSystem.FileSystem> => {
      switch (p._tag) {
        case "LineRejected":
          return lineRejected(p)
        case "ItemRefused":
          return itemRefused(p)
        case "Authenticate":
          return authenticate(p)
        case "Compress":
          return compress(p)
        case "Starttls":
          return starttls()
        case "Noop":
          return noop()
        case "Restart":
          return restart()
        case "Exit":
          return exit()
        case "ApplyMailbox":
        case "ApplyUnmailbox":
        case "ApplyReserve":
        case "ApplyMessage":
        case "ApplyRename":
        case "ApplyUserItem":
        case "ApplyUnuser":
        case "ApplyIgnored":
          return apply(p)
        case "GetUser":
        case "GetMeta":
        case "GetMailboxes":
        case "GetFullMailbox":
        case "GetUniqueids":
          return get(p)
      }
    }

    // ---- the stream of commands ------------------------------------------------------------

    /** Flushes, closes idle backups, and reads the next command unless a stop came first. */
    const nextCommand = Effect.gen(function* () {
      yield* flush
      yield* handlers.closeIdle
      // Between commands, a stop request ends the session before anything new is read.
      // (SIGHUP only ends the process after this session: the session itself goes on.)
      const stopSoFar = yield* Deferred.poll(deps.stop)
      if (Option.isSome(stopSoFar) && (yield* stopSoFar.value) === "terminate") return yield* new Stopped()
      if (reader.buffered === 0 && Option.isNone(stopSoFar)) {
        const first = yield* Effect.raceFirst(
          Effect.map(reader.peekByte, (b) => ({ _tag: "Byte" as const, b })),
          Effect.map(Deferred.await(deps.stop), (why) => ({ _tag: "Stop" as const, why }))
        )
        if (first._tag === "Stop" && first.why === "terminate") return yield* new Stopped()
      }
      return yield* readCommand({
        reader,
        maxword: settings.maxword,
        parse: parseOptions,
        starttls: settings.tls !== undefined,
        authenticated: () => state.userid !== undefined,
        log
      })
    }).pipe(
      Effect.catchTags({ LineRejected: (r) => Effect.succeed<Pulled>(r), ItemRefused: (r) => Effect.succeed<Pulled>(r) }),
      // end of input and a stop end the stream; the rest are fatal
      Effect.mapError((e) => (e._tag === "EndOfInput" || e._tag === "Stopped" ? Option.none() : Option.some(e)))
    )

    if (conn.peer.isLocal) state.userid = auth.unixSocketIdentity.userid
    yield* Stream.repeatEffectOption(nextCommand).pipe(
      Stream.mapEffect(handle),
      Stream.takeUntil((o) => o === EXIT),
      Stream.runDrain,
      (loop) => Effect.zipRight(banner.pipe(Effect.mapError((e) => new ByteSourceError({ cause: e.message }))), loop),
      Effect.catchAll((e) => fatalOrEnd(e, send, conn, log)),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => log.error(`session error: ${Cause.pretty(cause)}`))
      )
    )
    yield* conn.flush.pipe(Effect.ignore)
    yield* conn.close
  })

/** A line of a SASL response: up to LF, CR LF stripped; undefined at end of input. */
const readResponseLine = (reader: ByteReader): Effect.Effect<string | undefined, ByteSourceError | TokenTooLong> =>
  Effect.map(reader.readToken(LF_ONLY, 21848), (t) => {
    if (t.terminator === EOF && t.token.length === 0) return undefined
    return t.token.endsWith("\r") ? t.token.slice(0, -1) : t.token
  })

const LF_ONLY = byteClass(0x0a)

/** How reading problems end a session: some are Cyrus's `fatal()`, the rest end silently. */
const fatalOrEnd = (
  e: ByteSourceError | TokenTooLong | DlistParseError,
  send: (line: string) => Effect.Effect<void>,
  conn: Connection,
  log: ServiceLog
): Effect.Effect<void> => {
  if (e._tag === "TokenTooLong") {
    log.error("Fatal error: word too long")
    return Effect.zipRight(send(Reply.fatal("word too long")), conn.flush.pipe(Effect.ignore))
  }
  if (e._tag === "DlistParseError") {
    log.error(`Fatal error: ${e.reason}`)
    return Effect.zipRight(send(Reply.fatal(e.reason === "quoted string too long" ? "quoted value too long" : e.reason)), conn.flush.pipe(Effect.ignore))
  }
  const why = String(e.cause)
  if (why !== "connection closed") log.notice(`session ended: ${why}`)
  return Effect.void
}
