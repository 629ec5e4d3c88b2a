import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Duration, Effect } from "effect"
import { makeAuthenticator } from "../../src/auth/Authenticator.js"
import { tcpConnection } from "../../src/auth/mechanisms.js"
import { makePasswordChecker } from "../../src/auth/passwordCheck.js"
import { encodeSaslauthdRequest, saslauthdRoundTrip } from "../../src/auth/saslauthdClient.js"
import { b64, play, testSettings } from "./support.js"

describe("saslauthd request encoding", () => {
  it("four counted strings, big-endian lengths, NUL ends a field", () => {
    const req = encodeSaslauthdRequest({ login: "bob", password: "pw\0ignored", service: "csync", realm: "" })
    // 00 03 "bob" 00 02 "pw" 00 05 "csync" 00 00
    expect(req?.toString("hex")).toBe("0003626f62" + "00027077" + "00056373796e63" + "0000")
  })
  it("refuses requests libsasl would find too large", () => {
    expect(encodeSaslauthdRequest({ login: "u", password: "p".repeat(9000), service: "csync", realm: "" })).toBeUndefined()
  })
})

describe("saslauthd client against a socket that never answers", () => {
  // it.live: the timeout needs the real clock.
  it.live("times out with SaslauthdError and the login fails generically", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "auth-silent-"))
      const sock = path.join(dir, "mux")
      const server = net.createServer(() => {})
      yield* Effect.async<void>((resume) => {
        server.listen(sock, () => resume(Effect.void))
      })
      try {
        const req = encodeSaslauthdRequest({ login: "a", password: "b", service: "csync", realm: "" })!
        const err = yield* Effect.flip(saslauthdRoundTrip(sock, req, Duration.millis(200)))
        expect(err._tag).toBe("SaslauthdError")
        const checker = yield* makePasswordChecker(
          testSettings({ pwcheckMethod: "saslauthd", saslauthdPath: sock, saslauthdTimeout: Duration.millis(200) })
        )
        expect(yield* checker.check("a", "b")).toMatchObject({ result: "FAIL" })
      } finally {
        server.close()
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))
})

// --- a real saslauthd ----------------------------------------------------------------
//
// saslauthd's sasldb backend always reads /etc/sasldb2. So that the host's file is never
// touched, the daemon runs in a private mount namespace where our own sasldb is bind-mounted
// over that path. That needs root, unshare and an existing /etc/sasldb2 to mount over.

const SASLAUTHD = "/usr/sbin/saslauthd"
const SASLPASSWD2 = "/usr/sbin/saslpasswd2"
const missing = [
  !fs.existsSync(SASLAUTHD) && SASLAUTHD,
  !fs.existsSync(SASLPASSWD2) && SASLPASSWD2,
  !fs.existsSync("/usr/bin/unshare") && "/usr/bin/unshare",
  !fs.existsSync("/etc/sasldb2") && "/etc/sasldb2 (bind-mount target)",
  process.getuid?.() !== 0 && "root privileges"
].filter((x): x is string => typeof x === "string")
if (missing.length > 0) {
  console.warn(`SKIPPING real-saslauthd tests: missing ${missing.join(", ")} (Debian package sasl2-bin)`)
}

describe.skipIf(missing.length > 0)("real saslauthd (-a sasldb)", () => {
  let dir = ""
  let daemon: ChildProcess | undefined
  const host = os.hostname()

  const addUser = (user: string, realm: string, password: string) =>
    execFileSync(SASLPASSWD2, ["-p", "-c", "-f", path.join(dir, "sasldb2"), "-u", realm, user], { input: password })

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "auth-saslauthd-"))
    fs.mkdirSync(path.join(dir, "run"))
    // No realm from the client means saslauthd uses its host name.
    addUser("admin", host, "adminpw")
    addUser("bob", host, "bobpw")
    addUser("carol", "example.org", "carolpw")
    const script = `mount --bind "$1/sasldb2" /etc/sasldb2 && exec ${SASLAUTHD} -a sasldb -m "$1/run" -n 1 -d`
    daemon = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script, "sh", dir], {
      detached: true,
      stdio: "ignore"
    })
    const mux = path.join(dir, "run", "mux")
    for (let i = 0; i < 100 && !fs.existsSync(mux); i++) await new Promise((r) => setTimeout(r, 50))
    if (!fs.existsSync(mux)) throw new Error("saslauthd did not create its socket")
  })

  afterAll(async () => {
    if (daemon?.pid !== undefined && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon!.once("exit", r))
      process.kill(-daemon.pid, "SIGTERM") // the process group we created
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
    }
    if (dir !== "") fs.rmSync(dir, { recursive: true, force: true })
  })

  const settings = () =>
    testSettings({ pwcheckMethod: "saslauthd", saslauthdPath: path.join(dir, "run", "mux"), admins: "admin" })

  it.effect("accepts good passwords and refuses bad ones", () =>
    Effect.gen(function* () {
      const checker = yield* makePasswordChecker(settings())
      expect(yield* checker.check("admin", "adminpw")).toBe("OK")
      expect(yield* checker.check("admin", "wrong")).toMatchObject({ result: "BADAUTH" })
      expect(yield* checker.check("nobody", "adminpw")).toMatchObject({ result: "BADAUTH" })
      // user@realm goes to saslauthd as login + realm
      expect(yield* checker.check("carol@example.org", "carolpw")).toBe("OK")
      expect(yield* checker.check("carol", "carolpw")).toMatchObject({ result: "BADAUTH" })
    }))

  it.effect("full PLAIN and LOGIN exchanges", () =>
    Effect.gen(function* () {
      const auth = yield* makeAuthenticator(settings())
      const conn = tcpConnection(auth.settings)
      expect((yield* play(auth.start(conn, "PLAIN", b64("\0admin\0adminpw")), [])).lines).toEqual([
        "OK Success (no protection)"
      ])
      expect((yield* play(auth.start(conn, "PLAIN", b64("\0admin\0nope")), [])).lines).toEqual([
        "NO authentication failure"
      ])
      const login = yield* play(auth.start(conn, "LOGIN", undefined), [b64("Bob"), b64("bobpw")])
      expect(login.lines).toEqual(["+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6", "OK Success (no protection)"])
      expect(login.final).toMatchObject({ userid: "bob", isAdmin: false })
    }))
})
