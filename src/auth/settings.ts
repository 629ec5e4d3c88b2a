/**
 * Plain option values the authentication code needs. The config layer fills this record;
 * nothing here reads imapd.conf itself, so the auth code stays independent of its shape.
 */
import { Duration } from "effect"

export type VirtDomains = "off" | "userid" | "on"

export interface AuthSettings {
  /** `allowplaintext`: offer PLAIN/LOGIN without a protected link. */
  readonly allowPlaintext: boolean
  /** `sasl_minimum_layer`. */
  readonly saslMinimumLayer: number
  /** `sasl_maximum_layer` (no effect on PLAIN/LOGIN/EXTERNAL; kept for completeness). */
  readonly saslMaximumLayer: number
  /** `-p <ssf>`: strength of an external protection layer, for every connection. */
  readonly externalSsf: number
  /** `sasl_mech_list`, space separated; undefined = every mechanism we implement. */
  readonly mechList: string | undefined
  /** `sasl_pwcheck_method`, space separated; undefined = libsasl's default, `auxprop`. */
  readonly pwcheckMethod: string | undefined
  /** `sasl_saslauthd_path`; undefined = `/var/run/saslauthd/mux`. */
  readonly saslauthdPath: string | undefined
  /** Bound on one saslauthd round trip (libsasl has none; we refuse to hang forever). */
  readonly saslauthdTimeout: Duration.Duration
  /** `admins`: space separated ids. */
  readonly admins: string
  /** `proxyservers`: space separated ids allowed to log in as someone else. */
  readonly proxyServers: string
  /** `loginrealms`: space separated realms accepted in `user@realm` authentication ids. */
  readonly loginRealms: string
  readonly virtdomains: VirtDomains
  /** `defaultdomain`: a domain stripped from ids when virtdomains is on. */
  readonly defaultDomain: string | undefined
  /** `username_tolower`. */
  readonly usernameToLower: boolean
  /** `failedloginpause`: sleep before answering a failed AUTHENTICATE. */
  readonly failedLoginPause: Duration.Duration
  /** `-N`: accept any password for PLAIN/LOGIN (identity and admin rules still apply). */
  readonly skipPasswordCheck: boolean
  /** `cyrus_user` option (the `$CYRUS_USER` environment variable wins over it). */
  readonly cyrusUser: string | undefined
}

export const DEFAULT_SASLAUTHD_PATH = "/var/run/saslauthd/mux"
/** The SASL service name backupd registers; saslauthd receives it. */
export const SASL_SERVICE = "csync"
/** Compile-time default of the Cyrus user. */
export const DEFAULT_CYRUS_USER = "cyrus"

/** Cyrus 3.6.1 defaults (lib/imapoptions, libsasl). */
export const defaultAuthSettings: AuthSettings = {
  allowPlaintext: false,
  saslMinimumLayer: 0,
  saslMaximumLayer: 256,
  externalSsf: 0,
  mechList: undefined,
  pwcheckMethod: undefined,
  saslauthdPath: undefined,
  saslauthdTimeout: Duration.seconds(30),
  admins: "",
  proxyServers: "",
  loginRealms: "",
  virtdomains: "off",
  defaultDomain: undefined,
  usernameToLower: true,
  failedLoginPause: Duration.seconds(3),
  skipPasswordCheck: false,
  cyrusUser: undefined
}

export const makeAuthSettings = (overrides: Partial<AuthSettings>): AuthSettings => ({
  ...defaultAuthSettings,
  ...overrides
})

/**
 * How Cyrus hands options to libsasl: `sasl_<plugin>_<option>` first (when a plugin asks),
 * then `sasl_<option>`. `lookup` returns the raw imapd.conf value of a key (the config layer
 * already applies its `<service>_` prefix rule).
 */
export const saslOption = (
  lookup: (key: string) => string | undefined,
  option: string,
  plugin?: string
): string | undefined =>
  (plugin === undefined ? undefined : lookup(`sasl_${plugin}_${option}`)) ?? lookup(`sasl_${option}`)
