/**
 * TLS server options from imapd.conf: `tls_server_cert` and `tls_server_key` (both set and
 * neither `disabled` enables TLS, as Cyrus decides), `tls_client_ca_file` (client
 * certificates are then requested and verified, for SASL EXTERNAL), `tls_versions` (e.g.
 * `tls1_2 tls1_3`) and `tls_ciphers` (an OpenSSL cipher list).
 */
import * as fs from "node:fs"
import type * as tls from "node:tls"
import type { CyrusConfig } from "../config/index.js"

const VERSION_NAMES: Record<string, tls.SecureVersion> = {
  tls1_0: "TLSv1",
  tls1_1: "TLSv1.1",
  tls1_2: "TLSv1.2",
  tls1_3: "TLSv1.3"
}
const ORDER: ReadonlyArray<tls.SecureVersion> = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]

const enabled = (v: string | undefined): v is string => v !== undefined && v !== "" && v.toLowerCase() !== "disabled"

/** Undefined when TLS is not configured. Certificate files are read when called. */
export const tlsOptionsFrom = (config: CyrusConfig): tls.TlsOptions | undefined => {
  if (!enabled(config.tlsServerCert) || !enabled(config.tlsServerKey)) return undefined
  const versions = config.tlsVersions
    .split(/\s+/)
    .map((v) => VERSION_NAMES[v.toLowerCase()])
    .filter((v): v is tls.SecureVersion => v !== undefined)
    .sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b))
  const options: tls.TlsOptions = {
    cert: fs.readFileSync(config.tlsServerCert),
    key: fs.readFileSync(config.tlsServerKey),
    ...(versions.length > 0 ? { minVersion: versions[0]!, maxVersion: versions[versions.length - 1]! } : {}),
    ...(config.tlsCiphers !== "" ? { ciphers: config.tlsCiphers } : {})
  }
  if (enabled(config.tlsClientCaFile)) {
    return { ...options, ca: fs.readFileSync(config.tlsClientCaFile), requestCert: true, rejectUnauthorized: false }
  }
  return options
}
