/**
 * The byte transport a csync session runs on, as a port: the session reads plaintext input,
 * queues and flushes output, and asks for the layers csync can switch on mid-stream (TLS,
 * raw DEFLATE); it never sees a socket. The Node implementation (sockets, the stdin/stdout
 * pair of `-X`, node:tls, node:zlib) is src/service/nodeConnection.ts, as @effect/platform's
 * `Socket` is implemented by @effect/platform-node's `NodeSocket`.
 */
import { Data, type Effect, type Option } from "effect"
import type * as tls from "node:tls"

export class ConnectionError extends Data.TaggedError("ConnectionError")<{ readonly message: string }> {}

/** The message of a read that waited longer than the session's `sync_timeout`. */
export const IDLE_TIMEOUT_MESSAGE = "idle for too long"

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
  /**
   * From now on a `read` that waits longer than `ms` for input fails with a ConnectionError
   * `idle for too long` (a timer armed only while a read waits, as a socket timeout). Optional:
   * without it the session times each read itself, at the cost of a race per read.
   */
  readonly setIdleTimeout?: (ms: number) => void
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
  /** Bytes moved so far, for the session totals line. */
  readonly stats: ConnectionStats
  /** Closes the transport (idempotent). */
  readonly close: Effect.Effect<void>
}

export interface ConnectionStats {
  /** Plaintext protocol bytes read (after TLS and decompression). */
  readonly protocolIn: number
  /** Plaintext protocol bytes sent (before compression and TLS). */
  readonly protocolOut: number
  /** Bytes read from the transport (the socket, TLS records included; or stdin). */
  readonly transportIn: number
  /** Bytes written to the transport. */
  readonly transportOut: number
}

/** What a decorator of a connection may replace; everything else is forwarded as it is. */
export type ConnectionOverrides = Partial<Pick<Connection, "read" | "write" | "flush" | "close">>

/**
 * `conn` with `overrides` in place of its own read, write, flush or close (a tap that logs or
 * counts the bytes); the layers, the flags and the totals stay those of `conn`, read live.
 */
export const decorateConnection = (conn: Connection, overrides: ConnectionOverrides): Connection => ({
  peer: conn.peer,
  read: overrides.read ?? conn.read,
  ...(conn.setIdleTimeout === undefined ? {} : { setIdleTimeout: (ms: number) => conn.setIdleTimeout!(ms) }),
  write: overrides.write ?? conn.write,
  flush: overrides.flush ?? conn.flush,
  startCompression: (early) => conn.startCompression(early),
  startTls: (options) => conn.startTls(options),
  get compressed() {
    return conn.compressed
  },
  get tlsActive() {
    return conn.tlsActive
  },
  get peerCertificateName() {
    return conn.peerCertificateName
  },
  get stats() {
    return conn.stats
  },
  close: overrides.close ?? conn.close
})
