/**
 * TLS in our backupd, with a Node TLS client under the fake master: STARTTLS (banner sent
 * again, plaintext mechanisms only after TLS), implicit TLS with -s, a client certificate
 * authenticating with SASL EXTERNAL, and tls_versions.
 */
import { afterEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import { connectClient, type FakeMaster, haveOpenssl, makeCertificate, makeServerDir, plainAuth, startFakeMaster } from "./support/fakeMaster.js"

const opensslPresent = haveOpenssl()
if (!opensslPresent) console.warn("!!! SKIPPING TLS service tests: no openssl command to make certificates")

describe.skipIf(!opensslPresent)("TLS", () => {
  const cleanups: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })
  const serve = async (extraConf: (dir: string) => ReadonlyArray<string>, args: ReadonlyArray<string> = []) => {
    const certDir = fs.mkdtempSync("/tmp/cyb-tls-")
    cleanups.push(() => fs.rmSync(certDir, { recursive: true, force: true }))
    const server = makeServerDir(extraConf(certDir))
    cleanups.push(() => fs.rmSync(server.dir, { recursive: true, force: true }))
    const m: FakeMaster = await startFakeMaster(server, { args })
    cleanups.push(() => m.close())
    await m.ready()
    return { m, certDir }
  }
  const serverCert = (dir: string) => {
    const c = makeCertificate(dir, "localhost")
    return [`tls_server_cert: ${c.cert}`, `tls_server_key: ${c.key}`]
  }

  it("STARTTLS: advertised, re-sends the banner, and only then offers PLAIN (allowplaintext: no)", async () => {
    const { m } = await serve((dir) => [...serverCert(dir), "backupd_allowplaintext: no"])
    const c = await connectClient(m.port)
    const before = await c.banner()
    expect(before).toContain("* STARTTLS")
    expect(before.some((l) => l.startsWith("* SASL") && l.includes("PLAIN"))).toBe(false)
    c.send(plainAuth("admin"))
    expect(await c.line()).toMatch(/^NO /)
    c.send("STARTTLS\r\n")
    expect(await c.line()).toBe("OK Begin TLS negotiation now")
    await c.startTls()
    const after = await c.banner()
    expect(after).toContain("* SASL PLAIN")
    expect(after).not.toContain("* STARTTLS")
    c.send(plainAuth("admin"))
    expect(await c.line()).toMatch(/^OK Success/)
    c.send("STARTTLS\r\nEXIT\r\n")
    expect(await c.line()).toMatch(/^(NO|BAD)/)
    expect(await c.line()).toBe("OK Finished")
    await c.closed
    expect(m.stderr()).toMatch(/login: \[127\.0\.0\.1\] admin PLAIN\+TLS User logged in/)
  })

  it("-s: TLS from the first byte; no STARTTLS offered", async () => {
    const { m } = await serve((dir) => serverCert(dir), ["-s"])
    const c = await connectClient(m.port, {})
    const banner = await c.banner()
    expect(banner).not.toContain("* STARTTLS")
    expect(banner.at(-1)).toMatch(/^\* OK svc-test /)
    c.send(plainAuth("admin") + "EXIT\r\n")
    expect(await c.line()).toMatch(/^OK Success/)
    expect(await c.line()).toBe("OK Finished")
    expect(m.stderr()).toMatch(/admin PLAIN\+TLS User logged in/)
  })

  it("a client certificate signed by tls_client_ca_file logs in with SASL EXTERNAL", async () => {
    let client: { cert: string; key: string } | undefined
    const { m } = await serve((dir) => {
      client = makeCertificate(dir, "admin", "client")
      return [...serverCert(dir), `tls_client_ca_file: ${client.cert}`, "backupd_sasl_mech_list: PLAIN EXTERNAL"]
    }, ["-s"])
    const c = await connectClient(m.port, { cert: fs.readFileSync(client!.cert), key: fs.readFileSync(client!.key) })
    const banner = await c.banner()
    expect(banner.find((l) => l.startsWith("* SASL"))).toMatch(/EXTERNAL/)
    c.send("AUTHENTICATE EXTERNAL =\r\nEXIT\r\n")
    expect(await c.line()).toMatch(/^OK Success/)
    expect(await c.line()).toBe("OK Finished")
    expect(m.stderr()).toMatch(/login: \[127\.0\.0\.1\] admin EXTERNAL\+TLS User logged in/)
  })

  it("certificate and key are read once at start: removing them later breaks no connection", async () => {
    const { m, certDir } = await serve((dir) => serverCert(dir))
    const session = async () => {
      const c = await connectClient(m.port)
      expect(await c.banner()).toContain("* STARTTLS")
      c.send("STARTTLS\r\n")
      expect(await c.line()).toBe("OK Begin TLS negotiation now")
      await c.startTls()
      expect((await c.banner()).at(-1)).toMatch(/^\* OK svc-test /)
      c.send(plainAuth("admin") + "EXIT\r\n")
      expect(await c.line()).toMatch(/^OK Success/)
      expect(await c.line()).toBe("OK Finished")
      await c.closed
    }
    await session()
    for (const f of fs.readdirSync(certDir)) fs.rmSync(`${certDir}/${f}`)
    await session()
    expect(m.stderr()).not.toMatch(/internal error|session error/)
  })

  it("tls_versions limits the protocol versions", async () => {
    const { m } = await serve((dir) => [...serverCert(dir), "tls_versions: tls1_3"], ["-s"])
    await expect(connectClient(m.port, { maxVersion: "TLSv1.2" })).rejects.toThrow()
    const c = await connectClient(m.port, {})
    expect((c.socket as import("node:tls").TLSSocket).getProtocol()).toBe("TLSv1.3")
    expect((await c.banner()).at(-1)).toMatch(/^\* OK /)
  })
})
