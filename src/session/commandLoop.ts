/**
 * One csync session: banner, then the command loop, until EXIT, end of input, the
 * inactivity timeout or a stop signal. The flow is a pipeline pulled one command at a time:
 *
 *   connection bytes → ByteReader → command words / dlist items → Command (typed)
 *     → handler → reply lines → connection
 *
 * A command is read completely (its literals and message files staged) before it is handled,
 * and the next one is only read once the answer was flushed, so back-pressure holds end to end.
 * Open user backups belong to the session's BackupSet; whatever way the session ends, the
 * set's Scope closes them (sealing chunks, releasing locks).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Cause, Deferred, Duration, Effect, Either, Option, Stream } from "effect"
import type * as tls from "node:tls"
import type { AuthenticatorShape, AuthStep } from "../auth/index.js"
import { ByteReader, ByteSourceError, EOF, byteClass, type ByteSource, type TokenTooLong } from "../protocol/ByteReader.js"
import { isAtom } from "../protocol/dlist/astring.js"
import type { DlistParseError } from "../protocol/dlist/errors.js"
import { parseItem, type ParseOptions } from "../protocol/dlist/parse.js"
import type { Item } from "../protocol/dlist/value.js"
import type { Connection } from "../transport/Connection.js"
import type { StopReason } from "./StopReason.js"
import { replyFor } from "./answers.js"
import { asCommandName, eatLine, endsLine, normaliseCommandWord, readWord } from "./commandReader.js"
import { Reply, type CommandName } from "./replies.js"
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

/** What the command loop hands APPLY and GET to (see handlers.ts). */
export interface CommandHandlers {
  /** Handles one APPLY/GET; writes untagged lines through `emit` and returns the final line. */
  readonly apply: (item: Item, emit: (line: string) => Effect.Effect<void>) => Effect.Effect<string, never, FileSystem.FileSystem>
  readonly get: (item: Item, emit: (line: string) => Effect.Effect<void>) => Effect.Effect<string, never, FileSystem.FileSystem>
  /** RESTART: close every open backup. */
  readonly restart: Effect.Effect<void>
  /** Between commands: close backups idle for too long. */
  readonly closeIdle: Effect.Effect<void>
  /** After each command: forget the command's staged files that nothing kept. */
  readonly afterCommand: Effect.Effect<void>
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
  userid: string | undefined
  isAdmin: boolean
  compressed: boolean
  tlsDone: boolean
}

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
    const state: State = { userid: undefined, isAdmin: false, compressed: false, tlsDone: conn.tlsActive }
    const timeoutMs = Math.max(3000, Duration.toMillis(settings.syncTimeout))

    const source: ByteSource = conn.read.pipe(
      Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: () => new ByteSourceError({ cause: "idle for too long" }) }),
      Effect.map(Option.getOrNull),
      Effect.mapError((e) => (e instanceof ByteSourceError ? e : new ByteSourceError({ cause: e.message })))
    )
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

    /** Answers BAD/NO for a malformed line and skips the rest of it. */
    const reject = (line: string, last: number) => Effect.zipRight(send(line), eatLine(reader, last))

    /** The end-of-line check after the last argument of `cmd`. */
    const finishLine = (cmd: CommandName, c: number) =>
      Effect.flatMap(endsLine(reader, c), (r) =>
        r.ok ? Effect.succeed(true) : Effect.as(reject(Reply.extraArguments(cmd), r.last), false)
      )

    const doAuthenticate = (c: number): Effect.Effect<Outcome, ByteSourceError | TokenTooLong> =>
      Effect.gen(function* () {
        if (c !== 0x20) {
          yield* reject(Reply.missingArgument("Authenticate"), c)
          return CONTINUE
        }
        const mech = yield* readWord(reader, settings.maxword)
        if (!isAtom(mech.token)) {
          yield* reject(Reply.invalidMechanism, mech.terminator)
          return CONTINUE
        }
        let last = mech.terminator
        let initial: string | undefined
        if (last === 0x20) {
          const init = yield* readWord(reader, settings.maxword)
          if (init.terminator === EOF) {
            yield* send(Reply.missingArgument("Authenticate"))
            return CONTINUE
          }
          initial = init.token
          last = init.terminator
        }
        if (!(yield* finishLine("Authenticate", last))) return CONTINUE
        if (state.userid !== undefined) {
          yield* send(Reply.alreadyAuthenticated)
          return CONTINUE
        }
        let step: AuthStep = yield* auth.start(saslConnection(), mech.token, initial)
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
        state.isAdmin = true
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

    const doCompress = (c: number): Effect.Effect<Outcome, ByteSourceError | TokenTooLong> =>
      Effect.gen(function* () {
        if (c !== 0x20) {
          yield* reject(Reply.missingArgument("Compress"), c)
          return CONTINUE
        }
        const alg = yield* readWord(reader, settings.maxword)
        if (!(yield* finishLine("Compress", alg.terminator))) return CONTINUE
        if (state.compressed) {
          yield* send(Reply.compressAlready(alg.token))
        } else if (alg.token.toUpperCase() !== "DEFLATE") {
          yield* send(Reply.compressUnknown(alg.token))
        } else {
          yield* send(Reply.compressActive(alg.token))
          yield* flush
          yield* conn.startCompression(reader.takeBuffered())
          state.compressed = true
        }
        return CONTINUE
      })

    const doStarttls = (c: number): Effect.Effect<Outcome, ByteSourceError> =>
      Effect.gen(function* () {
        if (!(yield* finishLine("Starttls", c))) return CONTINUE
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
        const ok = yield* Effect.either(conn.startTls(settings.tls!))
        if (Either.isLeft(ok)) {
          log.notice(`STARTTLS failed: ${conn.peer.clientHost}: ${ok.left.message}`)
          return EXIT
        }
        state.tlsDone = true
        yield* banner.pipe(Effect.orElse(() => Effect.void))
        return CONTINUE
      })

    const doItem = (cmd: "Apply" | "Get", c: number): Effect.Effect<Outcome, ByteSourceError | DlistParseError, FileSystem.FileSystem> =>
      Effect.gen(function* () {
        if (c !== 0x20) {
          yield* reject(Reply.missingArgument(cmd), c)
          return CONTINUE
        }
        const parsed = yield* Effect.either(parseItem(reader, parseOptions))
        if (Either.isLeft(parsed)) {
          const e = parsed.left
          if (e._tag === "ByteSourceError") return yield* Effect.fail(e)
          if (e._tag === "StagingFailed") {
            // The line was fine and has been read to its end: a server-side failure, a NO.
            if (yield* finishLine(cmd, e.terminator)) yield* send(replyFor(e, `${cmd.toUpperCase()}: staging ${e.path}`, log))
            return CONTINUE
          }
          if (e.reason === "quoted string too long") return yield* Effect.fail(e)
          log.notice(`IOERROR: bad ${cmd.toUpperCase()} line: ${e.reason}`)
          yield* reject(Reply.missingArgument(cmd), 0)
          return CONTINUE
        }
        if (!(yield* finishLine(cmd, parsed.right.terminator))) return CONTINUE
        const emit = (line: string) => send(line)
        const final = cmd === "Apply" ? yield* handlers.apply(parsed.right.item, emit) : yield* handlers.get(parsed.right.item, emit)
        yield* send(final)
        return CONTINUE
      }).pipe(Effect.ensuring(handlers.afterCommand))

    const oneCommand: Effect.Effect<Outcome, ByteSourceError | TokenTooLong | DlistParseError, FileSystem.FileSystem> = Effect.gen(function* () {
      yield* flush
      yield* handlers.closeIdle
      // Between commands, a stop request ends the session before anything new is read.
      // (SIGHUP only ends the process after this session: the session itself goes on.)
      const stopSoFar = yield* Deferred.poll(deps.stop)
      if (Option.isSome(stopSoFar) && (yield* stopSoFar.value) === "terminate") return EXIT
      if (reader.buffered === 0 && Option.isNone(stopSoFar)) {
        const first = yield* Effect.raceFirst(
          Effect.map(reader.peekByte, (b) => ({ _tag: "Byte" as const, b })),
          Effect.map(Deferred.await(deps.stop), (why) => ({ _tag: "Stop" as const, why }))
        )
        if (first._tag === "Stop" && first.why === "terminate") return EXIT
      }
      const word = yield* readWord(reader, settings.maxword)
      if (word.token.length === 0) {
        if (word.terminator === EOF) return EXIT
        yield* reject(Reply.nullCommand, word.terminator)
        return CONTINUE
      }
      const name = normaliseCommandWord(word.token)
      const cmd = asCommandName(name)
      const c = word.terminator
      if (state.userid !== undefined && !state.isAdmin) {
        yield* reject(Reply.permissionDenied, c)
        return CONTINUE
      }
      switch (cmd) {
        case "Authenticate":
          return yield* doAuthenticate(c)
        case "Compress":
          return yield* doCompress(c)
        case "Noop":
          if (yield* finishLine("Noop", c)) yield* send(Reply.noop)
          return CONTINUE
        case "Restart":
          if (yield* finishLine("Restart", c)) {
            yield* handlers.restart
            yield* send(Reply.restart)
          }
          return CONTINUE
        case "Exit":
          if (yield* finishLine("Exit", c)) {
            yield* send(Reply.exit)
            return EXIT
          }
          return CONTINUE
        case "Starttls":
          if (settings.tls === undefined) break
          return yield* doStarttls(c)
        case "Apply":
        case "Get":
          if (state.userid === undefined) {
            yield* reject(Reply.authenticateFirst, c)
            return CONTINUE
          }
          return yield* doItem(cmd, c)
        case undefined:
          if (state.userid === undefined && (name.startsWith("A") || name.startsWith("G"))) {
            yield* reject(Reply.authenticateFirst, c)
            return CONTINUE
          }
      }
      log.error(`IOERROR: received bad command: command=<${word.token}>`)
      yield* reject(Reply.unrecognized, c)
      return CONTINUE
    })

    if (conn.peer.isLocal) {
      state.userid = auth.unixSocketIdentity.userid
      state.isAdmin = true
    }
    yield* Stream.repeatEffectOption(
      oneCommand.pipe(
        Effect.mapError(Option.some),
        Effect.flatMap((o) => (o === "exit" ? Effect.fail(Option.none()) : Effect.void))
      )
    ).pipe(
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
