/**
 * A small csync client (the protocol sync_client speaks to backupd), for tests that talk to
 * a backup server directly: banner, AUTHENTICATE PLAIN, optional COMPRESS DEFLATE, then
 * commands whose answers are read up to the final OK/NO/BAD line. Server literals
 * (`{n}` / `{n+}` at the end of a line) are read into the line. Everything is latin1.
 */
import * as zlib from "node:zlib"
import { Effect, Scope } from "effect"
import { connectBytes, ProtocolError, readExactly, readRawLine } from "./Wire.js"

export interface CsyncAnswer {
  /** `* ...` and `+ ...` lines, literals inlined. */
  readonly untagged: ReadonlyArray<string>
  /** The OK/NO/BAD line that ended the answer. */
  readonly final: string
}

export interface CsyncClient {
  /** The banner lines, up to and including `* OK ...`. */
  readonly banner: ReadonlyArray<string>
  /** Sends `line` + CRLF and reads the answer. */
  readonly command: (line: string) => Effect.Effect<CsyncAnswer, ProtocolError>
  /** Sends raw bytes, reads nothing. */
  readonly sendRaw: (bytes: string) => Effect.Effect<void, ProtocolError>
  /** Reads one answer (after sendRaw). */
  readonly readAnswer: Effect.Effect<CsyncAnswer, ProtocolError>
  /** `AUTHENTICATE PLAIN <base64>`: the final line. */
  readonly authenticate: (user: string, password: string) => Effect.Effect<string, ProtocolError>
  /** `COMPRESS DEFLATE`; from its OK on both directions are raw deflate. */
  readonly compress: Effect.Effect<string, ProtocolError>
  /** Everything the server sends until it closes the connection (after EXIT). */
  readonly readToEnd: Effect.Effect<string, ProtocolError>
}

const fail = (command: string, reply: string) => new ProtocolError({ protocol: "tcp", command, reply })

/** Connects to a csync server on 127.0.0.1:port; closed with the scope. */
export const csyncSession = (port: number, timeoutMs = 60_000): Effect.Effect<CsyncClient, ProtocolError, Scope.Scope> =>
  Effect.gen(function*() {
    const conn = yield* connectBytes(port, "tcp", timeoutMs)
    const socket = conn.socket
    let deflater: zlib.DeflateRaw | undefined
    const rawLine = readRawLine(conn)
    const bytes = (n: number) => readExactly(conn, n)

    /** One logical line: literals inlined, CRLF stripped. */
    const readLine: Effect.Effect<string, ProtocolError> = Effect.gen(function*() {
      let line = ""
      for (;;) {
        const part = (yield* rawLine).replace(/\r?\n$/, "")
        const literal = /\{(\d+)\+?\}$/.exec(part)
        if (literal === null) return line + part
        line += part + "\r\n" + (yield* bytes(Number(literal[1])))
      }
    })

    const write = (data: string) =>
      Effect.async<void, ProtocolError>((resume) => {
        const buf = Buffer.from(data, "latin1")
        const done = (e?: Error | null) => resume(e ? Effect.fail(fail("write", String(e))) : Effect.void)
        if (deflater === undefined) {
          socket.write(buf, done)
        } else {
          deflater.write(buf)
          deflater.flush(zlib.constants.Z_SYNC_FLUSH, () => done())
        }
      })

    const readAnswer: Effect.Effect<CsyncAnswer, ProtocolError> = Effect.gen(function*() {
      const untagged: Array<string> = []
      for (;;) {
        const line = yield* readLine
        if (/^(OK|NO|BAD)\b/.test(line)) return { untagged, final: line }
        untagged.push(line)
        if (line.startsWith("+ ")) return { untagged, final: "" }
      }
    })

    const banner: Array<string> = []
    for (;;) {
      const line = yield* readLine
      banner.push(line)
      if (line.startsWith("* OK")) break
    }

    const command = (line: string) => Effect.zipRight(write(line + "\r\n"), readAnswer)

    const client: CsyncClient = {
      banner,
      command,
      sendRaw: write,
      readAnswer,
      authenticate: (user, password) =>
        Effect.map(
          command(`AUTHENTICATE PLAIN ${Buffer.from(`\0${user}\0${password}`, "latin1").toString("base64")}`),
          (a) => a.final
        ),
      compress: Effect.gen(function*() {
        const answer = yield* command("COMPRESS DEFLATE")
        if (answer.final.startsWith("OK")) {
          const z = zlib.createInflateRaw()
          z.on("data", conn.push)
          z.on("error", (e) => conn.fail(`inflate: ${e.message}`))
          // bytes that arrived after the OK line are compressed already
          const early = yield* conn.take("compressed bytes", (b) => [Buffer.from(b), b.length])
          conn.redirect((chunk) => z.write(chunk))
          if (early.length > 0) z.write(early)
          deflater = zlib.createDeflateRaw()
          deflater.on("data", (b: Buffer) => socket.write(b))
        }
        return answer.final
      }),
      readToEnd: conn.take("read to end", (b, closed) => (closed ? [b.toString("latin1"), b.length] : undefined))
    }
    return client
  })
