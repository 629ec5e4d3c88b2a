/**
 * Reader of Cyrus's imapd.conf syntax: turns the file (and its @include files) into
 * type-checked known options plus verbatim "overflow" strings, applying the rules of
 * Cyrus 3.6's reader (line continuation, key syntax, service-specific overrides,
 * duplicate detection). Post-processing ({configdirectory}, deprecations, defaults) is
 * done by `Config.ts`.
 *
 * File contents are byte strings (latin1, one char per byte), like every string here.
 */
import { Effect, Either } from "effect"
import { ConfigError } from "./ConfigError.js"
import { decodeOptionValue, type OptionValue } from "./optionTypes.js"
import { optionSpecs, type OptionSpec } from "./optionTable.js"

/** Reads one configuration file as a byte string; fails with the strerror-style reason. */
export type OpenConfFile = (path: string) => Effect.Effect<string, string>

/** A known option as set in the file. */
export interface KnownSetting {
  readonly spec: OptionSpec
  /** The value text, trimmed. */
  readonly raw: string
  readonly value: OptionValue
  /** Set as `<service>_<option>`. */
  readonly serviceSpecific: boolean
  readonly file: string
  readonly line: number
}

export interface ImapdConfEntries {
  /** By option name (without any service prefix). */
  readonly known: ReadonlyMap<string, KnownSetting>
  /** Unknown keys, lower-cased, exactly as written (service prefix kept). */
  readonly overflow: ReadonlyMap<string, string>
  /** Every file read, in order (the top-level one first). */
  readonly files: ReadonlyArray<string>
}

export interface ReadImapdConfOptions {
  readonly path: string
  /** The service name whose `<service>_` prefixed options override generic ones. */
  readonly service: string
  readonly open: OpenConfFile
}

// C-locale isspace
const isSpace = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\v" || c === "\f" || c === "\r"

const KEY = /^@?[A-Za-z0-9_-]*/

interface Physical {
  readonly text: string
  readonly endsWithNewline: boolean
}

/** Logical lines with the number of their last physical line, the way fgets-based reading sees them. */
export const logicalLines = (content: string): Array<{ readonly text: string; readonly line: number }> => {
  const pieces = content.split("\n")
  const physical: Array<Physical> = pieces.map((text, i) => ({ text, endsWithNewline: i < pieces.length - 1 }))
  // a final piece after the last newline exists only if the file does not end in one
  if (physical.length > 0 && physical[physical.length - 1]!.text === "") physical.pop()
  const out: Array<{ text: string; line: number }> = []
  let pending = ""
  let lineno = 0
  for (const p of physical) {
    lineno++
    const nul = p.text.indexOf("\0")
    if (nul >= 0) {
      // C string handling stops at the NUL; such a line never continues
      out.push({ text: pending + p.text.slice(0, nul), line: lineno })
      pending = ""
      continue
    }
    if (p.endsWithNewline && p.text.endsWith("\\")) {
      pending += p.text.slice(0, -1)
      continue
    }
    out.push({ text: pending + p.text, line: lineno })
    pending = ""
  }
  // a continuation cut short by end of file is dropped
  return out
}

/** Reads `path` and everything it includes. */
export const readImapdConf = (opts: ReadImapdConfOptions): Effect.Effect<ImapdConfEntries, ConfigError> =>
  Effect.suspend(() => {
    const known = new Map<string, KnownSetting & { seen: 1 | 2 }>()
    const overflow = new Map<string, string>()
    const files: Array<string> = []
    const service = opts.service.toLowerCase()

    const syntax = (file: string, line: number, detail: string, option?: string) =>
      new ConfigError({ reason: "syntax", file, line, option, detail })

    const addOverflow = (file: string, line: number, key: string, value: string): Either.Either<void, ConfigError> => {
      if (overflow.has(key)) return Either.left(syntax(file, line, "specified twice in config file", key))
      overflow.set(key, value)
      return Either.right(undefined)
    }

    /** Handles one `key: value` line; returns the file to include, if it is an @include. */
    const handleLine = (file: string, line: number, text: string): Either.Either<string | undefined, ConfigError> => {
      let i = 0
      while (i < text.length && isSpace(text.charAt(i))) i++
      if (i === text.length || text.charAt(i) === "#") return Either.right(undefined)
      const rest = text.slice(i)
      const written = KEY.exec(rest)![0]
      if (rest.charAt(written.length) !== ":") return Either.left(syntax(file, line, "invalid option name"))
      const fullKey = written.toLowerCase()
      let v = rest.slice(written.length + 1)
      let a = 0
      while (a < v.length && isSpace(v.charAt(a))) a++
      let b = v.length
      while (b > a && isSpace(v.charAt(b - 1))) b--
      v = v.slice(a, b)
      if (v === "") return Either.left(syntax(file, line, "empty option value", fullKey))

      if (fullKey.startsWith("@")) {
        if (fullKey === "@include") return Either.right(v)
        return Either.left(syntax(file, line, `invalid directive '${fullKey}'`))
      }

      let name = fullKey
      let serviceSpecific = false
      if (fullKey.startsWith(service) && fullKey.charAt(service.length) === "_") {
        const stripped = fullKey.slice(service.length + 1)
        if (optionSpecs.has(stripped)) {
          name = stripped
          serviceSpecific = true
        }
      }
      const spec = optionSpecs.get(name)
      if (spec === undefined) {
        return Either.map(addOverflow(file, line, fullKey, v), () => undefined)
      }

      const prev = known.get(name)
      if (prev !== undefined) {
        if (prev.seen === 1 && !serviceSpecific) return Either.left(syntax(file, line, "specified twice in config file", fullKey))
        if (prev.seen === 2 && serviceSpecific) return Either.left(syntax(file, line, "specified twice in config file", fullKey))
        // a generic form after the service-specific one is ignored, unchecked
        if (prev.seen === 2) return Either.right(undefined)
      }
      if (spec.deprecatedSince !== null) {
        // the deprecated name stays reachable through overflow lookups
        const r = addOverflow(file, line, fullKey, v)
        if (Either.isLeft(r)) return Either.left(r.left)
      }
      const decoded = decodeOptionValue(spec, v)
      if (Either.isLeft(decoded)) {
        return Either.left(new ConfigError({ reason: "value", file, line, option: fullKey, detail: decoded.left }))
      }
      known.set(name, { spec, raw: v, value: decoded.right, serviceSpecific, file, line, seen: serviceSpecific ? 2 : 1 })
      return Either.right(undefined)
    }

    const readFile = (path: string, from: { file: string; line: number } | undefined): Effect.Effect<void, ConfigError> =>
      Effect.gen(function* () {
        const content = yield* Effect.mapError(
          opts.open(path),
          (reason) =>
            new ConfigError({
              reason: "open",
              file: path,
              line: undefined,
              option: undefined,
              detail: `can't open configuration file ${path}: ${reason}`,
              includedFrom: from
            })
        )
        if (files.includes(path)) {
          return yield* Effect.fail(
            new ConfigError({
              reason: "syntax",
              file: from?.file ?? path,
              line: from?.line,
              option: undefined,
              detail: `configuration file ${path} included twice`
            })
          )
        }
        files.push(path)
        for (const { text, line } of logicalLines(content)) {
          const r = handleLine(path, line, text)
          if (Either.isLeft(r)) return yield* Effect.fail(r.left)
          if (r.right !== undefined) yield* readFile(r.right, { file: path, line })
        }
      })

    return Effect.map(
      readFile(opts.path, undefined),
      (): ImapdConfEntries => ({
        known: new Map([...known].map(([k, { seen: _seen, ...s }]) => [k, s] as const)),
        overflow,
        files
      })
    )
  })
