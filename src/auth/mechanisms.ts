/**
 * Which SASL mechanisms a connection offers, decided the way libsasl decides it for the
 * three mechanisms we implement (PLAIN, LOGIN, EXTERNAL).
 */
import type { AuthSettings } from "./settings.js"
import type { SaslResult } from "./SaslResult.js"

export type MechanismName = "EXTERNAL" | "PLAIN" | "LOGIN"

export interface MechanismSpec {
  readonly name: MechanismName
  /** Sends a reusable password in the clear (hidden when plaintext is not allowed). */
  readonly plaintext: boolean
  /** With no initial response the server sends an empty challenge first. */
  readonly wantsClientFirst: boolean
  /** Only available when the link carries an external identity (TLS client certificate). */
  readonly needsExternalId: boolean
}

/** In libsasl's strength order, which is the order used when `sasl_mech_list` is unset. */
export const IMPLEMENTED_MECHANISMS: ReadonlyArray<MechanismSpec> = [
  { name: "EXTERNAL", plaintext: false, wantsClientFirst: true, needsExternalId: true },
  { name: "PLAIN", plaintext: true, wantsClientFirst: true, needsExternalId: false },
  { name: "LOGIN", plaintext: true, wantsClientFirst: false, needsExternalId: false }
]

/** What the link itself provides, per connection. */
export interface SaslConnection {
  /** External security strength: `-p`, or the TLS cipher strength once TLS is active. */
  readonly externalSsf: number
  /** Identity proven by the link (e.g. TLS client certificate subject); enables EXTERNAL. */
  readonly externalAuthId?: string | undefined
  /** See `CanonContext.localDomain`. */
  readonly localDomain?: string | undefined
}

/** A plain TCP connection under `settings` (no TLS, no external identity). */
export const tcpConnection = (settings: AuthSettings, localDomain?: string): SaslConnection => ({
  externalSsf: settings.externalSsf,
  localDomain
})

/**
 * libsasl's mechanism-name comparison: case-insensitive, exact, and a `-PLUS` suffix
 * (channel-binding variant) names the base mechanism.
 */
export const sameMechanism = (requested: string, name: string): boolean => {
  const base = requested.length > 5 && requested.slice(-5).toUpperCase() === "-PLUS" ? requested.slice(0, -5) : requested
  return base.toUpperCase() === name
}

/**
 * The connection's candidate list: `sasl_mech_list` in its own order (unknown names dropped,
 * repeats kept, as libsasl does), else every implemented mechanism.
 */
export const candidateMechanisms = (settings: AuthSettings): ReadonlyArray<MechanismSpec> => {
  if (settings.mechList === undefined) return IMPLEMENTED_MECHANISMS
  const out: Array<MechanismSpec> = []
  for (const word of settings.mechList.split(/[ \t\n\v\f\r]+/)) {
    const spec = IMPLEMENTED_MECHANISMS.find((m) => word.length > 0 && sameMechanism(word, m.name))
    if (spec !== undefined) out.push(spec)
  }
  return out
}

/** libsasl's `mech_permitted`: `"OK"` or the result code that rules the mechanism out. */
export const mechanismPermitted = (
  settings: AuthSettings,
  conn: SaslConnection,
  mech: MechanismSpec
): "OK" | SaslResult => {
  const minSsf = Math.max(0, settings.saslMinimumLayer - conn.externalSsf)
  // All three mechanisms provide no security layer of their own (max SSF 0).
  if (minSsf > 0) return "TOOWEAK"
  if (mech.needsExternalId && conn.externalAuthId === undefined) return "NOMECH"
  // An external layer stronger than integrity-only makes plaintext acceptable.
  const externalProtects = settings.saslMinimumLayer <= conn.externalSsf && conn.externalSsf > 1
  if (mech.plaintext && !settings.allowPlaintext && !externalProtects) return "ENCRYPT"
  return "OK"
}

/** Mechanism names to advertise, in order. */
export const advertisedMechanisms = (settings: AuthSettings, conn: SaslConnection): ReadonlyArray<MechanismName> =>
  candidateMechanisms(settings)
    .filter((m) => mechanismPermitted(settings, conn, m) === "OK")
    .map((m) => m.name)

/** The banner line (without CRLF), e.g. `* SASL PLAIN LOGIN`; undefined when none is offered. */
export const saslBannerLine = (settings: AuthSettings, conn: SaslConnection): string | undefined => {
  const mechs = advertisedMechanisms(settings, conn)
  return mechs.length === 0 ? undefined : `* SASL ${mechs.join(" ")}`
}
