/**
 * A client of saslauthd's UNIX-socket protocol, as libsasl speaks it: the request is four
 * counted strings (login, password, service, realm; each a 2-byte big-endian length and the
 * bytes), the answer one counted string starting with `OK` or `NO`.
 */
import * as net from "node:net"
import { Duration, Effect } from "effect"
import { SaslauthdError } from "./errors.js"

/** libsasl's request buffer: 8192 bytes, of which 30 are set aside. */
const MAX_REQUEST = 8192
const REQUEST_SLACK = 30
/** libsasl keeps at most 1023 bytes of the answer. */
const MAX_ANSWER = 1023

export interface SaslauthdRequest {
  readonly login: string
  readonly password: string
  readonly service: string
  readonly realm: string
}

const untilNul = (s: string): string => {
  const i = s.indexOf("\0")
  return i < 0 ? s : s.slice(0, i)
}

/** Encode a request (all strings are latin1 byte strings); undefined when too large. */
export const encodeSaslauthdRequest = (req: SaslauthdRequest): Buffer | undefined => {
  // C strings: a NUL ends each field.
  const fields = [req.login, req.password, req.service, req.realm].map((f) => Buffer.from(untilNul(f), "latin1"))
  let total = REQUEST_SLACK
  for (const f of fields.slice(0, 3)) total += f.length
  if (fields.some((f) => f.length > 0xffff) || total > MAX_REQUEST || MAX_REQUEST - total < fields[3]!.length) {
    return undefined
  }
  const parts: Array<Buffer> = []
  for (const f of fields) {
    const len = Buffer.alloc(2)
    len.writeUInt16BE(f.length, 0)
    parts.push(len, f)
  }
  return Buffer.concat(parts)
}

/** One round trip; succeeds with the answer text (latin1), e.g. `OK` or `NO authentication failed`. */
export const saslauthdRoundTrip = (
  path: string,
  request: Buffer,
  timeout: Duration.DurationInput
): Effect.Effect<string, SaslauthdError> =>
  Effect.async<string, SaslauthdError>((resume) => {
    let settled = false
    const chunks: Array<Buffer> = []
    const socket = net.createConnection({ path })
    const settle = (outcome: Effect.Effect<string, SaslauthdError>) => {
      if (settled) return
      settled = true
      socket.destroy()
      resume(outcome)
    }
    const fail = (reason: string) => settle(Effect.fail(new SaslauthdError({ path, reason })))
    socket.on("connect", () => socket.write(request))
    socket.on("data", (chunk) => {
      chunks.push(chunk)
      const buf = Buffer.concat(chunks)
      if (buf.length < 2) return
      const count = buf.readUInt16BE(0)
      if (count < 2) return fail("bad response from saslauthd")
      const want = Math.min(count, MAX_ANSWER)
      if (buf.length >= 2 + want) settle(Effect.succeed(buf.subarray(2, 2 + want).toString("latin1")))
    })
    socket.on("end", () => fail(chunks.length === 0 ? "size read failed" : "read failed"))
    socket.on("error", (e: NodeJS.ErrnoException) => fail(`cannot talk to saslauthd server: ${e.code ?? e.message}`))
    return Effect.sync(() => {
      settled = true
      socket.destroy()
    })
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new SaslauthdError({ path, reason: `no answer within ${Duration.format(Duration.decode(timeout))}` })
    })
  )
