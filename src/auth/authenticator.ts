/**
 * The authentication service the session uses: banner mechanisms, AUTHENTICATE exchanges
 * and the identity of pre-authenticated (UNIX-socket) sessions.
 */
import { Effect } from "effect"
import { type Authorization, unixSocketIdentity } from "./Authorization.js"
import type { UnsupportedPwcheckMethod } from "./errors.js"
import { type AuthStep, startExchange } from "./exchange.js"
import { advertisedMechanisms, type MechanismName, saslBannerLine, type SaslConnection } from "./mechanisms.js"
import { makePasswordChecker, type PasswordCheckerShape } from "./passwordCheck.js"
import type { AuthSettings } from "./settings.js"

export interface AuthenticatorShape {
  readonly settings: AuthSettings
  /** Mechanisms offered on `connection`, in banner order. */
  readonly mechanisms: (connection: SaslConnection) => ReadonlyArray<MechanismName>
  /** `* SASL ...` without CRLF, or undefined when nothing is offered (the line is then omitted). */
  readonly bannerLine: (connection: SaslConnection) => string | undefined
  /** Begin AUTHENTICATE `mechanism` [`initialResponse`]. */
  readonly start: (connection: SaslConnection, mechanism: string, initialResponse?: string) => Effect.Effect<AuthStep>
  /** The identity of a session on a UNIX-domain socket (no SASL). */
  readonly unixSocketIdentity: Authorization
}

export const makeAuthenticatorWith = (
  settings: AuthSettings,
  passwords: PasswordCheckerShape,
  env: Readonly<Record<string, string | undefined>> = process.env
): AuthenticatorShape => ({
  settings,
  mechanisms: (connection) => advertisedMechanisms(settings, connection),
  bannerLine: (connection) => saslBannerLine(settings, connection),
  start: (connection, mechanism, initialResponse) =>
    startExchange({ settings, connection, passwords }, mechanism, initialResponse),
  unixSocketIdentity: unixSocketIdentity(settings, env)
})

/** Fails at construction when `sasl_pwcheck_method` names an unsupported verifier. */
export const makeAuthenticator = (
  settings: AuthSettings,
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<AuthenticatorShape, UnsupportedPwcheckMethod> =>
  Effect.map(makePasswordChecker(settings), (passwords) => makeAuthenticatorWith(settings, passwords, env))
