/**
 * What every companion tool shares: loading imapd.conf (`-C`) the way `cyrus_init` does
 * (a failure is `fatal error: ...`, exit 78), the backups.db layer, C-style number parsing,
 * and running the tool's Effect to an exit code without ever printing a stack trace.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Cause, Effect, Exit, Layer } from "effect"
import { Config, DEFAULT_CONFIG_PATH, type CyrusConfig } from "../config/index.js"
import { Partitions } from "../partitions/index.js"
import { BackupsDb } from "../store/index.js"
import { EX_CONFIG, EX_SOFTWARE } from "../util/sysexits.js"
import { printer, type ToolIo } from "./ToolIo.js"

/** A tool ended early with this exit code (its message, if any, is already printed). */
export class ToolExit {
  readonly _tag = "ToolExit"
  constructor(readonly code: number) {}
}

export const loadConfig = (program: string, altConfig: string | undefined, io: ToolIo) =>
  Config.load({ path: altConfig ?? DEFAULT_CONFIG_PATH, service: program, serviceFromEnv: false, env: io.env }).pipe(
    Effect.provide(NodeFileSystem.layer),
    Effect.catchTag("ConfigError", (e) =>
      Effect.zipRight(printer(io).err(`fatal error: ${e.message}\n`), Effect.fail(new ToolExit(EX_CONFIG)))
    )
  )

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

/** Runs a tool program; a defect becomes one line on stderr and EX_SOFTWARE. */
export const runTool = (program: string, io: ToolIo, main: Effect.Effect<number, ToolExit>): Promise<number> =>
  Effect.runPromiseExit(main).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") return failure.value.code
    const defect = Cause.squash(exit.cause)
    const text = defect instanceof Error ? defect.message : String(defect)
    io.stderr.write(`${program}: internal error: ${text}\n`)
    return EX_SOFTWARE
  })
