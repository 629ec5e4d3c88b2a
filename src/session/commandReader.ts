/**
 * Reading the command layer of csync from the byte reader: command words, line ends, and
 * skipping the rest of a bad line — with the same byte-level rules as Cyrus's `getword`,
 * `eatline` and its end-of-line check (docs/architecture.md, "Command lines").
 */
import { Effect } from "effect"
import { ByteReader, EOF, WORD_STOP, byteClass, type ByteSourceError, type TokenTooLong, type Token } from "../protocol/ByteReader.js"
import type { CommandName } from "./replies.js"

const CR = 0x0d
const LF = 0x0a

/** Cyrus's spelling of a command word: first byte upper case, the rest lower case (ASCII). */
export const normaliseCommandWord = (word: string): string =>
  word.length === 0 ? word : word[0]!.replace(/[a-z]/, (c) => c.toUpperCase()) + word.slice(1).replace(/[A-Z]/g, (c) => c.toLowerCase())

const KNOWN: ReadonlySet<string> = new Set<CommandName>(["Authenticate", "Apply", "Compress", "Exit", "Get", "Noop", "Restart", "Starttls"])
export const asCommandName = (word: string): CommandName | undefined => (KNOWN.has(word) ? (word as CommandName) : undefined)

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
      const skipped = yield* reader.readInto(n, () => Effect.void).pipe(Effect.either)
      if (skipped._tag === "Left") return
    }
  })
  return loop
}
