/**
 * Base64 as libsasl's `sasl_decode64` accepts it. Node's decoder is far more lenient
 * (it skips junk and missing padding), so the acceptance rules are checked here and the
 * actual decoding is left to `Buffer`.
 *
 * Rules: a leading CR is a generic failure; input is taken in groups of four, each of
 * alphabet characters with `=` allowed only as `xx==` or `xxx=`; nothing may follow a padded
 * group; 1..3 leftover characters without padding mean "incomplete" (libsasl returns
 * SASL_CONTINUE); the decoded length must stay below the caller's buffer size.
 */
import type { SaslResult } from "./SaslResult.js"

/** saslserver.c's buffer: ((16K / 3) + 1) * 4 bytes. */
export const SASL_BASE64_BUFFER = 21848

export type Decode64 =
  | { readonly _tag: "Decoded"; readonly bytes: string }
  | { readonly _tag: "Incomplete"; readonly bytes: string }
  | { readonly _tag: "Invalid"; readonly result: SaslResult }

const isB64 = (c: string): boolean => /^[A-Za-z0-9+/]$/.test(c)

/** Decode a latin1 byte string; the result is a latin1 byte string. */
export const decode64 = (input: string, outMax: number = SASL_BASE64_BUFFER): Decode64 => {
  if (input.length > 0 && input.charCodeAt(0) === 0x0d) return { _tag: "Invalid", result: "FAIL" }
  const whole = input.length - (input.length % 4)
  let sawEqual = false
  let len = 0
  for (let i = 0; i < whole; i += 4) {
    if (sawEqual) return { _tag: "Invalid", result: "BADPROT" }
    const [a, b, c, d] = [input[i]!, input[i + 1]!, input[i + 2]!, input[i + 3]!]
    if (!isB64(a) || !isB64(b)) return { _tag: "Invalid", result: "BADPROT" }
    if (c !== "=" && !isB64(c)) return { _tag: "Invalid", result: "BADPROT" }
    if (d !== "=" && !isB64(d)) return { _tag: "Invalid", result: "BADPROT" }
    if (c === "=" && d !== "=") return { _tag: "Invalid", result: "BADPROT" }
    if (c === "=" || d === "=") sawEqual = true
    len += c === "=" ? 1 : d === "=" ? 2 : 3
    // libsasl counts its terminating NUL against the buffer too.
    if (len >= outMax) return { _tag: "Invalid", result: "BUFOVER" }
  }
  const bytes = Buffer.from(input.slice(0, whole), "base64").toString("latin1")
  if (whole !== input.length) {
    return sawEqual ? { _tag: "Invalid", result: "BADPROT" } : { _tag: "Incomplete", bytes }
  }
  return { _tag: "Decoded", bytes }
}

/** Base64 of a latin1 byte string (standard alphabet, padded). */
export const encode64 = (bytes: string): string => Buffer.from(bytes, "latin1").toString("base64")
