/**
 * Command-line scanning as glibc's getopt(3) does it for Cyrus's tools: options may appear
 * anywhere (non-options are permuted to the end, in order), "--" ends the options, an
 * option's argument is the rest of its word or else the next word, whatever it looks like.
 */

export interface ParsedOption {
  readonly opt: string
  readonly arg?: string
}

export type GetoptEvent =
  | { readonly _tag: "Option"; readonly opt: string; readonly arg?: string }
  /** An option letter not in the option string. */
  | { readonly _tag: "Unknown"; readonly opt: string }
  /** An option that needs an argument came last. */
  | { readonly _tag: "MissingArgument"; readonly opt: string }

export interface GetoptResult {
  /** Options in command-line order (scanning stops at the first problem, as callers exit there). */
  readonly events: ReadonlyArray<GetoptEvent>
  readonly operands: ReadonlyArray<string>
}

/** `spec` is a getopt option string such as "C:fmuv" (a leading ':' is accepted and ignored). */
export const getopt = (argv: ReadonlyArray<string>, spec: string): GetoptResult => {
  const letters = spec.startsWith(":") ? spec.slice(1) : spec
  const takesArg = (c: string) => letters[letters.indexOf(c) + 1] === ":"
  const known = (c: string) => c !== ":" && letters.includes(c)
  const events: Array<GetoptEvent> = []
  const operands: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    if (word === "--") {
      operands.push(...argv.slice(i + 1))
      break
    }
    if (!word.startsWith("-") || word === "-") {
      operands.push(word)
      continue
    }
    for (let j = 1; j < word.length; j++) {
      const c = word[j]!
      if (!known(c)) {
        events.push({ _tag: "Unknown", opt: c })
        continue
      }
      if (!takesArg(c)) {
        events.push({ _tag: "Option", opt: c })
        continue
      }
      if (j + 1 < word.length) {
        events.push({ _tag: "Option", opt: c, arg: word.slice(j + 1) })
      } else if (i + 1 < argv.length) {
        events.push({ _tag: "Option", opt: c, arg: argv[++i]! })
      } else {
        events.push({ _tag: "MissingArgument", opt: c })
      }
      break
    }
  }
  return { events, operands }
}
