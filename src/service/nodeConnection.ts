/**
 * The Node adapter of the byte transport (src/transport/Connection.ts): a TCP or UNIX socket,
 * or the stdin/stdout pair of `-X`, with the layers csync can switch on mid-stream:
 *
 *   socket bytes ⇄ [TLS] ⇄ [raw DEFLATE] ⇄ plaintext protocol bytes
 *
 * `read` pulls the next chunk of plaintext input (back-pressure: nothing is read from the
 * socket until asked), `write` queues output and `flush` sends it — with compression on,
 * every flush ends in a sync-flush marker so the peer can decode it at once, as Cyrus does.
 * `startCompression` / `startTls` switch layers in place after the answer that announced them
 * was flushed.
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import type * as tls from "node:tls"
import { Duplex, type Readable, type Writable } from "node:stream"
import * as zlib from "node:zlib"
import { ConnectionError, IDLE_TIMEOUT_MESSAGE, type Connection, type PeerInfo } from "../transport/Connection.js"

/** Waits for one chunk from a Readable in paused mode: data, end, error or (idleMs > 0) timeout. */
const waitChunk = (r: Readable, idleMs: number): Effect.Effect<Option.Option<Buffer>, ConnectionError> =>
  Effect.async<Option.Option<Buffer>, ConnectionError>((resume) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer)
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
    if (idleMs > 0) {
      timer = setTimeout(() => {
        cleanup()
        resume(Effect.fail(new ConnectionError({ message: IDLE_TIMEOUT_MESSAGE })))
      }, idleMs)
    }
    return Effect.sync(cleanup)
  })

/**
 * Reads one chunk from a Readable in paused mode. A chunk already buffered is taken at once,
 * without suspending (most reads during a sync: the client writes ahead of us).
 */
const readChunk = (r: Readable, idleMs: number): Effect.Effect<Option.Option<Buffer>, ConnectionError> => {
  const chunk = r.read() as Buffer | null
  if (chunk !== null) return Effect.succeed(Option.some(chunk))
  return waitChunk(r, idleMs)
}

const writeAll = (w: Writable, data: Buffer): Effect.Effect<void, ConnectionError> =>
  Effect.async<void, ConnectionError>((resume) => {
    if (w.destroyed || w.writableEnded) {
      resume(Effect.fail(new ConnectionError({ message: "connection closed" })))
      return
    }
    w.write(data, (err) => (err ? resume(Effect.fail(new ConnectionError({ message: err.message }))) : resume(Effect.void)))
  })

const ZLIB_CHUNK = 128 * 1024

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
      resume(Effect.succeed(out.length === 1 ? out[0]! : Buffer.concat(out)))
    })
  })

/**
 * One piece of compressed input through the inflater, in one write: the inflater is made with
 * `Z_SYNC_FLUSH` as its flush mode, so the write alone puts out everything it decodes (its
 * `data` events come before the write's callback) — one thread-pool round trip per socket read
 * instead of two (a write, then a flush with no input).
 */
const inflateStep = (z: zlib.InflateRaw, input: Buffer): Effect.Effect<Buffer, ConnectionError> =>
  Effect.async<Buffer, ConnectionError>((resume) => {
    const out: Array<Buffer> = []
    let done = false
    const onData = (b: Buffer) => out.push(b)
    const fail = (e: Error) => {
      z.off("data", onData)
      if (done) return
      done = true
      resume(Effect.fail(new ConnectionError({ message: `compression: ${e.message}` })))
    }
    z.on("data", onData)
    // (left on after a failure: the stream emits its 'error' after the write's callback)
    z.once("error", fail)
    z.write(input, (err) => {
      if (err) return fail(err)
      z.off("data", onData)
      z.off("error", fail)
      done = true
      resume(Effect.succeed(out.length === 1 ? out[0]! : Buffer.concat(out)))
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
  const rawSocket = socket
  const counts = { protocolIn: 0, protocolOut: 0, pipeIn: 0, pipeOut: 0 }

  let idleMs = 0
  const afterRead = (chunk: Option.Option<Buffer>): Effect.Effect<Option.Option<Uint8Array>, ConnectionError> => {
    if (Option.isNone(chunk)) return Effect.succeed(chunk)
    counts.pipeIn += chunk.value.length
    if (inflater === undefined) {
      counts.protocolIn += chunk.value.length
      return Effect.succeed(chunk)
    }
    return Effect.flatMap(inflateStep(inflater, chunk.value), (plain) => {
      counts.protocolIn += plain.length
      // a piece that inflates to nothing (a bare flush marker): read on
      return plain.length > 0 ? Effect.succeed(Option.some(plain)) : read
    })
  }
  const read: Connection["read"] = Effect.suspend(() => Effect.flatMap(readChunk(input, idleMs), afterRead))

  const conn: Connection = {
    peer,
    read,
    setIdleTimeout: (ms) => {
      idleMs = ms
    },
    write: (bytes) => Effect.sync(() => void pending.push(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))),
    flush: Effect.suspend(() => {
      if (pending.length === 0) return Effect.void
      const data = Buffer.concat(pending)
      pending = []
      counts.protocolOut += data.length
      const encoded = deflater === undefined ? Effect.succeed(data) : zlibPass(deflater, data)
      return Effect.flatMap(encoded, (bytes) => {
        counts.pipeOut += bytes.length
        return writeAll(output, bytes)
      })
    }),
    startCompression: (early) => Effect.sync(() => {
      if (early.byteLength > 0) {
        input.unshift(Buffer.from(early))
        // Those bytes are read (and counted) again, as compressed input.
        counts.protocolIn -= early.byteLength
        counts.pipeIn -= early.byteLength
      }
      // Output pieces of 128 KiB, not node's 16 KiB: one socket read (up to 64 KiB of compressed
      // input) then inflates in one or two thread-pool round trips instead of five or more.
      inflater = zlib.createInflateRaw({ chunkSize: ZLIB_CHUNK, flush: zlib.constants.Z_SYNC_FLUSH })
      deflater = zlib.createDeflateRaw({ level: zlib.constants.Z_DEFAULT_COMPRESSION, memLevel: 9, windowBits: 15 })
    }),
    // node:tls (and OpenSSL's TLS state) is loaded by the first STARTTLS, not by every session.
    startTls: (options) =>
      Effect.flatMap(Effect.promise(() => import("node:tls")), (tls) => Effect.async<void, ConnectionError>((resume) => {
        if (socket === undefined) {
          resume(Effect.fail(new ConnectionError({ message: "TLS needs a socket" })))
          return
        }
        // A one-shot tls.Server with the connection injected (its documented 'connection' event):
        // unlike a bare TLSSocket, the server verifies a client certificate and sets `authorized`.
        const server = tls.createServer(options)
        let settled = false
        const settle = (outcome: Effect.Effect<void, ConnectionError>) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          server.close()
          resume(outcome)
        }
        const carrier = tlsCarrier(socket)
        const timer = setTimeout(() => {
          carrier.destroy()
          settle(Effect.fail(new ConnectionError({ message: "TLS handshake timed out" })))
        }, 180_000)
        server.once("secureConnection", (t: tls.TLSSocket) => {
          tlsSocket = t
          input = t
          output = t
          settle(Effect.void)
        })
        server.once("tlsClientError", (e) => settle(Effect.fail(new ConnectionError({ message: e.message }))))
        server.emit("connection", carrier)
      })),
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
    get stats() {
      return {
        protocolIn: counts.protocolIn,
        protocolOut: counts.protocolOut,
        transportIn: rawSocket !== undefined ? rawSocket.bytesRead : counts.pipeIn,
        transportOut: rawSocket !== undefined ? rawSocket.bytesWritten : counts.pipeOut
      }
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

/**
 * A socket on fd 0 (inetd style, or a UNIX socket), opened as a full duplex socket: Node's own
 * `process.stdin` would be read-only. Undefined when fd 0 is a pipe, file or terminal.
 * Created once; `process.stdin` is then never touched.
 */
let stdinSocketCache: net.Socket | null | undefined
const stdinSocket = (): net.Socket | undefined => {
  if (stdinSocketCache === undefined) {
    let isSocket = false
    try {
      isSocket = fs.fstatSync(0).isSocket()
    } catch {
      isSocket = false
    }
    stdinSocketCache = isSocket ? new net.Socket({ fd: 0, readable: true, writable: true }) : null
  }
  return stdinSocketCache ?? undefined
}

/** Whether stdin is a network (TCP) socket, as opposed to a UNIX socket, pipe or terminal. */
export const stdinIsNetworkSocket = (): boolean => stdinSocket()?.remoteAddress !== undefined

/**
 * `-X`: one session on stdin/stdout. A TCP socket on stdin is used as such (both ways); a
 * UNIX socket or pipe is a local, pre-authenticated session, answered on stdout.
 */
export const fromStdio = (): Connection => {
  const socket = stdinSocket()
  if (socket !== undefined && socket.remoteAddress !== undefined) return fromSocket(socket)
  return make({ input: socket ?? process.stdin, output: process.stdout, socket: undefined })
}
