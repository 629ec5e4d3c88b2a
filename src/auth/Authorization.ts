/**
 * Who may log in, and as whom: Cyrus's proxy policy with backupd's context (no ACL-based
 * proxying, `proxyservers` honoured), plus the admin check every later command relies on.
 */
import type { AuthSettings } from "./settings.js"
import { saslFailure, type SaslFailure } from "./SaslResult.js"

const words = (list: string): ReadonlyArray<string> => list.split(/[ \t\n\v\f\r]+/).filter((w) => w.length > 0)

/**
 * Membership of a canonical id in a space-separated option (`admins`, `proxyservers`), as
 * auth_unix decides it: `anyone` matches everybody, otherwise an exact, case-sensitive match.
 * `group:<name>` entries never match (UNIX group lookup is not implemented).
 */
export const isMemberOf = (list: string, id: string): boolean =>
  words(list).some((w) => w === "anyone" || w === id)

/** `loginrealms` check for an authentication id of the form `user@realm`. */
const realmAllowed = (settings: AuthSettings, authcid: string): boolean => {
  const at = authcid.indexOf("@")
  if (at < 0) return true
  // With virtual domains and no loginrealms, any domain is fine.
  if (settings.virtdomains !== "off" && words(settings.loginRealms).length === 0) return true
  const realm = authcid.slice(at + 1).toLowerCase()
  return words(settings.loginRealms).some((r) => r.toLowerCase() === realm)
}

export interface Authorization {
  /** The session's user id: the authorisation id. */
  readonly userid: string
  /** Only a non-proxied admin may use backupd. */
  readonly isAdmin: boolean
}

/**
 * Decide on canonical ids. Proxying (authzid differs from authcid) needs the authcid to be
 * an admin or a proxy server, and the proxied session is never admin.
 */
export const authorize = (
  settings: AuthSettings,
  authzid: string,
  authcid: string
): { readonly _tag: "Ok"; readonly value: Authorization } | { readonly _tag: "Err"; readonly failure: SaslFailure } => {
  if (!realmAllowed(settings, authcid)) {
    return { _tag: "Err", failure: saslFailure("BADAUTH", `cross-realm login ${authcid} denied`) }
  }
  const admin = isMemberOf(settings.admins, authcid)
  if (authzid === authcid) return { _tag: "Ok", value: { userid: authzid, isAdmin: admin } }
  if (admin || isMemberOf(settings.proxyServers, authcid)) {
    return { _tag: "Ok", value: { userid: authzid, isAdmin: false } }
  }
  return { _tag: "Err", failure: saslFailure("BADAUTH", `user ${authcid} is not allowed to proxy`) }
}

/** Identity of a UNIX-socket session: the Cyrus user, with admin rights, no SASL at all. */
export const unixSocketIdentity = (
  settings: AuthSettings,
  env: Readonly<Record<string, string | undefined>> = process.env
): Authorization => ({
  userid: env["CYRUS_USER"] ?? settings.cyrusUser ?? "cyrus",
  isAdmin: true
})
