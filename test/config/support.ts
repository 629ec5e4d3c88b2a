import { Effect, Either } from "effect"
import { Config, type CyrusConfig, type FromStringOptions } from "../../src/config/Config.js"
import { type ConfigError, renderConfigError } from "../../src/config/ConfigError.js"

export const CONF = "/etc/imapd.conf"
export const BASE = "configdirectory: /var/lib/cyrus\n"

/** Parses `text` as /etc/imapd.conf for service backupd with an empty environment. */
export const parse = (text: string, opts: Partial<FromStringOptions> = {}): Either.Either<CyrusConfig, ConfigError> =>
  Effect.runSync(Effect.either(Config.fromString(text, { service: "backupd", path: CONF, env: {}, ...opts })))

export const ok = (text: string, opts: Partial<FromStringOptions> = {}): CyrusConfig => {
  const r = parse(text, opts)
  if (Either.isLeft(r)) throw new Error(`unexpected config error: ${renderConfigError(r.left)}`)
  return r.right
}

export const fails = (text: string, opts: Partial<FromStringOptions> = {}): ConfigError => {
  const r = parse(text, opts)
  if (Either.isRight(r)) throw new Error("expected a config error")
  return r.left
}

export const failLine = (text: string, opts: Partial<FromStringOptions> = {}): string => renderConfigError(fails(text, opts))
