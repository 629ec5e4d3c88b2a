/**
 * What every companion tool shares: loading imapd.conf (`-C`) the way `cyrus_init` does
 * (a failure is `fatal error: ...`, exit 78), the backups.db layer, C-style number parsing,
 * and running the tool's Effect to an exit code: its typed failures are mapped to a line and
 * a sysexits code in one place per program, and a defect never prints a stack trace.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Cause, Effect, Either, Exit, Layer } from "effect"
import { Config, DEFAULT_CONFIG_PATH, type ConfigError, type CyrusConfig } from "../config/index.js"
import { Partitions } from "../partitions/index.js"
import { BackupsDb } from "../store/index.js"
import { makeServiceLog, withServiceLog, type ServiceLog } from "../telemetry/ServiceLog.js"
import { EX_CONFIG, EX_OK, EX_SOFTWARE, EX_USAGE } from "../util/sysexits.js"
import { versionLine } from "../util/version.js"
import type { ToolIo } from "./ToolIo.js"

/** How a tool run that failed ends: the line it prints on stderr and its exit code. */
export interface ToolFailure {
  readonly exitCode: number
  readonly line: string
}

export const loadConfig = (program: string, altConfig: string | undefined, io: ToolIo): Effect.Effect<CyrusConfig, ConfigError> =>
  Config.load({ path: altConfig ?? DEFAULT_CONFIG_PATH, service: program, serviceFromEnv: false, env: io.env }).pipe(
    Effect.provide(NodeFileSystem.layer)
  )

/** A configuration that cannot be loaded: `fatal error: ...`, exit 78, as `cyrus_init` ends. */
export const configFailure = (e: ConfigError): ToolFailure => ({ exitCode: EX_CONFIG, line: `fatal error: ${e.message}\n` })

/** BackupsDb (and the Partitions it creates files on) for an already loaded configuration. */
export const backupsDbLayer = (config: CyrusConfig) =>
  BackupsDb.layerFromConfig.pipe(
    Layer.provide(Partitions.layerFromConfig()),
    Layer.provide(Layer.succeed(Config, config))
  )

/** C's atoi(): optional blanks and sign, then digits; anything else stops it (0 if none). */
export const atoi = (s: string): number => {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s)
  if (m === null) return 0
  const n = Number.parseInt(m[1]!, 10)
  return Number.isFinite(n) ? n | 0 : 0
}

/**
 * A tool's command line: `--version` alone prints the version (exit 0); one `parse` refuses
 * (Left) prints the usage text it gives on stderr (exit 64); anything else is run.
 */
export const toolMain = <A>(
  program: string,
  argv: ReadonlyArray<string>,
  io: ToolIo,
  parse: (argv: ReadonlyArray<string>) => Either.Either<A, string>,
  run: (args: A) => Promise<number>
): Promise<number> => {
  if (argv.length === 1 && argv[0] === "--version") {
    io.stdout.write(versionLine(program) + "\n")
    return Promise.resolve(EX_OK)
  }
  const parsed = parse(argv)
  if (Either.isLeft(parsed)) {
    io.stderr.write(parsed.left)
    return Promise.resolve(EX_USAGE)
  }
  return run(parsed.right)
}

/**
 * A tool's log, as Cyrus's tools log: syslog under the program's name, or the tool's stderr
 * when there is no syslog socket (or BACKUPD_LOG_STDERR=1). Never stdout, the tool's output.
 */
export const toolLog = (
  program: string,
  writeStderr: (text: string) => void,
  env: Readonly<Record<string, string | undefined>> = process.env
): ServiceLog => makeServiceLog({ ident: program, facility: undefined, debug: false, stderr: env["BACKUPD_LOG_STDERR"] === "1", writeStderr })

/**
 * Runs a tool program to its exit code, with its log as the Effect Logger: a failure becomes
 * the line and code `onFailure` gives it, a defect one line on stderr and EX_SOFTWARE.
 */
export const runTool = <E>(program: string, io: ToolIo, main: Effect.Effect<number, E>, onFailure: (e: E) => ToolFailure): Promise<number> =>
  Effect.runPromiseExit(main.pipe(withServiceLog(toolLog(program, (t) => void io.stderr.write(t), io.env)))).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") {
      const { exitCode, line } = onFailure(failure.value)
      io.stderr.write(Buffer.from(line, "latin1"))
      return exitCode
    }
    const defect = Cause.squash(exit.cause)
    const text = defect instanceof Error ? defect.message : String(defect)
    io.stderr.write(`${program}: internal error: ${text}\n`)
    return EX_SOFTWARE
  })
