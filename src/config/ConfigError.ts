import { Data } from "effect"

/**
 * What went wrong with the configuration:
 * - `open`: a file could not be read (the top-level one or an `@include`)
 * - `syntax`: a line is not `key: value` (bad name, empty value, unknown directive,
 *   duplicate, file included twice)
 * - `value`: a known option's value does not fit its type
 * - `missing`: a required option is absent (configdirectory)
 */
export type ConfigErrorReason = "open" | "syntax" | "value" | "missing"

/**
 * The one error of the config layer. Programs map it to exit code 78 (EX_CONFIG)
 * and print `renderConfigError(e)`.
 */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly reason: ConfigErrorReason
  /** The configuration file the problem is in (for `open`: the file that failed to open). */
  readonly file: string | undefined
  /** 1-based line; for a `\`-continued line, its last physical line (as Cyrus counts). */
  readonly line: number | undefined
  /** The option name as written (lower-cased), when the problem is about one. */
  readonly option: string | undefined
  /** One line, without file/line/option. */
  readonly detail: string
  /** For `open` failures of an @include: the file that included it. */
  readonly includedFrom?: { readonly file: string; readonly line: number } | undefined
}> {
  override get message(): string {
    return renderConfigError(this)
  }
}

/**
 * One line, e.g.
 * `imapd.conf: /etc/x.conf line 12: option 'sync_timeout': invalid duration "3x"` or
 * `can't open configuration file /nonexistent: No such file or directory`.
 */
export const renderConfigError = (e: ConfigError): string => {
  let where = ""
  if (e.reason === "open") {
    if (e.includedFrom !== undefined) {
      where = `imapd.conf: ${e.includedFrom.file} line ${e.includedFrom.line}: `
    }
  } else if (e.file !== undefined) {
    where = `imapd.conf: ${e.file}${e.line !== undefined ? ` line ${e.line}` : ""}: `
  }
  const opt = e.option !== undefined ? `option '${printable(e.option)}': ` : ""
  return where + opt + printable(e.detail)
}

/** Keeps the rendering on one line whatever bytes the file held. */
const printable = (s: string): string =>
  s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
