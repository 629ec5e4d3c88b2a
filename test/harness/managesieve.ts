/**
 * A minimal ManageSieve client (RFC 5804) for timsieved on the source: upload
 * and activate a script so that sync_client sends APPLY SIEVE / ACTIVATE_SIEVE.
 * (In 3.6 scripts live in the user's #sieve mailbox; dropping a file into
 * sievedir is not seen, so going through timsieved is the way that works.)
 */
import { Effect } from "effect"
import { openWire, ProtocolError, type Wire } from "./Wire.js"

/** Reads lines (and literals) up to OK / NO / BYE; fails unless OK. */
const readResponse = (wire: Wire, command: string): Effect.Effect<ReadonlyArray<string>, ProtocolError> =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    for (;;) {
      const line = yield* wire.readLine
      lines.push(line)
      const literal = /\{(\d+)\+?\}$/.exec(line)
      if (literal !== null) {
        lines.push(yield* wire.readBytes(Number(literal[1])))
        continue
      }
      if (/^(OK|NO|BYE)\b/i.test(line)) {
        if (/^OK\b/i.test(line)) return lines
        return yield* new ProtocolError({ protocol: "managesieve", command, reply: lines.join("\n") })
      }
    }
  })

const qs = (s: string) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`

/** Uploads `script` as `name` for `user` and makes it the active script; returns LISTSCRIPTS. */
export const putActiveSieveScript = (
  port: number,
  user: string,
  password: string,
  name: string,
  script: string
): Effect.Effect<ReadonlyArray<string>, ProtocolError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const wire = yield* openWire(port, "managesieve")
      yield* readResponse(wire, "greeting")
      const plain = Buffer.from(`\0${user}\0${password}`, "latin1").toString("base64")
      yield* wire.write(`AUTHENTICATE "PLAIN" ${qs(plain)}\r\n`)
      yield* readResponse(wire, "AUTHENTICATE")
      yield* wire.write(`PUTSCRIPT ${qs(name)} {${script.length}+}\r\n${script}\r\n`)
      yield* readResponse(wire, "PUTSCRIPT")
      yield* wire.write(`SETACTIVE ${qs(name)}\r\n`)
      yield* readResponse(wire, "SETACTIVE")
      yield* wire.write("LISTSCRIPTS\r\n")
      const listing = yield* readResponse(wire, "LISTSCRIPTS")
      yield* wire.write("LOGOUT\r\n")
      yield* readResponse(wire, "LOGOUT").pipe(Effect.ignore)
      return listing.slice(0, -1)
    })
  )
