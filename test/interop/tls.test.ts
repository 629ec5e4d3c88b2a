/**
 * TLS between the REAL sync_client and our backupd under the real master, with a self-signed
 * certificate made here:
 *  - STARTTLS: `allowplaintext: no` for backupd leaves sync_client no usable mechanism before
 *    TLS, so it sends STARTTLS, reads the banner again and logs in with PLAIN over TLS;
 *  - implicit TLS (`backupd -s`): sync_client speaks TLS from the first byte when its host is
 *    written `host:port/tls` (Cyrus's backend option).
 * sync_client does not verify the server certificate (Cyrus 3.6 clients use SSL_VERIFY_NONE);
 * `tls_server_ca_file` is set anyway, as a real deployment would.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  chownCyrusRecursive,
  haveCyrus,
  makeCyrusTempRoot,
  populate,
  runCtlBackups,
  runSyncClient,
  type SourceInstance,
  startBackupServer,
  startSource,
  warnIfNoCyrus,
  writeCyrusFile
} from "../harness/index.js"
import { ensureBuilt, haveOpenssl, makeCertificate } from "../service/support/fakeMaster.js"
import { MASTER_COMPLAINTS } from "../service/support/masterLog.js"

const cyrusPresent = haveCyrus() && haveOpenssl()
warnIfNoCyrus("TLS with the real sync_client")
if (haveCyrus() && !haveOpenssl()) console.warn("!!! SKIPPING TLS interop suite: no openssl command to make a certificate")

const BACKUPD = path.resolve("bin/backupd")

const certificates = Effect.gen(function* () {
  const dir = yield* makeCyrusTempRoot("tls")
  const server = makeCertificate(dir, "localhost")
  yield* chownCyrusRecursive(dir)
  return server
})

/** Rewrites one `key: value` line of the source's imapd.conf and appends `extra` lines. */
const editSourceConf = (source: SourceInstance, key: string, value: string, extra: ReadonlyArray<string> = []) =>
  Effect.gen(function* () {
    const text = fs.readFileSync(source.conf, "latin1")
    const lines = text.split("\n").map((l) => (l.startsWith(`${key}:`) ? `${key}: ${value}` : l))
    yield* writeCyrusFile(source.conf, [...lines.filter((l) => l !== ""), ...extra, ""].join("\n"))
  })

const backupAndVerify = (tlsArgs: ReadonlyArray<string>, extraConf: ReadonlyArray<string>, implicit: boolean) =>
  Effect.gen(function* () {
    ensureBuilt()
    const cert = yield* certificates
    const backup = yield* startBackupServer({
      backupdCmd: BACKUPD,
      backupdArgs: tlsArgs,
      extraConf: [
        "backupd_sasl_pwcheck_method: alwaystrue",
        `tls_server_cert: ${cert.cert}`,
        `tls_server_key: ${cert.key}`,
        ...extraConf
      ]
    })
    const source = yield* startSource({ backupPort: backup.port })
    yield* populate(source, { messages: 8, seed: 11 })
    yield* editSourceConf(
      source,
      "backup_sync_host",
      implicit ? `127.0.0.1:${backup.port}/tls` : "127.0.0.1",
      [`tls_server_ca_file: ${cert.cert}`]
    )
    const sync = yield* runSyncClient(source, ["-A"], { timeout: "90 seconds" })
    expect(sync.exitCode, sync.stdout + sync.stderr).toBe(0)
    yield* backup.awaitBackupsClosed()
    const verify = yield* runCtlBackups(backup, ["verify", "-A"])
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
    const list = yield* runCtlBackups(backup, ["list"])
    for (const user of ["alice", "bob", "carol"]) expect(list.stdout).toContain(user)
    expect(yield* backup.masterLog).not.toMatch(MASTER_COMPLAINTS)
    return backup
  })

describe.skipIf(!cyrusPresent)("TLS between the real sync_client and our backupd", () => {
  it.live(
    "STARTTLS: no plaintext mechanism before TLS, PLAIN after it",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const backup = yield* backupAndVerify([], ["backupd_allowplaintext: no"], false)
          if (backup.syslogCapture.available) {
            const lines = yield* backup.syslog
            expect(lines.some((l) => /backupd\[\d+\]: login: \S+ admin PLAIN\+TLS User logged in/.test(l)), lines.join("\n")).toBe(true)
          }
        })
      ),
    180_000
  )

  it.live(
    "implicit TLS (-s): TLS from the first byte",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const backup = yield* backupAndVerify(["-s"], [], true)
          if (backup.syslogCapture.available) {
            const lines = yield* backup.syslog
            expect(lines.some((l) => /backupd\[\d+\]: login: \S+ admin PLAIN\+TLS User logged in/.test(l)), lines.join("\n")).toBe(true)
          }
        })
      ),
    180_000
  )
})
