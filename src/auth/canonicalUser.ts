/**
 * User-id canonicalisation as a Cyrus SASL server applies it to every authentication and
 * authorisation id: Cyrus's own rules (virtual domains, the special ids, auth_unix's
 * character set and lower-casing), then libsasl's built-in step (trim whitespace).
 */
import type { AuthSettings } from "./settings.js"
import { saslFailure, type SaslFailure } from "./SaslResult.js"

/** libsasl's canonicalisation buffer size. */
const CANON_BUF_SIZE = 1024
/** auth_unix ids are held in an 81-byte buffer. */
const MAX_ID_LENGTH = 80

/** Per-connection facts canonicalisation may need. */
export interface CanonContext {
  /**
   * With `virtdomains: on`, a domain-less id gets the domain of the server address the
   * client connected to (reverse DNS of the local IP, minus its first label). The session
   * computes it; undefined = no such domain.
   */
  readonly localDomain?: string | undefined
}

// auth_unix: printable ASCII except % & * / : ? and DEL.
const allowedChar = (code: number): boolean =>
  code >= 0x20 && code < 0x7f && !"%&*/:?".includes(String.fromCharCode(code))

const isAsciiUpper = (code: number): boolean => code >= 0x41 && code <= 0x5a

const isSpace = (code: number): boolean => code === 0x20 || (code >= 0x09 && code <= 0x0d)

const untilNul = (s: string): string => {
  const i = s.indexOf("\0")
  return i < 0 ? s : s.slice(0, i)
}

/** auth_unix's canonifier: undefined when the id is unacceptable. */
export const authUnixCanonify = (id: string, usernameToLower: boolean): string | undefined => {
  if (id.length > MAX_ID_LENGTH) return undefined
  // Groups are never valid login ids here (see docs/authentication.md).
  if (id.startsWith("group:")) return undefined
  let out = ""
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i)
    if (!allowedChar(code)) return undefined
    out += usernameToLower && isAsciiUpper(code) ? String.fromCharCode(code + 0x20) : id[i]
  }
  return out
}

const lastDomainSeparator = (s: string): number => {
  const at = s.lastIndexOf("@")
  return at >= 0 ? at : s.lastIndexOf("%")
}

/** Cyrus's `canonify_userid` (without the LISTRIGHTS login-id variant). */
export const cyrusCanonify = (
  settings: AuthSettings,
  raw: string,
  ctx: CanonContext = {}
): string | undefined => {
  let user = untilNul(raw)
  const virt = settings.virtdomains !== "off"
  let sep = virt ? lastDomainSeparator(user) : -1
  if (sep >= 0) user = user.slice(0, sep) + "@" + user.slice(sep + 1)
  const local = sep >= 0 ? user.slice(0, sep) : user
  const lower = local.toLowerCase()
  if (lower === "anonymous") return "anonymous"
  if (lower === "anybody" || lower === "anyone") return "anyone"
  if (virt) {
    const def = settings.defaultDomain
    if (sep >= 0) {
      if (def !== undefined && def.toLowerCase() === user.slice(sep + 1).toLowerCase()) user = local
    } else if (settings.virtdomains === "on" && ctx.localDomain !== undefined) {
      const dom = ctx.localDomain
      if (!(def !== undefined && def.toLowerCase() === dom.toLowerCase())) user = `${user}@${dom}`
    }
  }
  return authUnixCanonify(user, settings.usernameToLower)
}

/**
 * The whole chain libsasl runs for one id: buffer check, Cyrus's callback, then libsasl's
 * INTERNAL step (trim whitespace; an empty result is an error). No realm is appended because
 * Cyrus creates its SASL connections without a user realm.
 */
export const canonicalizeUser = (
  settings: AuthSettings,
  raw: string,
  ctx: CanonContext = {}
): { readonly _tag: "Ok"; readonly id: string } | { readonly _tag: "Err"; readonly failure: SaslFailure } => {
  if (raw.length + 1 > CANON_BUF_SIZE) {
    return { _tag: "Err", failure: saslFailure("BUFOVER", "buffer overflow while canonicalizing") }
  }
  const canon = cyrusCanonify(settings, raw, ctx)
  if (canon === undefined) return { _tag: "Err", failure: saslFailure("BADAUTH", "bad userid authenticated") }
  let start = 0
  let end = canon.length
  while (start < end && isSpace(canon.charCodeAt(start))) start++
  while (end > start && isSpace(canon.charCodeAt(end - 1))) end--
  if (start === end) return { _tag: "Err", failure: saslFailure("FAIL", "All-whitespace username.") }
  return { _tag: "Ok", id: canon.slice(start, end) }
}
