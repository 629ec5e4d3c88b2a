/**
 * Helpers shared by the tools acceptance tests: the user's sieve scripts as a live server
 * holds them, read through ManageSieve (timsieved) or csync (`GET USER` + `GET SIEVE` on a
 * sync_server), so the source and a restore target can be compared.
 */
import { Effect } from "effect"
import { csyncSession, openWire, ProtocolError, type Wire } from "../harness/index.js"

export interface SieveScript {
  readonly name: string
  readonly active: boolean
  /** The script text, latin1. */
  readonly content: string
}

const qs = (s: string) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`

/** Lines up to OK/NO/BYE (literals kept as separate entries); fails unless OK. */
const response = (wire: Wire, command: string): Effect.Effect<Array<string>, ProtocolError> =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    for (;;) {
      const line = yield* wire.readLine
      const literal = /\{(\d+)\+?\}$/.exec(line)
      if (literal !== null) {
        lines.push(line, yield* wire.readBytes(Number(literal[1])))
        continue
      }
      lines.push(line)
      if (/^(OK|NO|BYE)\b/i.test(line)) {
        if (/^OK\b/i.test(line)) return lines
        return yield* new ProtocolError({ protocol: "managesieve", command, reply: lines.join("\n") })
      }
    }
  })

/** Every script of `user` on a timsieved (LISTSCRIPTS, then GETSCRIPT each), sorted by name. */
export const sieveScriptsViaManageSieve = (port: number, user: string, password: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const wire = yield* openWire(port, "managesieve")
      yield* response(wire, "greeting")
      yield* wire.write(`AUTHENTICATE "PLAIN" ${qs(Buffer.from(`\0${user}\0${password}`, "latin1").toString("base64"))}\r\n`)
      yield* response(wire, "AUTHENTICATE")
      yield* wire.write("LISTSCRIPTS\r\n")
      const listing = (yield* response(wire, "LISTSCRIPTS")).slice(0, -1)
      const scripts: Array<SieveScript> = []
      for (const l of listing) {
        const m = /^"((?:[^"\\]|\\.)*)"( ACTIVE)?$/i.exec(l)
        if (m === null) continue
        const name = m[1]!.replace(/\\(.)/g, "$1")
        yield* wire.write(`GETSCRIPT ${qs(name)}\r\n`)
        const got = yield* response(wire, "GETSCRIPT")
        // {n}, then the literal, then (possibly empty) CRLF, then OK
        scripts.push({ name, active: m[2] !== undefined, content: got[1] ?? "" })
      }
      yield* wire.write("LOGOUT\r\n")
      yield* response(wire, "LOGOUT").pipe(Effect.ignore)
      return scripts.sort((a, b) => (a.name < b.name ? -1 : 1))
    })
  )

const field = (line: string, name: string) => new RegExp(`\\b${name} ("[^"]*"|[^ ()]+)`).exec(line)?.[1]?.replace(/^"|"$/g, "")

/**
 * Every script of `user` on a sync_server, sorted by name: `GET USER` lists `<name>.script`
 * (the source text) and `<name>.bc` (compiled; ISACTIVE marks the active one), `GET SIEVE`
 * fetches the text.
 */
export const sieveScriptsViaCsync = (syncPort: number, admin: string, password: string, user: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const c = yield* csyncSession(syncPort)
      const auth = yield* c.authenticate(admin, password)
      if (!auth.startsWith("OK")) return yield* new ProtocolError({ protocol: "tcp", command: "AUTHENTICATE", reply: auth })
      const listed = (yield* c.command(`GET USER ${user}`)).untagged.filter((l) => l.startsWith("* SIEVE "))
      const files = listed.map((l) => ({ file: field(l, "FILENAME") ?? "", active: field(l, "ISACTIVE") === "1" }))
      const scripts: Array<SieveScript> = []
      for (const f of files.filter((x) => x.file.endsWith(".script"))) {
        const name = f.file.slice(0, -".script".length)
        const got = yield* c.command(`GET FETCH_SIEVE %(USERID ${user} FILENAME ${f.file})`)
        const text = got.untagged.find((l) => l.startsWith("* SIEVE ")) ?? ""
        const m = /\bCONTENT \{(\d+)\+?\}\r\n/.exec(text)
        const content = m === null ? "" : text.slice(m.index + m[0].length, m.index + m[0].length + Number(m[1]))
        const active = files.some((x) => x.file === `${name}.bc` && x.active)
        scripts.push({ name, active, content })
      }
      return scripts.sort((a, b) => (a.name < b.name ? -1 : 1))
    })
  )
