import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import { makeAuthenticator } from "../../src/auth/authenticator.js"
import { startExchange } from "../../src/auth/exchange.js"
import { tcpConnection } from "../../src/auth/mechanisms.js"
import type { PasswordCheckerShape } from "../../src/auth/passwordCheck.js"
import { saslFailure } from "../../src/auth/SaslResult.js"
import type { AuthSettings } from "../../src/auth/settings.js"
import { b64, play, testSettings } from "./support.js"

// A real in-process verifier (not a mock of anything external): one known password.
const onePassword: PasswordCheckerShape = {
  check: (user, password) =>
    Effect.succeed(password === "secret" ? "OK" : saslFailure("BADAUTH", `bad password for ${user}`))
}

const run = (settings: AuthSettings, mech: string, init: string | undefined, lines: ReadonlyArray<string> = []) =>
  play(startExchange({ settings, connection: tcpConnection(settings), passwords: onePassword }, mech, init), lines)

// Transcript texts below were observed from the real backupd 3.6.1 (see docs/authentication.md).
describe("PLAIN", () => {
  const s = testSettings()

  it.effect("good password with initial response", () =>
    Effect.gen(function* () {
      const r = yield* run(s, "PLAIN", b64("\0admin\0secret"))
      expect(r.lines).toEqual(["OK Success (no protection)"])
      expect(r.final).toMatchObject({ _tag: "Success", userid: "admin", authcid: "admin", isAdmin: true })
    }))

  it.effect("bad password", () =>
    Effect.gen(function* () {
      const r = yield* run(s, "PLAIN", "AGFkbWluAHdyb25n")
      expect(r.lines).toEqual(["NO authentication failure"])
      expect(r.final).toMatchObject({ _tag: "Failure", kind: "Rejected", result: "BADAUTH" })
    }))

  it.effect("no initial response: empty challenge, then the credentials", () =>
    Effect.gen(function* () {
      const r = yield* run(s, "PLAIN", undefined, [b64("\0admin\0secret")])
      expect(r.lines).toEqual(["+ ", "OK Success (no protection)"])
    }))

  it.effect("cancel", () =>
    Effect.gen(function* () {
      const r = yield* run(s, "PLAIN", undefined, ["*"])
      expect(r.lines).toEqual(["+ ", "BAD Client canceled authentication"])
      expect(r.final).toMatchObject({ kind: "Cancelled" })
    }))

  it.effect("protocol errors", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "PLAIN", "=")).lines).toEqual(["NO bad protocol / cancel"])
      expect((yield* run(s, "PLAIN", "!!!!")).lines).toEqual(["NO bad protocol / cancel"])
      expect((yield* run(s, "PLAIN", "AA==")).lines).toEqual(["NO bad protocol / cancel"])
      expect((yield* run(s, "PLAIN", "AABhAA==")).lines).toEqual(["NO bad protocol / cancel"])
      // empty authcid: libsasl's "All-whitespace username"
      expect((yield* run(s, "PLAIN", "AAA=")).lines).toEqual(["NO generic failure"])
      // a leading CR is libsasl's generic failure
      expect((yield* run(s, "PLAIN", "\rAAA")).lines).toEqual(["NO generic failure"])
      // '&' is not allowed in ids
      expect((yield* run(s, "PLAIN", "AGFkJm1pbgB4")).lines).toEqual(["NO authentication failure"])
      // padding then more data
      expect((yield* run(s, "PLAIN", "AA==AAAA")).lines).toEqual(["NO bad protocol / cancel"])
    }))

  it.effect("incomplete base64: empty challenge, then the protocol error", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "PLAIN", "AGFkbWluAHd", ["AUTHENTICATE CRAM-MD5"])).lines).toEqual([
        "+ ",
        "NO bad protocol / cancel"
      ])
      expect((yield* run(s, "PLAIN", "AGFk1", [b64("\0admin\0secret")])).lines).toEqual([
        "+ ",
        "NO bad protocol / cancel"
      ])
    }))

  it.effect("mechanism names: case-insensitive, -PLUS accepted, unknown refused", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "plain", b64("\0admin\0secret"))).lines).toEqual(["OK Success (no protection)"])
      expect((yield* run(s, "PLAIN-PLUS", b64("\0admin\0secret"))).lines).toEqual(["OK Success (no protection)"])
      expect((yield* run(s, "CRAM-MD5", undefined)).lines).toEqual(["NO no mechanism available"])
      expect((yield* run(s, "EXTERNAL", undefined)).lines).toEqual(["NO no mechanism available"])
      const hidden = testSettings({ allowPlaintext: false })
      expect((yield* run(hidden, "PLAIN", b64("\0admin\0secret"))).lines).toEqual([
        "NO encryption needed to use mechanism"
      ])
      const tooWeak = testSettings({ saslMinimumLayer: 1 })
      expect((yield* run(tooWeak, "PLAIN", b64("\0admin\0secret"))).lines).toEqual([
        "NO mechanism too weak for this user"
      ])
    }))

  it.effect("decoded response of 21848 bytes or more overflows libsasl's buffer", () =>
    Effect.gen(function* () {
      const big = b64("\0admin\0" + "x".repeat(21848))
      expect((yield* run(s, "PLAIN", big)).lines).toEqual(["NO overflowed buffer"])
    }))
})

describe("LOGIN", () => {
  const s = testSettings()

  it.effect("Username: / Password: challenges", () =>
    Effect.gen(function* () {
      const r = yield* run(s, "LOGIN", undefined, [b64("admin"), b64("secret")])
      expect(r.lines).toEqual(["+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6", "OK Success (no protection)"])
      expect(Buffer.from("VXNlcm5hbWU6", "base64").toString()).toBe("Username:")
    }))

  it.effect("user name as initial response; '=' still asks for it", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "LOGIN", "YWRtaW4=", ["*"])).lines).toEqual([
        "+ UGFzc3dvcmQ6",
        "BAD Client canceled authentication"
      ])
      expect((yield* run(s, "LOGIN", "=", [b64("admin"), b64("nope")])).lines).toEqual([
        "+ VXNlcm5hbWU6",
        "+ UGFzc3dvcmQ6",
        "NO authentication failure"
      ])
    }))

  it.effect("an incomplete base64 answer ends the exchange", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "LOGIN", "=", ["abc"])).lines).toEqual([
        "+ VXNlcm5hbWU6",
        "NO another step is needed in authentication"
      ])
    }))

  it.effect("over-long user name or password", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "LOGIN", undefined, [b64("u".repeat(1025))])).lines).toEqual([
        "+ VXNlcm5hbWU6",
        "NO bad protocol / cancel"
      ])
      expect((yield* run(s, "LOGIN", undefined, [b64("admin"), b64("p".repeat(1025))])).lines).toEqual([
        "+ VXNlcm5hbWU6",
        "+ UGFzc3dvcmQ6",
        "NO bad protocol / cancel"
      ])
    }))
})

describe("EXTERNAL", () => {
  const s = testSettings({ mechList: undefined, admins: "certadmin" })
  const ext = (id: string, init: string | undefined, lines: ReadonlyArray<string> = []) =>
    play(
      startExchange({ settings: s, connection: { externalSsf: 256, externalAuthId: id }, passwords: onePassword }, "EXTERNAL", init),
      lines
    )

  it.effect("uses the link identity; asks with an empty challenge", () =>
    Effect.gen(function* () {
      expect((yield* ext("CertAdmin", "=")).final).toMatchObject({ _tag: "Success", userid: "certadmin", isAdmin: true })
      expect((yield* ext("certadmin", undefined, [""])).lines).toEqual(["+ ", "OK Success (no protection)"])
      expect((yield* ext("anonymous", "=")).lines).toEqual(["NO authorization failure"])
    }))

  it.effect("an admin link identity may act for another user (not admin then)", () =>
    Effect.gen(function* () {
      expect((yield* ext("certadmin", b64("alice"))).final).toMatchObject({
        _tag: "Success",
        userid: "alice",
        authcid: "certadmin",
        isAdmin: false
      })
      expect((yield* ext("bob", b64("alice"))).lines).toEqual(["NO authentication failure"])
    }))
})

describe("authorisation and canonicalisation", () => {
  const s = testSettings({ admins: "admin other", proxyServers: "proxy" })

  it.effect("non-admins authenticate but are not admin", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "PLAIN", b64("\0bob\0secret"))).final).toMatchObject({
        _tag: "Success",
        userid: "bob",
        isAdmin: false,
        reply: "OK Success (no protection)"
      })
    }))

  it.effect("proxying needs an admin or proxyservers authcid and is never admin", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "PLAIN", b64("alice\0admin\0secret"))).final).toMatchObject({
        _tag: "Success",
        userid: "alice",
        authcid: "admin",
        isAdmin: false
      })
      expect((yield* run(s, "PLAIN", b64("alice\0proxy\0secret"))).final).toMatchObject({ userid: "alice", isAdmin: false })
      expect((yield* run(s, "PLAIN", b64("alice\0bob\0secret"))).lines).toEqual(["NO authentication failure"])
    }))

  it.effect("ids that canonicalise alike are not proxying", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "PLAIN", b64("ADMIN\0 Admin \0secret"))).final).toMatchObject({
        userid: "admin",
        isAdmin: true
      })
      const caseKept = testSettings({ usernameToLower: false })
      expect((yield* run(caseKept, "PLAIN", b64("\0Admin\0secret"))).final).toMatchObject({
        userid: "Admin",
        isAdmin: false
      })
    }))

  it.effect("cross-realm ids need loginrealms", () =>
    Effect.gen(function* () {
      expect((yield* run(s, "PLAIN", b64("\0admin@example.com\0secret"))).lines).toEqual(["NO authentication failure"])
      const realms = testSettings({ loginRealms: "foo EXAMPLE.com" })
      expect((yield* run(realms, "PLAIN", b64("\0admin@example.com\0secret"))).final).toMatchObject({
        userid: "admin@example.com",
        isAdmin: false
      })
    }))

  it.effect("virtdomains: % becomes @, the default domain is dropped", () =>
    Effect.gen(function* () {
      const v = testSettings({ virtdomains: "userid", defaultDomain: "example.com" })
      expect((yield* run(v, "PLAIN", b64("\0admin%EXAMPLE.com\0secret"))).final).toMatchObject({
        userid: "admin",
        isAdmin: true
      })
      expect((yield* run(v, "PLAIN", b64("\0bob@other.org\0secret"))).final).toMatchObject({ userid: "bob@other.org" })
    }))
})

describe("failedloginpause", () => {
  it.effect("sleeps before a rejection, not before a cancel", () =>
    Effect.gen(function* () {
      const s = testSettings({ failedLoginPause: Duration.seconds(3) })
      const fiber = yield* Effect.fork(run(s, "PLAIN", "AGFkbWluAHdyb25n"))
      yield* TestClock.adjust(Duration.millis(2999))
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.millis(1))
      expect((yield* Fiber.join(fiber)).lines).toEqual(["NO authentication failure"])
      // a cancel answers at once
      expect((yield* run(s, "PLAIN", undefined, ["*"])).lines).toEqual(["+ ", "BAD Client canceled authentication"])
    }))
})

describe("Authenticator", () => {
  it.effect("refuses unsupported pwcheck methods at construction", () =>
    Effect.gen(function* () {
      const e1 = yield* Effect.flip(makeAuthenticator(testSettings({ pwcheckMethod: "auxprop" })))
      expect(e1._tag).toBe("UnsupportedPwcheckMethod")
      expect(e1.message).toContain(`"auxprop"`)
      const e2 = yield* Effect.flip(makeAuthenticator(testSettings({ pwcheckMethod: undefined })))
      expect(e2).toMatchObject({ method: "auxprop", defaulted: true })
      const e3 = yield* Effect.flip(makeAuthenticator(testSettings({ pwcheckMethod: "saslauthd pwcheck" })))
      expect(e3).toMatchObject({ method: "pwcheck", defaulted: false })
    }))

  it.effect("-N skips the password check but not the admin rule", () =>
    Effect.gen(function* () {
      const auth = yield* makeAuthenticator(testSettings({ pwcheckMethod: "auxprop", skipPasswordCheck: true }))
      const conn = tcpConnection(auth.settings)
      expect((yield* play(auth.start(conn, "PLAIN", b64("\0admin\0anything")), [])).final).toMatchObject({
        isAdmin: true
      })
      expect((yield* play(auth.start(conn, "PLAIN", b64("\0bob\0anything")), [])).final).toMatchObject({
        isAdmin: false
      })
    }))

  it.effect("UNIX-socket identity: $CYRUS_USER, then cyrus_user, then cyrus", () =>
    Effect.gen(function* () {
      const s = testSettings({ cyrusUser: "mailsrv" })
      expect((yield* makeAuthenticator(s, { CYRUS_USER: "envuser" })).unixSocketIdentity).toEqual({
        userid: "envuser",
        isAdmin: true
      })
      expect((yield* makeAuthenticator(s, {})).unixSocketIdentity.userid).toBe("mailsrv")
      expect((yield* makeAuthenticator(testSettings(), {})).unixSocketIdentity.userid).toBe("cyrus")
    }))

  it.effect("alwaystrue after a failing saslauthd still accepts (methods tried in order)", () =>
    Effect.gen(function* () {
      const auth = yield* makeAuthenticator(
        testSettings({ pwcheckMethod: "saslauthd alwaystrue", saslauthdPath: "/nonexistent/mux" })
      )
      const r = yield* play(auth.start(tcpConnection(auth.settings), "PLAIN", b64("\0admin\0x")), [])
      expect(r.lines).toEqual(["OK Success (no protection)"])
      const only = yield* makeAuthenticator(testSettings({ pwcheckMethod: "saslauthd", saslauthdPath: "/nonexistent/mux" }))
      expect((yield* play(only.start(tcpConnection(only.settings), "PLAIN", b64("\0admin\0x")), [])).lines).toEqual([
        "NO generic failure"
      ])
    }))
})
