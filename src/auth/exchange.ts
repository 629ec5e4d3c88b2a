/**
 * The server side of one AUTHENTICATE exchange, as a small state machine. The session
 * calls `startExchange` with the mechanism and optional initial response; every
 * `Challenge` tells it the line to send and how to continue with the client's answer line.
 * The machine knows no sockets: the session does the I/O (and answers read errors itself,
 * see `readErrorReply`).
 */
import { Duration, Effect } from "effect"
import { authorize } from "./Authorization.js"
import { decode64, encode64 } from "./base64.js"
import { canonicalizeUser } from "./canonicalUser.js"
import { candidateMechanisms, mechanismPermitted, type MechanismSpec, sameMechanism, type SaslConnection } from "./mechanisms.js"
import type { PasswordCheckerShape } from "./passwordCheck.js"
import { saslErrorText, saslFailure, type SaslFailure, type SaslResult } from "./SaslResult.js"
import type { AuthSettings } from "./settings.js"

export type AuthStep = Challenge | AuthSuccess | AuthFailure

export interface Challenge {
  readonly _tag: "Challenge"
  /** The line to send, without CRLF: `+ <base64>`, or `+ ` for an empty challenge. */
  readonly line: string
  /** Feed the client's next line (CRLF or LF may still be attached). */
  readonly respond: (line: string) => Effect.Effect<AuthStep>
}

export interface AuthSuccess {
  readonly _tag: "Success"
  /** The session user id: the canonical authorisation id. */
  readonly userid: string
  /** The canonical authentication id (differs from `userid` when proxying). */
  readonly authcid: string
  /** False for non-admins and for every proxied login: later commands get `NO Permission denied`. */
  readonly isAdmin: boolean
  /** The mechanism word as the client sent it (for the `login:` log line). */
  readonly mechanism: string
  /** The negotiated security layer: always 0 for our mechanisms. */
  readonly ssf: number
  /** `OK Success (no protection)` */
  readonly reply: string
}

export interface AuthFailure {
  readonly _tag: "Failure"
  /** `Cancelled`: the client sent `*`. `Rejected`: SASL failed (after `failedloginpause`). */
  readonly kind: "Cancelled" | "Rejected"
  /** The complete reply line without CRLF. */
  readonly reply: string
  /** The libsasl result behind a rejection. */
  readonly result: SaslResult | undefined
  /** Detail for the `badlogin:` log line. */
  readonly detail: string
  readonly mechanism: string
}

export const CANCEL_REPLY = "BAD Client canceled authentication"
export const ALREADY_AUTHENTICATED_REPLY = "BAD Already authenticated"
/** What the admin gate answers to every command of a non-admin session. */
export const PERMISSION_DENIED_REPLY = "NO Permission denied"
/** EOF or an I/O error while waiting for a response line. */
export const readErrorReply = (errorText?: string): string => `NO Error reading client response: ${errorText ?? ""}`

/** backupd's wording of the negotiated SSF (no TLS: backupd 3.6.1 never completes STARTTLS). */
export const ssfMessage = (ssf: number, tls = false): string =>
  tls
    ? ssf === 0 ? "tls protection" : ssf === 1 ? "tls plus integrity protection" : "tls plus privacy protection"
    : ssf === 0 ? "no protection" : ssf === 1 ? "integrity protection" : "privacy protection"

/** Everything an exchange needs besides the client's bytes. */
export interface ExchangeEnv {
  readonly settings: AuthSettings
  readonly connection: SaslConnection
  readonly passwords: PasswordCheckerShape
}

// --- mechanism steps ---------------------------------------------------------

type MechOutcome =
  | { readonly _tag: "Continue"; readonly serverOut: string; readonly next: MechStep }
  | { readonly _tag: "Done"; readonly authzid: string; readonly authcid: string }
  | { readonly _tag: "Fail"; readonly failure: SaslFailure }

/** One step of a mechanism; `clientIn` is undefined only for a server-first start. */
type MechStep = (clientIn: string | undefined) => Effect.Effect<MechOutcome>

const failWith = (result: SaslResult, detail: string): Effect.Effect<MechOutcome> =>
  Effect.succeed({ _tag: "Fail", failure: saslFailure(result, detail) })

const untilNul = (s: string): string => {
  const i = s.indexOf("\0")
  return i < 0 ? s : s.slice(0, i)
}

/** Canonicalise the authcid, check the password, canonicalise a distinct authzid. */
const verifyCredentials = (
  env: ExchangeEnv,
  authzRaw: string | undefined,
  authcRaw: string,
  password: string
): Effect.Effect<MechOutcome> =>
  Effect.gen(function* () {
    const authc = canonicalizeUser(env.settings, authcRaw, env.connection)
    if (authc._tag === "Err") return { _tag: "Fail", failure: authc.failure } as const
    const verdict = yield* env.passwords.check(authc.id, password)
    if (verdict !== "OK") return { _tag: "Fail", failure: verdict } as const
    if (authzRaw === undefined) return { _tag: "Done", authzid: authc.id, authcid: authc.id } as const
    const authz = canonicalizeUser(env.settings, authzRaw, env.connection)
    if (authz._tag === "Err") return { _tag: "Fail", failure: authz.failure } as const
    return { _tag: "Done", authzid: authz.id, authcid: authc.id } as const
  })

/** PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`. */
const plainStep = (env: ExchangeEnv): MechStep => (clientIn) => {
  const data = clientIn ?? ""
  const n = data.length
  let i = 0
  while (i < n && data.charCodeAt(i) !== 0) i++
  if (i >= n) return failWith("BADPROT", "Can only find author (no password)")
  const author = data.slice(0, i)
  const authenStart = ++i
  while (i < n && data.charCodeAt(i) !== 0) i++
  if (i >= n) return failWith("BADPROT", "Can only find author/en (no password)")
  const authen = data.slice(authenStart, i)
  const passStart = ++i
  while (i < n && data.charCodeAt(i) !== 0) i++
  if (i !== n) return failWith("BADPROT", "Got more data than we were expecting in the PLAIN plugin")
  const password = data.slice(passStart, i)
  // The raw comparison decides whether a separate authzid is canonicalised at all.
  const separateAuthz = author.length > 0 && author !== authen
  return verifyCredentials(env, separateAuthz ? author : undefined, authen, password)
}

const LOGIN_MAX = 1024

/** LOGIN (draft-murchison-sasl-login): the server asks for the user name, then the password. */
const loginStep = (env: ExchangeEnv): MechStep => {
  const askPassword = (clientIn: string): Effect.Effect<MechOutcome> => {
    if (clientIn.length > LOGIN_MAX) return failWith("BADPROT", "username too long (>1024 characters)")
    const username = untilNul(clientIn)
    const passwordStep: MechStep = (pw) => {
      const data = pw ?? ""
      if (data.length > LOGIN_MAX) return failWith("BADPROT", "clientinlen is > 1024 characters in LOGIN plugin")
      return verifyCredentials(env, undefined, username, untilNul(data))
    }
    return Effect.succeed({ _tag: "Continue", serverOut: "Password:", next: passwordStep })
  }
  return (clientIn) =>
    clientIn === undefined || clientIn.length === 0
      ? Effect.succeed({ _tag: "Continue", serverOut: "Username:", next: (c) => askPassword(c ?? "") })
      : askPassword(clientIn)
}

/** EXTERNAL (RFC 4422 app. A): the link's identity, optionally acting for an authzid. */
const externalStep = (env: ExchangeEnv): MechStep => {
  const step: MechStep = (clientIn) => {
    const authId = env.connection.externalAuthId
    if (authId === undefined) return failWith("BADPROT", "no external identity")
    if (clientIn !== undefined && clientIn.length > 16384) return failWith("BADPROT", "authorization id too long")
    if (authId === "anonymous") return failWith("NOAUTHZ", "anonymous login not allowed")
    if (clientIn === undefined) return Effect.succeed({ _tag: "Continue", serverOut: "", next: step })
    const authc = canonicalizeUser(env.settings, authId, env.connection)
    if (clientIn.length === 0) {
      return Effect.succeed(
        authc._tag === "Err"
          ? { _tag: "Fail", failure: authc.failure }
          : { _tag: "Done", authzid: authc.id, authcid: authc.id }
      )
    }
    const authz = canonicalizeUser(env.settings, clientIn, env.connection)
    if (authz._tag === "Err") return Effect.succeed({ _tag: "Fail", failure: authz.failure })
    if (authc._tag === "Err") return Effect.succeed({ _tag: "Fail", failure: authc.failure })
    return Effect.succeed({ _tag: "Done", authzid: authz.id, authcid: authc.id })
  }
  return step
}

const mechanismStep = (env: ExchangeEnv, spec: MechanismSpec): MechStep =>
  spec.name === "PLAIN" ? plainStep(env) : spec.name === "LOGIN" ? loginStep(env) : externalStep(env)

// --- the exchange driver -----------------------------------------------------

const rejected = (env: ExchangeEnv, mechanism: string, failure: SaslFailure): Effect.Effect<AuthStep> =>
  Effect.sleep(env.settings.failedLoginPause).pipe(
    Effect.when(() => Duration.greaterThan(env.settings.failedLoginPause, Duration.zero)),
    Effect.as<AuthStep>({
      _tag: "Failure",
      kind: "Rejected",
      reply: `NO ${saslErrorText(failure.result)}`,
      result: failure.result,
      detail: failure.detail,
      mechanism
    })
  )

const cancelled = (mechanism: string): AuthStep => ({
  _tag: "Failure",
  kind: "Cancelled",
  reply: CANCEL_REPLY,
  result: "BADPROT",
  detail: "client canceled authentication",
  mechanism
})

/** Strip one LF then one CR, as Cyrus trims a response line. */
const trimLine = (line: string): string => {
  let s = line
  if (s.endsWith("\n")) s = s.slice(0, -1)
  if (s.endsWith("\r")) s = s.slice(0, -1)
  return s
}

/** Send a challenge and decode the answer; `onData` gets the decoded bytes. */
const challenge = (
  env: ExchangeEnv,
  mechanism: string,
  serverOut: string,
  onData: (clientIn: string) => Effect.Effect<AuthStep>
): AuthStep => ({
  _tag: "Challenge",
  line: `+ ${serverOut.length > 0 ? encode64(serverOut) : ""}`,
  respond: (raw) => {
    const line = trimLine(raw)
    if (line.startsWith("*")) return Effect.succeed(cancelled(mechanism))
    const decoded = decode64(line)
    switch (decoded._tag) {
      case "Invalid":
        return rejected(env, mechanism, saslFailure(decoded.result, "bad base64 in client response"))
      case "Incomplete":
        // libsasl reports the partial group as "another step is needed" and gives up.
        return rejected(env, mechanism, saslFailure("CONTINUE", "incomplete base64 in client response"))
      case "Decoded":
        return onData(decoded.bytes)
    }
  }
})

const drive = (env: ExchangeEnv, mechanism: string, outcome: MechOutcome): Effect.Effect<AuthStep> => {
  switch (outcome._tag) {
    case "Fail":
      return rejected(env, mechanism, outcome.failure)
    case "Continue":
      return Effect.succeed(
        challenge(env, mechanism, outcome.serverOut, (clientIn) =>
          Effect.flatMap(outcome.next(clientIn), (o) => drive(env, mechanism, o))
        )
      )
    case "Done": {
      const decision = authorize(env.settings, outcome.authzid, outcome.authcid)
      if (decision._tag === "Err") return rejected(env, mechanism, decision.failure)
      const ssf = 0
      return Effect.succeed({
        _tag: "Success",
        userid: decision.value.userid,
        authcid: outcome.authcid,
        isAdmin: decision.value.isAdmin,
        mechanism,
        ssf,
        reply: `OK Success (${ssfMessage(ssf)})`
      })
    }
  }
}

/**
 * Start an exchange. `initialResponse` is the optional second AUTHENTICATE argument
 * exactly as sent (`=` means present but empty).
 */
export const startExchange = (
  env: ExchangeEnv,
  mechanism: string,
  initialResponse?: string
): Effect.Effect<AuthStep> => {
  let clientIn: string | undefined
  if (initialResponse !== undefined) {
    if (initialResponse === "=") clientIn = ""
    else {
      const decoded = decode64(initialResponse)
      if (decoded._tag === "Invalid") {
        return rejected(env, mechanism, saslFailure(decoded.result, "bad base64 in initial response"))
      }
      if (decoded._tag === "Incomplete") {
        // Cyrus then sends an empty challenge without having started the mechanism; a
        // valid answer crashes the C server. We answer the protocol error instead.
        return Effect.succeed(
          challenge(env, mechanism, "", () =>
            rejected(env, mechanism, saslFailure("BADPROT", "incomplete base64 in initial response"))
          )
        )
      }
      clientIn = decoded.bytes
    }
  }
  const spec = candidateMechanisms(env.settings).find((m) => sameMechanism(mechanism, m.name))
  if (spec === undefined) return rejected(env, mechanism, saslFailure("NOMECH", `Couldn't find mech ${mechanism}`))
  const permitted = mechanismPermitted(env.settings, env.connection, spec)
  if (permitted !== "OK") return rejected(env, mechanism, saslFailure(permitted, `mech ${spec.name} not permitted`))
  const step = mechanismStep(env, spec)
  const first: Effect.Effect<MechOutcome> =
    clientIn === undefined && spec.wantsClientFirst
      ? Effect.succeed({ _tag: "Continue", serverOut: "", next: step })
      : step(clientIn)
  return Effect.flatMap(first, (o) => drive(env, mechanism, o))
}
