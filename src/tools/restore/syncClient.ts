/**
 * The client side of csync, as `restore` (and sync_client) speak it to a replica's
 * sync_server: banner, `AUTHENTICATE PLAIN <base64>`, `COMPRESS DEFLATE` when offered (raw
 * deflate, sync-flushed after every command), `APPLY CAPABILITIES (SIEVE-MAILBOX)` when
 * offered, then commands whose answers are `* <dlist>` lines and one `OK`/`NO`/`BAD` line.
 *
 * Commands are written from a Stream of bytes, so message bodies go from the backup to the
 * socket (or the deflater) in pieces, with the socket's back-pressure respected.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { connect, type Socket } from "node:net"
import type { Writable } from "node:stream"
import zlib from "node:zlib"
import { Effect, Queue, Scope, Stream } from "effect"
import { ByteReader, ByteSourceError, EOF, byteClass, type ByteSource } from "../../protocol/ByteReader.js"
import { parseItem } from "../../protocol/dlist/parse.js"
import type { Item } from "../../protocol/dlist/value.js"
import { CompressionUnavailable, SyncAuthError, SyncCommandRefused, SyncConnectError, SyncProtocolError, type SyncError } from "./errors.js"

/** Port of the `csync` service (/etc/services), used when neither sync_port nor `host:port` says. */
export const CSYNC_PORT = 2005

export type ServerAddress =
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "Unix"; readonly path: string }

/** `host`, `host:port`, `[v6addr]:port` or `/path/to/socket`. */
export const parseServerAddress = (server: string, defaultPort: number): ServerAddress => {
  if (server.startsWith("/")) return { _tag: "Unix", path: server }
  const v6 = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(server)
  if (v6 !== null) return { _tag: "Tcp", host: v6[1]!, port: v6[2] === undefined ? defaultPort : Number(v6[2]) }
  const m = /^([^:]+):([0-9]+)$/.exec(server)
  if (m !== null) return { _tag: "Tcp", host: m[1]!, port: Number(m[2]) }
  return { _tag: "Tcp", host: server, port: defaultPort }
}

/** A port option: a number, or the service name `csync`. */
export const portOf = (text: string | undefined): number | undefined => {
  if (text === undefined || text === "" || text === "csync") return CSYNC_PORT
  return /^[0-9]+$/.test(text) ? Number(text) : undefined
}

export interface SyncAnswer {
  /** The `* <key> <value>` lines. */
  readonly untagged: ReadonlyArray<Item>
  /** The text after `OK`. */
  readonly text: string
}

export interface SyncSession {
  readonly banner: ReadonlyArray<string>
  readonly compressed: boolean
  readonly sieveMailbox: boolean
  /** Writes `bytes` then CRLF, flushes, and reads the answer (NO → SyncCommandRefused). */
  readonly command: <E>(label: string, bytes: Stream.Stream<Uint8Array, E>) => Effect.Effect<SyncAnswer, E | SyncError>
}

export interface SyncConnectOptions {
  readonly server: string
  readonly address: ServerAddress
  readonly authname: string | undefined
  readonly password: string | undefined
  readonly requireCompression: boolean
  /** Seconds to wait for any answer (sync_timeout, at least 3). */
  readonly timeoutSeconds: number
  /** Verbose log lines (stderr). */
  readonly log: (line: string) => void
}

const SP = 0x20
const CR = 0x0d
const LF = 0x0a
const WORD_END = byteClass(SP, CR, LF)
const LINE_END = byteClass(LF)
const CRLF = Buffer.from("\r\n")

/** Opens an authenticated session; EXIT is sent and the socket closed with the scope. */
export const openSyncSession = (opts: SyncConnectOptions): Effect.Effect<SyncSession, SyncError, Scope.Scope> =>
  Effect.gen(function*() {
    const server = opts.server
    const connectError = (message: string) => new SyncConnectError({ server, message })
    const inbound = yield* Queue.unbounded<Uint8Array | Error | null>()
    let broken: string | undefined

    const socket = yield* Effect.acquireRelease(
      Effect.async<Socket, SyncConnectError>((resume) => {
        const s = opts.address._tag === "Unix" ? connect({ path: opts.address.path }) : connect({ host: opts.address.host, port: opts.address.port })
        const onError = (e: Error) => resume(Effect.fail(connectError(e.message)))
        s.once("error", onError)
        s.once("connect", () => {
          s.off("error", onError)
          resume(Effect.succeed(s))
        })
      }).pipe(
        Effect.timeoutFail({ duration: `${opts.timeoutSeconds} seconds`, onTimeout: () => connectError("connect timed out") })
      ),
      (s) => Effect.sync(() => s.destroy())
    )
    socket.setNoDelay(true)
    socket.setKeepAlive(true)

    let inflater: zlib.InflateRaw | undefined
    let deflater: zlib.DeflateRaw | undefined
    socket.on("data", (b: Buffer) => (inflater === undefined ? Queue.unsafeOffer(inbound, b) : inflater.write(b)))
    socket.on("error", (e) => {
      broken ??= e.message
      Queue.unsafeOffer(inbound, e)
    })
    socket.on("close", () => {
      broken ??= "connection closed"
      Queue.unsafeOffer(inbound, null)
    })

    const source: ByteSource = Effect.flatMap(Queue.take(inbound), (x) =>
      x instanceof Error ? Effect.fail(new ByteSourceError({ cause: x })) : Effect.succeed(x)
    )
    const reader = ByteReader.make(source)
    const readFailed = (what: string) => (e: ByteSourceError) => connectError(`${what}: ${(e.cause as Error)?.message ?? "read failed"}`)

    const withTimeout = <A, E>(what: string, eff: Effect.Effect<A, E>) =>
      eff.pipe(Effect.timeoutFail({ duration: `${opts.timeoutSeconds} seconds`, onTimeout: () => connectError(`${what}: no answer within ${opts.timeoutSeconds} s`) }))

    /** One line (CR LF stripped); fails at end of input. */
    const readLine = (what: string) =>
      Effect.gen(function*() {
        const t = yield* reader.readToken(LINE_END, 1 << 20).pipe(
          Effect.catchTag("TokenTooLong", () => Effect.fail(new SyncProtocolError({ command: what, message: "line too long" }))),
          Effect.mapError((e) => (e._tag === "ByteSourceError" ? readFailed(what)(e) : e))
        )
        if (t.terminator === EOF) return yield* connectError(`${what}: connection closed`)
        return t.token.endsWith("\r") ? t.token.slice(0, -1) : t.token
      })

    const writeBytes = (b: Uint8Array) =>
      Effect.async<void, SyncConnectError>((resume) => {
        if (broken !== undefined) return resume(Effect.fail(connectError(broken)))
        const target: Writable = deflater ?? socket
        if (target.write(b)) return resume(Effect.void)
        const done = () => {
          target.off("drain", done)
          socket.off("close", done)
          resume(broken === undefined ? Effect.void : Effect.fail(connectError(broken)))
        }
        target.once("drain", done)
        socket.once("close", done)
      })

    const flush = Effect.suspend(() => {
      const d = deflater
      return d === undefined ? Effect.void : Effect.async<void>((resume) => d.flush(zlib.constants.Z_SYNC_FLUSH, () => resume(Effect.void)))
    })

    const readAnswer = (label: string): Effect.Effect<SyncAnswer, SyncError> =>
      withTimeout(
        label,
        Effect.gen(function*() {
          const untagged: Array<Item> = []
          for (;;) {
            const w = yield* reader.readToken(WORD_END, 1024).pipe(
              Effect.catchTag("TokenTooLong", () => Effect.fail(new SyncProtocolError({ command: label, message: "answer word too long" }))),
              Effect.mapError((e) => (e._tag === "ByteSourceError" ? readFailed(label)(e) : e))
            )
            if (w.terminator === EOF) return yield* connectError(`${label}: connection closed`)
            if (w.token === "*" && w.terminator === SP) {
              const parsed = yield* parseItem(reader, { files: { _tag: "Discard" } }).pipe(
                Effect.provide(NodeFileSystem.layer),
                Effect.mapError((e) =>
                  e._tag === "ByteSourceError" ? readFailed(label)(e) : new SyncProtocolError({ command: label, message: `unreadable answer: ${e.message}` })
                )
              )
              let t = parsed.terminator
              if (t === CR) t = yield* reader.readByte.pipe(Effect.mapError(readFailed(label)))
              if (t !== LF) return yield* new SyncProtocolError({ command: label, message: "junk after an untagged answer" })
              untagged.push(parsed.item)
              continue
            }
            let rest = ""
            if (w.terminator === SP) rest = yield* readLine(label)
            else if (w.terminator === CR) yield* reader.readByte.pipe(Effect.mapError(readFailed(label)))
            if (w.token === "OK") return { untagged, text: rest }
            if (w.token === "NO") return yield* new SyncCommandRefused({ command: label, reply: rest })
            return yield* new SyncProtocolError({ command: label, message: `${w.token} ${rest}`.trim() })
          }
        })
      )

    // A command cut short (e.g. the backup failed mid-message) leaves the peer inside a literal.
    let midCommand = false
    const command = <E>(label: string, bytes: Stream.Stream<Uint8Array, E>): Effect.Effect<SyncAnswer, E | SyncError> =>
      Effect.gen(function*() {
        midCommand = true
        yield* Stream.runForEach(bytes, writeBytes)
        yield* writeBytes(CRLF)
        midCommand = false
        yield* flush
        return yield* readAnswer(label)
      })
    const sendLine = (label: string, line: string) => command(label, Stream.succeed(Buffer.from(line, "latin1")))

    // ---- banner -----------------------------------------------------------------------
    const banner: Array<string> = []
    for (;;) {
      const line = yield* withTimeout("banner", readLine("banner"))
      banner.push(line)
      if (/^\* OK/i.test(line)) {
        if (/\[CAPABILITY|IMAP4/i.test(line)) {
          return yield* new SyncProtocolError({ command: "banner", message: "this is an IMAP server; point restore at a csync (sync_server) port" })
        }
        break
      }
    }
    const capa = (name: string) => banner.find((l) => l.toUpperCase().split(/\s+/)[1] === name)
    const saslLine = capa("SASL")
    const mechanisms = saslLine === undefined ? [] : saslLine.trim().split(/\s+/).slice(2).map((m) => m.toUpperCase())
    const offersCompress = banner.some((l) => /^\*\s+COMPRESS\s+DEFLATE\b/i.test(l))
    const offersSieveMailbox = capa("SIEVE-MAILBOX") !== undefined

    // ---- authentication (none over a UNIX socket: the server pre-authenticates) ---------
    if (opts.address._tag === "Tcp") {
      const authError = (message: string) => new SyncAuthError({ server, message })
      if (!mechanisms.includes("PLAIN")) return yield* authError(`no usable SASL mechanism offered (${mechanisms.join(" ") || "none"}; PLAIN needed)`)
      if (opts.authname === undefined || opts.authname === "") return yield* authError("sync_authname is not set")
      const response = Buffer.from(`\0${opts.authname}\0${opts.password ?? ""}`, "latin1").toString("base64")
      yield* writeBytes(Buffer.from(`AUTHENTICATE PLAIN ${response}\r\n`, "latin1"))
      const first = yield* withTimeout("AUTHENTICATE", readLine("AUTHENTICATE"))
      if (first.startsWith("+")) {
        // PLAIN has nothing more to say: cancel
        yield* writeBytes(Buffer.from("*\r\n", "latin1"))
        const last = yield* withTimeout("AUTHENTICATE", readLine("AUTHENTICATE"))
        return yield* authError(last)
      }
      if (!/^OK\b/.test(first)) return yield* authError(first.replace(/^(NO|BAD) /, ""))
      opts.log(`authenticated to ${server} as ${opts.authname}`)
    }

    // ---- compression ----------------------------------------------------------------------
    let compressed = false
    if (offersCompress) {
      const answer = yield* Effect.either(sendLine("COMPRESS", "COMPRESS DEFLATE"))
      if (answer._tag === "Right") {
        if (reader.buffered > 0) return yield* new SyncProtocolError({ command: "COMPRESS", message: "data after OK" })
        const z = zlib.createInflateRaw()
        z.on("data", (b: Buffer) => Queue.unsafeOffer(inbound, b))
        z.on("error", (e) => {
          broken ??= `inflate: ${e.message}`
          Queue.unsafeOffer(inbound, e)
        })
        inflater = z
        const d = zlib.createDeflateRaw({ memLevel: 9 })
        d.pipe(socket)
        deflater = d
        compressed = true
      } else if (answer.left._tag !== "SyncCommandRefused") {
        return yield* answer.left
      }
    }
    if (opts.requireCompression && !compressed) return yield* new CompressionUnavailable({ server })

    // ---- what the destination can take -------------------------------------------------
    let sieveMailbox = false
    if (offersSieveMailbox) {
      const enabled = yield* sendLine("CAPABILITIES", "APPLY CAPABILITIES (SIEVE-MAILBOX)")
      sieveMailbox = enabled.untagged.some((i) => i.key === "ENABLED")
    }

    yield* Effect.addFinalizer(() =>
      (midCommand || broken !== undefined ? Effect.void : sendLine("EXIT", "EXIT")).pipe(
        Effect.timeout("5 seconds"),
        Effect.ignore,
        Effect.zipRight(Effect.sync(() => deflater?.end()))
      )
    )

    const session: SyncSession = { banner, compressed, sieveMailbox, command }
    return session
  })
