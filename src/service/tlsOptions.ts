/**
 * TLS server options from imapd.conf: `tls_server_cert` and `tls_server_key` (both set and
 * neither `disabled` enables TLS, as Cyrus decides), `tls_client_ca_file` (client
 * certificates are then requested and verified, for SASL EXTERNAL), `tls_versions` (e.g.
 * `tls1_2 tls1_3`) and `tls_ciphers` (an OpenSSL cipher list).
 *
 * The certificate, key and CA files are read once, when the program starts: a file that
 * cannot be read then is a configuration error (exit 78), and a file changed or removed
 * afterwards cannot break a later connection. A new certificate takes effect when master
 * starts a new process (SIGHUP to master, or the process's `-U` uses run out).
 */
import { Data, Effect } from "effect"
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

/** A TLS file named by imapd.conf could not be read. */
export class TlsFileError extends Data.TaggedError("TlsFileError")<{
  readonly option: string
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.option}: cannot read ${this.path}: ${this.reason}`
  }
}

const readTlsFile = (option: string, path: string) =>
  Effect.try({
    try: () => fs.readFileSync(path),
    // Node's text is "ENOENT: no such file or directory, open '<path>'": keep the middle and the code
    catch: (e) => {
      const text = e instanceof Error ? e.message : String(e)
      const m = /^([A-Z0-9]+): (.*?), \w+ '.*'$/.exec(text)
      return new TlsFileError({ option, path, reason: m ? `${m[2]} (${m[1]})` : text })
    }
  })

/** Undefined when TLS is not configured; otherwise the options with the files' contents. */
export const loadTlsOptions = (config: CyrusConfig): Effect.Effect<tls.TlsOptions | undefined, TlsFileError> =>
  Effect.gen(function* () {
    if (!enabled(config.tlsServerCert) || !enabled(config.tlsServerKey)) return undefined
    const versions = config.tlsVersions
      .split(/\s+/)
      .map((v) => VERSION_NAMES[v.toLowerCase()])
      .filter((v): v is tls.SecureVersion => v !== undefined)
      .sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b))
    const options: tls.TlsOptions = {
      cert: yield* readTlsFile("tls_server_cert", config.tlsServerCert),
      key: yield* readTlsFile("tls_server_key", config.tlsServerKey),
      ...(versions.length > 0 ? { minVersion: versions[0]!, maxVersion: versions[versions.length - 1]! } : {}),
      ...(config.tlsCiphers !== "" ? { ciphers: config.tlsCiphers } : {})
    }
    if (!enabled(config.tlsClientCaFile)) return options
    const ca = yield* readTlsFile("tls_client_ca_file", config.tlsClientCaFile)
    return { ...options, ca, requestCert: true, rejectUnauthorized: false }
  })
