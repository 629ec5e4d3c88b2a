/**
 * Reading the command layer of csync from the byte reader: command words, line ends, and
 * skipping the rest of a bad line — with the same byte-level rules as Cyrus's `getword`,
 * `eatline` and its end-of-line check (docs/architecture.md, "Command lines") — and, on those,
 * `readCommand`: one whole command line read into a typed `Command` (commands.ts), or the
 * reason the line gets no command.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Data, Effect, Either } from "effect"
import { ByteReader, EOF, WORD_STOP, byteClass, type ByteSourceError, type TokenTooLong, type Token } from "../protocol/ByteReader.js"
import { isAtom } from "../protocol/dlist/astring.js"
import type { DlistParseError, StagingFailed } from "../protocol/dlist/errors.js"
import { parseItem, type ParseOptions } from "../protocol/dlist/parse.js"
import type { File } from "../protocol/dlist/value.js"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import type { Refused } from "./answers.js"
import { Authenticate, Compress, Exit, Noop, Restart, Starttls, decodeApply, decodeGet, stagedFiles, type Command } from "./commands.js"
import { Reply, type CommandName } from "./replies.js"

const CR = 0x0d
const LF = 0x0a

/** Cyrus's spelling of a command word: first byte upper case, the rest lower case (ASCII). */
export const normaliseCommandWord = (word: string): string =>
  word.length === 0 ? word : word[0]!.replace(/[a-z]/, (c) => c.toUpperCase()) + word.slice(1).replace(/[A-Z]/g, (c) => c.toLowerCase())

const KNOWN: ReadonlyMap<string, CommandName> = new Map(
  (["Authenticate", "Apply", "Compress", "Exit", "Get", "Noop", "Restart", "Starttls"] as const).map((n) => [n, n])
)
/** The command a normalised word names, if any. */
export const asCommandName = (word: string): CommandName | undefined => KNOWN.get(word)

/** `getword`: bytes up to whitespace, `(`, `)` or `"`; the stop byte is consumed. */
export const readWord = (reader: ByteReader, maxword: number): Effect.Effect<Token, ByteSourceError | TokenTooLong> =>
  reader.readToken(WORD_STOP, maxword)

/**
 * The end-of-line rule: `c` is the byte that ended the last argument. CR must be followed by
 * LF; a bare LF is accepted; anything else means extra arguments. Returns whether the line
 * ended properly (when it did not, the caller answers BAD and eats the line).
 */
export const endsLine = (reader: ByteReader, c: number): Effect.Effect<{ readonly ok: boolean; readonly last: number }, ByteSourceError> => {
  if (c === LF) return Effect.succeed({ ok: true, last: c })
  if (c !== CR) return Effect.succeed({ ok: false, last: c })
  return Effect.map(reader.readByte, (next) => ({ ok: next === LF, last: next }))
}

const EAT_STOP = byteClass(LF, "{")

/**
 * `eatline`: discard input through the next LF. `c` is the last byte already read; if it
 * was LF nothing more is read. Literals `{n}` / `{n+}` followed by CRLF have their n bytes
 * skipped (so a literal's content can't end the line early); `%{...}` file literals are not
 * understood, as in Cyrus.
 */
export const eatLine = (reader: ByteReader, c: number): Effect.Effect<void, ByteSourceError> => {
  if (c === LF || c === EOF) return Effect.void
  const loop: Effect.Effect<void, ByteSourceError> = Effect.gen(function* () {
    while (true) {
      const t = yield* reader.readToken(EAT_STOP, Number.MAX_SAFE_INTEGER).pipe(Effect.orDieWith(() => "unbounded token cannot be too long"))
      if (t.terminator === LF || t.terminator === EOF) return
      // After `{`: digits, optional `+`, `}`, CR LF, then the literal's bytes.
      const lit = yield* reader.readToken(byteClass("}", LF), 32).pipe(Effect.option)
      if (lit._tag === "None") continue
      if (lit.value.terminator === LF || lit.value.terminator === EOF) return
      const m = /^(\d+)\+?$/.exec(lit.value.token)
      if (m === null) continue
      let b = yield* reader.readByte
      if (b === CR) b = yield* reader.readByte
      if (b !== LF) {
        if (b === EOF) return
        continue
      }
      const n = Number(m[1])
      const skipped = yield* reader.readIntoSync(n, () => {}).pipe(Effect.either)
      if (skipped._tag === "Left") return
    }
  })
  return loop
}

const SP = 0x20

/**
 * A line answered without a command: `reply` (a BAD or NO decided by the line itself) is
 * written, then the rest of the line is skipped from `last`, the last byte read.
 */
export class LineRejected extends Data.TaggedError("LineRejected")<{ readonly reply: string; readonly last: number }> {}

/**
 * An APPLY or GET line read to its end that cannot run: its item does not decode, or a message
 * in it could not be staged. Answered like a failed command (answers.ts, `toReply`); `staged`
 * are the files it brought, removed after the answer.
 */
export class ItemRefused extends Data.TaggedError("ItemRefused")<{
  readonly context: string
  readonly failure: Refused | StagingFailed
  readonly staged: ReadonlyArray<File>
}> {}

/** The input ended where a command word would begin. */
export class EndOfInput extends Data.TaggedError("EndOfInput")<{}> {}

export type ReadCommandError = LineRejected | ItemRefused | EndOfInput | ByteSourceError | TokenTooLong | DlistParseError

export interface ReadCommandOptions {
  readonly reader: ByteReader
  readonly maxword: number
  readonly parse: ParseOptions
  /** Whether STARTTLS is a command here (TLS configured); else it is an unknown word. */
  readonly starttls: boolean
  /** Whether the session is authenticated (APPLY and GET need it). */
  readonly authenticated: () => boolean
  readonly log: ServiceLog
}

/**
 * Reads one command line. Arguments are checked in the order Cyrus's `cmdloop` checks them, so
 * a malformed line gets the same BAD as from Cyrus; the byte-level rules are the functions above.
 */
export const readCommand = (o: ReadCommandOptions): Effect.Effect<Command, ReadCommandError, FileSystem.FileSystem> => {
  const { reader } = o
  const reject = (reply: string, last: number) => Effect.fail(new LineRejected({ reply, last }))
  /** The end-of-line check after the last argument of `cmd`. */
  const finishLine = (cmd: CommandName, c: number) =>
    Effect.flatMap(endsLine(reader, c), (r) => (r.ok ? Effect.void : reject(Reply.extraArguments(cmd), r.last)))

  const authenticate = (c: number) =>
    Effect.gen(function* () {
      if (c !== SP) return yield* reject(Reply.missingArgument("Authenticate"), c)
      const mech = yield* readWord(reader, o.maxword)
      if (!isAtom(mech.token)) return yield* reject(Reply.invalidMechanism, mech.terminator)
      let last = mech.terminator
      let initial: string | undefined
      if (last === SP) {
        const init = yield* readWord(reader, o.maxword)
        if (init.terminator === EOF) return yield* reject(Reply.missingArgument("Authenticate"), EOF)
        initial = init.token
        last = init.terminator
      }
      yield* finishLine("Authenticate", last)
      return Authenticate.make(initial === undefined ? { mechanism: mech.token } : { mechanism: mech.token, initial })
    })

  const compress = (c: number) =>
    Effect.gen(function* () {
      if (c !== SP) return yield* reject(Reply.missingArgument("Compress"), c)
      const alg = yield* readWord(reader, o.maxword)
      yield* finishLine("Compress", alg.terminator)
      return Compress.make({ algorithm: alg.token })
    })

  const applyOrGet = (cmd: "Apply" | "Get", c: number) =>
    Effect.gen(function* () {
      if (c !== SP) return yield* reject(Reply.missingArgument(cmd), c)
      const parsed = yield* Effect.either(parseItem(reader, o.parse))
      const verb = cmd.toUpperCase()
      if (Either.isLeft(parsed)) {
        const e = parsed.left
        if (e._tag === "ByteSourceError") return yield* e
        if (e._tag === "StagingFailed") {
          // The line was fine and has been read to its end: a server-side failure, a NO.
          yield* finishLine(cmd, e.terminator)
          return yield* new ItemRefused({ context: `${verb}: staging ${e.path}`, failure: e, staged: [] })
        }
        if (e.reason === "quoted string too long") return yield* e
        o.log.notice(`IOERROR: bad ${verb} line: ${e.reason}`)
        return yield* reject(Reply.missingArgument(cmd), 0)
      }
      const { item, terminator } = parsed.right
      yield* finishLine(cmd, terminator)
      const decoded: Either.Either<Command, Refused> = cmd === "Apply" ? decodeApply(item) : decodeGet(item)
      if (Either.isLeft(decoded)) {
        return yield* new ItemRefused({ context: `${verb} ${item.key}`, failure: decoded.left, staged: cmd === "Apply" ? stagedFiles(item) : [] })
      }
      return decoded.right
    })

  return Effect.gen(function* () {
    const word = yield* readWord(reader, o.maxword)
    const c = word.terminator
    if (word.token.length === 0) return yield* c === EOF ? new EndOfInput() : reject(Reply.nullCommand, c)
    const name = normaliseCommandWord(word.token)
    const cmd = asCommandName(name)
    switch (cmd) {
      case "Authenticate":
        return yield* authenticate(c)
      case "Compress":
        return yield* compress(c)
      case "Noop":
        yield* finishLine("Noop", c)
        return Noop.make({})
      case "Restart":
        yield* finishLine("Restart", c)
        return Restart.make({})
      case "Exit":
        yield* finishLine("Exit", c)
        return Exit.make({})
      case "Starttls":
        if (!o.starttls) break
        yield* finishLine("Starttls", c)
        return Starttls.make({})
      case "Apply":
      case "Get":
        if (!o.authenticated()) return yield* reject(Reply.authenticateFirst, c)
        return yield* applyOrGet(cmd, c)
      case undefined:
        if (!o.authenticated() && (name.startsWith("A") || name.startsWith("G"))) return yield* reject(Reply.authenticateFirst, c)
    }
    o.log.error(`IOERROR: received bad command: command=<${word.token}>`)
    return yield* reject(Reply.unrecognized, c)
  })
}
