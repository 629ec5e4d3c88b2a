/**
 * One client connection's byte transport, with the layers csync can switch on mid-stream:
 *
 *   socket bytes ⇄ [TLS] ⇄ [raw DEFLATE] ⇄ plaintext protocol bytes
 *
 * `read` pulls the next chunk of plaintext input (back-pressure: nothing is read from the
 * socket until asked), `write` queues output and `flush` sends it — with compression on,
 * every flush ends in a sync-flush marker so the peer can decode it at once, as Cyrus does.
 * `startCompression` / `startTls` switch layers in place after the answer that announced them
 * was flushed. Sockets (TCP or UNIX) and the stdin/stdout pair of `-X` are both supported.
 */
import { Data, Effect, Option } from "effect"
import * as net from "node:net"
import * as tls from "node:tls"
import { Duplex, type Readable, type Writable } from "node:stream"
import * as zlib from "node:zlib"

export class ConnectionError extends Data.TaggedError("ConnectionError")<{ readonly message: string }> {}

export interface PeerInfo {
  /** `[unix socket]` for local sockets and pipes, else `[a.b.c.d]` (Cyrus's clienthost form). */
  readonly clientHost: string
  /** True for UNIX-domain sockets and for `-X` on a pipe: the session is pre-authenticated. */
  readonly isLocal: boolean
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly localAddress: string | undefined
  readonly localPort: number | undefined
}

export interface Connection {
  readonly peer: PeerInfo
  /** The next chunk of plaintext input; None at end of input. */
  readonly read: Effect.Effect<Option.Option<Uint8Array>, ConnectionError>
  /** Queues bytes for the client. */
  readonly write: (bytes: Uint8Array | string) => Effect.Effect<void>
  /** Sends what was queued. */
  readonly flush: Effect.Effect<void, ConnectionError>
  /**
   * From now on both directions are raw DEFLATE streams (call after flushing the OK).
   * `early` holds input bytes already read past the COMPRESS line: they are compressed too.
   */
  readonly startCompression: (early: Uint8Array) => Effect.Effect<void>
  /** Performs the TLS handshake as server on the underlying socket. */
  readonly startTls: (options: tls.TlsOptions) => Effect.Effect<void, ConnectionError>
  readonly compressed: boolean
  readonly tlsActive: boolean
  /** The client certificate's subject common name, when TLS verified one. */
  readonly peerCertificateName: string | undefined
  /** Closes the transport (idempotent). */
  readonly close: Effect.Effect<void>
}

/** Reads one chunk from a Readable in paused mode, waiting for data, end or error. */
const readChunk = (r: Readable): Effect.Effect<Option.Option<Buffer>, ConnectionError> =>
  Effect.async<Option.Option<Buffer>, ConnectionError>((resume) => {
    const cleanup = () => {
      r.off("readable", attempt)
      r.off("end", onEnd)
      r.off("close", onEnd)
      r.off("error", onError)
    }
    function attempt(): boolean {
      const chunk = r.read() as Buffer | null
      if (chunk !== null) {
        cleanup()
        resume(Effect.succeed(Option.some(chunk)))
        return true
      }
      if (r.readableEnded || r.destroyed) {
        cleanup()
        resume(Effect.succeed(Option.none()))
        return true
      }
      return false
    }
    function onEnd() {
      if (!attempt()) {
        cleanup()
        resume(Effect.succeed(Option.none()))
      }
    }
    function onError(e: Error) {
      cleanup()
      resume(Effect.fail(new ConnectionError({ message: e.message })))
    }
    if (attempt()) return
    r.on("readable", attempt)
    r.on("end", onEnd)
    r.on("close", onEnd)
    r.on("error", onError)
    return Effect.sync(cleanup)
  })

const writeAll = (w: Writable, data: Buffer): Effect.Effect<void, ConnectionError> =>
  Effect.async<void, ConnectionError>((resume) => {
    if (w.destroyed || w.writableEnded) {
      resume(Effect.fail(new ConnectionError({ message: "connection closed" })))
      return
    }
    w.write(data, (err) => (err ? resume(Effect.fail(new ConnectionError({ message: err.message }))) : resume(Effect.void)))
  })

/** Runs one zlib operation on a stream transform and collects its output synchronously-ish. */
const zlibPass = (z: zlib.InflateRaw | zlib.DeflateRaw, input: Buffer | undefined): Effect.Effect<Buffer, ConnectionError> =>
  Effect.async<Buffer, ConnectionError>((resume) => {
    const out: Array<Buffer> = []
    const onData = (b: Buffer) => out.push(b)
    const onError = (e: Error) => {
      z.off("data", onData)
      resume(Effect.fail(new ConnectionError({ message: `compression: ${e.message}` })))
    }
    z.on("data", onData)
    z.once("error", onError)
    if (input !== undefined) z.write(input)
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      z.off("data", onData)
      z.off("error", onError)
      resume(Effect.succeed(Buffer.concat(out)))
    })
  })

/**
 * What TLS runs over. Normally the socket itself; but if the client's first TLS bytes were
 * already read ahead into the socket's buffer, those bytes must not be lost, so they are
 * replayed through a small duplex in front of the socket.
 */
const tlsCarrier = (socket: net.Socket): net.Socket | Duplex => {
  if (socket.readableLength === 0) return socket
  const early: Array<Buffer> = []
  for (let b = socket.read() as Buffer | null; b !== null; b = socket.read() as Buffer | null) early.push(b)
  const carrier = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      socket.write(chunk, cb)
    },
    final(cb) {
      socket.end(cb)
    }
  })
  early.forEach((b) => carrier.push(b))
  socket.on("data", (b) => carrier.push(b))
  socket.on("end", () => carrier.push(null))
  socket.on("error", (e) => carrier.destroy(e))
  return carrier
}

const peerOf = (socket: net.Socket | undefined): PeerInfo => {
  if (socket === undefined || socket.remoteAddress === undefined) {
    return { clientHost: "[unix socket]", isLocal: true, remoteAddress: undefined, remotePort: undefined, localAddress: undefined, localPort: undefined }
  }
  return {
    clientHost: `[${socket.remoteAddress}]`,
    isLocal: false,
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    localAddress: socket.localAddress,
    localPort: socket.localPort
  }
}

interface Ends {
  input: Readable
  output: Writable
  socket: net.Socket | undefined
}

const make = (ends: Ends): Connection => {
  let { input, output, socket } = ends
  let inflater: zlib.InflateRaw | undefined
  let deflater: zlib.DeflateRaw | undefined
  let tlsSocket: tls.TLSSocket | undefined
  let pending: Array<Buffer> = []
  let closed = false
  const peer = peerOf(socket)

  const read: Connection["read"] = Effect.gen(function* () {
    while (true) {
      const chunk = yield* readChunk(input)
      if (Option.isNone(chunk) || inflater === undefined) return chunk
      const plain = yield* zlibPass(inflater, chunk.value)
      if (plain.length > 0) return Option.some(plain)
    }
  })

  const conn: Connection = {
    peer,
    read,
    write: (bytes) => Effect.sync(() => void pending.push(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))),
    flush: Effect.suspend(() => {
      if (pending.length === 0) return Effect.void
      const data = Buffer.concat(pending)
      pending = []
      const encoded = deflater === undefined ? Effect.succeed(data) : zlibPass(deflater, data)
      return Effect.flatMap(encoded, (bytes) => writeAll(output, bytes))
    }),
    startCompression: (early) => Effect.sync(() => {
      if (early.byteLength > 0) input.unshift(Buffer.from(early))
      inflater = zlib.createInflateRaw()
      deflater = zlib.createDeflateRaw({ level: zlib.constants.Z_DEFAULT_COMPRESSION, memLevel: 9, windowBits: 15 })
    }),
    startTls: (options) =>
      Effect.async<void, ConnectionError>((resume) => {
        if (socket === undefined) {
          resume(Effect.fail(new ConnectionError({ message: "TLS needs a socket" })))
          return
        }
        const t = new tls.TLSSocket(tlsCarrier(socket), { ...options, isServer: true })
        const timer = setTimeout(() => {
          t.destroy()
          resume(Effect.fail(new ConnectionError({ message: "TLS handshake timed out" })))
        }, 180_000)
        t.once("secure", () => {
          clearTimeout(timer)
          tlsSocket = t
          input = t
          output = t
          resume(Effect.void)
        })
        t.once("error", (e) => {
          clearTimeout(timer)
          resume(Effect.fail(new ConnectionError({ message: e.message })))
        })
      }),
    get compressed() {
      return deflater !== undefined
    },
    get tlsActive() {
      return tlsSocket !== undefined
    },
    get peerCertificateName() {
      if (tlsSocket === undefined || !tlsSocket.authorized) return undefined
      const cn = tlsSocket.getPeerCertificate()?.subject?.CN
      return Array.isArray(cn) ? cn[0] : cn
    },
    close: Effect.sync(() => {
      if (closed) return
      closed = true
      inflater?.close()
      deflater?.close()
      if (socket !== undefined) {
        ;(tlsSocket ?? socket).end()
        ;(tlsSocket ?? socket).destroySoon()
      } else {
        output.end()
      }
    })
  }
  return conn
}

/** A connection on an accepted socket (TCP or UNIX-domain). */
export const fromSocket = (socket: net.Socket): Connection => {
  socket.setNoDelay(true)
  return make({ input: socket, output: socket, socket })
}

/** Whether stdin is a network socket (inetd style), as opposed to a pipe or terminal. */
export const stdinIsNetworkSocket = (): boolean =>
  process.stdin instanceof net.Socket && process.stdin.remoteAddress !== undefined

/** `-X`: one session on stdin/stdout. A socket on stdin (inetd) is used as such. */
export const fromStdio = (): Connection => {
  if (stdinIsNetworkSocket()) return fromSocket(process.stdin as net.Socket)
  return make({ input: process.stdin, output: process.stdout, socket: undefined })
}
