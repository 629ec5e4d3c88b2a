/**
 * Command-line options of `backupd`, as Cyrus's service framework and backupd define them.
 *
 * Generic service options (master/service.c): `-C file`, `-U uses`, `-T timeout`, `-D`, `-X`.
 * backupd's own: `-p ssf` (external security strength), `-f` (accepted, ignored). Ours on top:
 * `-s` (TLS from the first byte) and `-N` (skip password checks), which the C backupd accepts
 * in its man page but never implemented, plus `--help` / `--version`.
 *
 * Unlike the C version, which silently ignores unknown options, a bad option is a usage error
 * (exit 64): a typo in cyrus.conf should be seen, not swallowed.
 */
import { Data, Either } from "effect"
import { parseArgs } from "node:util"

export interface ServiceArgs {
  /** `-C`: alternate imapd.conf. */
  readonly configFile: string | undefined
  /** `-U`: connections served before the process exits (negative → 0). */
  readonly maxUses: number
  /** `-T`: seconds without a new connection before an idle process exits; 0 = never. */
  readonly reuseTimeout: number
  /** `-D`: run `debug_command` before serving. */
  readonly debugCommand: boolean
  /** `-X`: serve one session on stdin/stdout, without master's file descriptors. */
  readonly stdio: boolean
  /** `-p`: external security strength factor (0 = none). */
  readonly externalSsf: number
  /** `-s`: wrap every connection in TLS from the first byte. */
  readonly tlsWrapped: boolean
  /** `-N`: bypass password checks (the authentication id is trusted as given). */
  readonly noPassword: boolean
  readonly help: boolean
  readonly version: boolean
}

export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export const usageText = (program: string): string =>
  [
    `usage: ${program} [-C <alt_config>] [-U <uses>] [-T <timeout>] [-D] [-X] [-p <ssf>] [-s] [-N]`,
    `       ${program} --help | --version`,
    "",
    "  -C <file>     use <file> instead of /etc/imapd.conf",
    "  -U <uses>     serve at most <uses> connections, then exit (default 250)",
    "  -T <timeout>  exit after <timeout> seconds without a new connection (default 60, 0 = never)",
    "  -D            run the debug_command from imapd.conf before serving",
    "  -X            serve one session on stdin/stdout (outside master)",
    "  -p <ssf>      an external security layer of strength <ssf> protects connections",
    "  -s            start TLS on connect (implicit TLS)",
    "  -N            bypass password checks",
    "  -f            accepted for compatibility, ignored"
  ].join("\n")

const options = {
  C: { type: "string" },
  U: { type: "string" },
  T: { type: "string" },
  D: { type: "boolean" },
  X: { type: "boolean" },
  p: { type: "string" },
  f: { type: "boolean" },
  s: { type: "boolean" },
  N: { type: "boolean" },
  help: { type: "boolean" },
  version: { type: "boolean" }
} as const

/** An integer argument as C's atoi-like parsing of Cyrus would take it, but strict. */
const integer = (flag: string, text: string): Either.Either<number, UsageError> =>
  /^-?\d+$/.test(text)
    ? Either.right(Number.parseInt(text, 10))
    : Either.left(new UsageError({ message: `option -${flag} needs a whole number, not '${text}'` }))

export const parseServiceArgs = (argv: ReadonlyArray<string>): Either.Either<ServiceArgs, UsageError> => {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false, tokens: true })
  } catch (e) {
    return Either.left(new UsageError({ message: e instanceof Error ? e.message : String(e) }))
  }
  // Cyrus requires options and their arguments to be separate words (`-C file`, not `-Cfile`).
  for (const token of parsed.tokens) {
    if (token.kind === "option" && token.inlineValue === true) {
      return Either.left(
        new UsageError({ message: `options and arguments MUST be separated by whitespace (-${token.name})` })
      )
    }
  }
  const v = parsed.values
  const uses = v.U === undefined ? Either.right(250) : integer("U", v.U)
  const timeout = v.T === undefined ? Either.right(60) : integer("T", v.T)
  const ssf = v.p === undefined ? Either.right(0) : integer("p", v.p)
  if (Either.isLeft(uses)) return Either.left(uses.left)
  if (Either.isLeft(timeout)) return Either.left(timeout.left)
  if (Either.isLeft(ssf)) return Either.left(ssf.left)
  return Either.right({
    configFile: v.C,
    maxUses: Math.max(0, uses.right),
    reuseTimeout: Math.max(0, timeout.right),
    debugCommand: v.D === true,
    stdio: v.X === true,
    externalSsf: Math.max(0, ssf.right),
    tlsWrapped: v.s === true,
    noPassword: v.N === true,
    help: v.help === true,
    version: v.version === true
  })
}
