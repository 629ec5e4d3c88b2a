/**
 * Password verification selected by `sasl_pwcheck_method`, tried in order like libsasl
 * (the first method that accepts wins; otherwise the last method's result counts).
 * Implemented: `saslauthd` and `alwaystrue`. Anything else is refused when the checker is
 * built, so a misconfiguration shows at startup instead of as failed logins.
 */
import { Effect } from "effect"
import { UnsupportedPwcheckMethod } from "./errors.js"
import { encodeSaslauthdRequest, saslauthdRoundTrip } from "./saslauthdClient.js"
import { saslFailure, type SaslFailure } from "./SaslResult.js"
import { type AuthSettings, DEFAULT_SASLAUTHD_PATH, SASL_SERVICE } from "./settings.js"

/** `"OK"` or why not. Never fails: a broken verifier is a failed login (SASL_FAIL). */
export type PasswordVerdict = "OK" | SaslFailure

export interface PasswordCheckerShape {
  /** `user` is the canonical authentication id; both are latin1 byte strings. */
  readonly check: (user: string, password: string) => Effect.Effect<PasswordVerdict>
}

type Verifier = (user: string, password: string) => Effect.Effect<PasswordVerdict>

const alwaysTrue: Verifier = () => Effect.succeed("OK")

const saslauthd = (settings: AuthSettings): Verifier => (user, password) => {
  const path = settings.saslauthdPath ?? DEFAULT_SASLAUTHD_PATH
  // libsasl splits `user@realm` at the last `@`; without one the realm is empty.
  const at = user.lastIndexOf("@")
  const request = encodeSaslauthdRequest({
    login: at >= 0 ? user.slice(0, at) : user,
    password,
    service: SASL_SERVICE,
    realm: at >= 0 ? user.slice(at + 1) : ""
  })
  if (request === undefined) return Effect.succeed(saslFailure("FAIL", "saslauthd request too large"))
  return saslauthdRoundTrip(path, request, settings.saslauthdTimeout).pipe(
    Effect.map((answer): PasswordVerdict =>
      answer.startsWith("OK") ? "OK" : saslFailure("BADAUTH", "authentication failed")
    ),
    Effect.catchTag("SaslauthdError", (e) =>
      Effect.logWarning(e.message).pipe(Effect.as(saslFailure("FAIL", e.message)))
    )
  )
}

const verifiers = new Map<string, (settings: AuthSettings) => Verifier>([
  ["saslauthd", saslauthd],
  ["alwaystrue", () => alwaysTrue]
])

/** Build the checker, or refuse a method list naming anything unimplemented. */
export const makePasswordChecker = (
  settings: AuthSettings
): Effect.Effect<PasswordCheckerShape, UnsupportedPwcheckMethod> =>
  Effect.gen(function* () {
    // -N: passwords are not looked at, so no verifier is needed.
    if (settings.skipPasswordCheck) return { check: alwaysTrue }
    const configured = settings.pwcheckMethod?.split(/[ \t\n\v\f\r]+/).filter((m) => m.length > 0) ?? []
    const names = configured.length > 0 ? configured : ["auxprop"]
    const chain: Array<Verifier> = []
    for (const name of names) {
      const make = verifiers.get(name.toLowerCase())
      if (make === undefined) {
        return yield* new UnsupportedPwcheckMethod({ method: name, defaulted: configured.length === 0 })
      }
      chain.push(make(settings))
    }
    const check = (user: string, password: string): Effect.Effect<PasswordVerdict> =>
      Effect.gen(function* () {
        let verdict: PasswordVerdict = saslFailure("NOMECH", "no password verifier")
        for (const verify of chain) {
          verdict = yield* verify(user, password)
          if (verdict === "OK") break
        }
        return verdict === "OK" ? verdict : saslFailure(verdict.result, "checkpass failed: " + verdict.detail)
      })
    return { check }
  })
