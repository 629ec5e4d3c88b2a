/**
 * The value syntaxes of imapd.conf options, as `Schema`s from string to typed value.
 * They follow Cyrus 3.6's rules exactly, quirks included (case-sensitive switches,
 * strtol's base prefixes, 32-bit wrap-around of ints and durations).
 */
import { Either, ParseResult, Schema } from "effect"
import type { OptionSpec } from "./optionTable.js"

// --- switch ------------------------------------------------------------------

/** Cyrus looks at the first one or two characters only, case-sensitively. */
export const parseSwitch = (s: string): boolean | undefined => {
  const c = s.charAt(0)
  if (c === "0" || c === "n" || c === "f" || s.startsWith("of")) return false
  if (c === "1" || c === "y" || c === "t" || s.startsWith("on")) return true
  return undefined
}

export const SwitchFromString = Schema.transformOrFail(Schema.String, Schema.Boolean, {
  strict: true,
  decode: (s, _, ast) => {
    const b = parseSwitch(s)
    return b === undefined ? ParseResult.fail(new ParseResult.Type(ast, s, `non-switch value "${s}"`)) : ParseResult.succeed(b)
  },
  encode: (b) => ParseResult.succeed(b ? "1" : "0")
})

// --- int ---------------------------------------------------------------------

const INT64_MAX = (1n << 63n) - 1n
const INT64_MIN = -(1n << 63n)

/**
 * `strtol(s, &end, 0)` requiring `*end == '\0'`: optional sign, `0x` hex, leading-0
 * octal, else decimal; out-of-range values clamp like strtol on a 64-bit long.
 * The result is then truncated to a C int, as `config_getint` returns it.
 */
export const parseCyrusInt = (s: string): number | undefined => {
  const m = /^[ \t\n\v\f\r]*([+-]?)(?:(0[xX])([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(s)
  if (m === null) return undefined
  const neg = m[1] === "-"
  let v: bigint
  if (m[3] !== undefined) v = BigInt("0x" + m[3])
  else if (m[4] !== undefined) v = m[4].length > 1 ? BigInt("0o" + m[4].slice(1)) : 0n
  else v = BigInt(m[5]!)
  if (neg) v = -v
  if (v > INT64_MAX) v = INT64_MAX
  if (v < INT64_MIN) v = INT64_MIN
  return Number(BigInt.asIntN(32, v))
}

export const IntFromString = Schema.transformOrFail(Schema.String, Schema.Int, {
  strict: true,
  decode: (s, _, ast) => {
    const n = parseCyrusInt(s)
    return n === undefined ? ParseResult.fail(new ParseResult.Type(ast, s, `non-integer value "${s}"`)) : ParseResult.succeed(n)
  },
  encode: (n) => ParseResult.succeed(String(n))
})

// --- duration ----------------------------------------------------------------

export type DurationUnit = "d" | "h" | "m" | "s"

const unitSeconds: Record<DurationUnit, number> = { d: 86400, h: 3600, m: 60, s: 1 }

/**
 * `-?(<digits><unit>)+` summed to seconds; a trailing bare number takes `defaultUnit`.
 * Arithmetic wraps at 32 bits like Cyrus's int. Quirks kept: `""` and `"-"` are 0.
 */
export const parseDuration = (s: string, defaultUnit: DurationUnit): number | undefined => {
  let text = s
  if (/[0-9]$/.test(text)) text += defaultUnit
  let i = 0
  let neg = false
  if (text.charAt(0) === "-") {
    neg = true
    i = 1
  }
  let accum = 0
  let total = 0
  let sawDigit = false
  for (; i < text.length; i++) {
    const c = text.charAt(i)
    if (c >= "0" && c <= "9") {
      accum = (Math.imul(accum, 10) + (c.charCodeAt(0) - 48)) | 0
      sawDigit = true
      continue
    }
    if (!sawDigit) return undefined
    sawDigit = false
    if (!Object.hasOwn(unitSeconds, c)) return undefined
    total = (total + Math.imul(accum, unitSeconds[c as DurationUnit])) | 0
    accum = 0
  }
  return neg ? -total | 0 : total
}

/** Canonical text of a number of seconds, largest units first (`5400` → `1h30m`). */
export const formatDuration = (seconds: number): string => {
  if (seconds === 0) return "0s"
  const sign = seconds < 0 ? "-" : ""
  let rest = Math.abs(seconds)
  let out = ""
  for (const u of ["d", "h", "m", "s"] as const) {
    const n = Math.floor(rest / unitSeconds[u])
    if (n > 0) out += `${n}${u}`
    rest -= n * unitSeconds[u]
  }
  return sign + out
}

/** A duration option read with its caller's default unit, in seconds. */
export const durationFromString = (defaultUnit: DurationUnit) =>
  Schema.transformOrFail(Schema.String, Schema.Int, {
    strict: true,
    decode: (s, _, ast) => {
      const n = parseDuration(s, defaultUnit)
      return n === undefined ? ParseResult.fail(new ParseResult.Type(ast, s, `invalid duration "${s}"`)) : ParseResult.succeed(n)
    },
    encode: (n) => ParseResult.succeed(formatDuration(n))
  })

// --- enum / stringlist / bitfield ---------------------------------------------

/** Enums accept the usual on/off spellings (exactly these, case-sensitive). */
export const normalizeEnumWord = (s: string): string => {
  if (s === "1" || s === "yes" || s === "t" || s === "true") return "on"
  if (s === "0" || s === "no" || s === "f" || s === "false") return "off"
  return s
}

const expected = (choices: ReadonlyArray<string>) => `expected one of: ${choices.join(", ")}`

/** ENUM (with on/off normalisation) or STRINGLIST: the whole value must be one listed word. */
export const choiceFromString = (choices: ReadonlyArray<string>, normalize: boolean) =>
  Schema.transformOrFail(Schema.String, Schema.String, {
    strict: true,
    decode: (s, _, ast) => {
      const w = normalize ? normalizeEnumWord(s) : s
      return choices.includes(w)
        ? ParseResult.succeed(w)
        : ParseResult.fail(new ParseResult.Type(ast, s, `invalid value '${w}' (${expected(choices)})`))
    },
    encode: ParseResult.succeed
  })

/**
 * BITFIELD: whitespace-separated words, each a listed one; `a=b` in the list makes `b`
 * an alias of `a`. Decodes to the set of canonical (first-listed) names, in list order.
 */
export const bitfieldFromString = (choices: ReadonlyArray<string>) => {
  const canonical = new Map<string, string>()
  for (const c of choices) {
    const names = c.split("=")
    for (const n of names) canonical.set(n, names[0]!)
  }
  const order = choices.map((c) => c.split("=")[0]!)
  return Schema.transformOrFail(Schema.String, Schema.Array(Schema.String), {
    strict: true,
    decode: (s, _, ast) => {
      const picked = new Set<string>()
      for (const w of s.split(/[ \t\n\v\f\r]+/).filter((x) => x.length > 0)) {
        const c = canonical.get(w)
        if (c === undefined) {
          return ParseResult.fail(new ParseResult.Type(ast, s, `invalid value '${w}' (${expected([...canonical.keys()])})`))
        }
        picked.add(c)
      }
      return ParseResult.succeed(order.filter((n) => picked.has(n)))
    },
    encode: (ws) => ParseResult.succeed(ws.join(" "))
  })
}

// --- by option spec -------------------------------------------------------------

/** What a known option holds once decoded. Durations stay text until read with a unit. */
export type OptionValue = string | number | boolean | ReadonlyArray<string>

type Decoder = (raw: string) => Either.Either<OptionValue, string>

const decoderCache = new Map<string, Decoder>()

const decoderFor = (spec: OptionSpec): Decoder => {
  const hit = decoderCache.get(spec.name)
  if (hit !== undefined) return hit
  const using =
    <A extends OptionValue>(schema: Schema.Schema<A, string>): Decoder =>
    (raw) =>
      decodeWith(schema, raw)
  let d: Decoder
  switch (spec.kind) {
    case "switch":
      d = using(SwitchFromString)
      break
    case "int":
      d = using(IntFromString)
      break
    case "duration":
      // checked with seconds as unit at read time, like Cyrus; kept as text
      d = using(Schema.String.pipe(Schema.filter((v) => parseDuration(v, "s") !== undefined || `invalid duration "${v}"`)))
      break
    case "enum":
      d = using(choiceFromString(spec.choices ?? [], true))
      break
    case "stringlist":
      d = using(choiceFromString(spec.choices ?? [], false))
      break
    case "bitfield":
      d = using(bitfieldFromString(spec.choices ?? []))
      break
    case "string":
      d = using(Schema.String)
      break
  }
  decoderCache.set(spec.name, d)
  return d
}

/** Decodes a raw value of a known option; Left carries a one-line reason. */
export const decodeOptionValue = (spec: OptionSpec, raw: string): Either.Either<OptionValue, string> =>
  decoderFor(spec)(raw)

/** Decodes with a schema and keeps only the first issue's message. */
export const decodeWith = <A>(schema: Schema.Schema<A, string>, raw: string): Either.Either<A, string> =>
  Either.mapLeft(Schema.decodeEither(schema)(raw), firstMessage)

const firstMessage = (e: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(e)
  return issues[0]?.message ?? "invalid value"
}
