/**
 * A line/byte reader over a loopback TCP connection, shared by the tiny
 * IMAP, LMTP and ManageSieve clients. Everything is latin1 (one char = one byte).
 */
import { connect, type Socket } from "node:net"
import { withLiveClock } from "./cyrus.js"
import { Data, Duration, Effect, Scope } from "effect"

/** A protocol exchange went wrong: connection failure, timeout, or an unexpected reply. */
export class ProtocolError extends Data.TaggedError("ProtocolError")<{
  readonly protocol: "imap" | "lmtp" | "managesieve" | "tcp"
  readonly command: string
  readonly reply: string
}> {
  override get message(): string {
    return `${this.protocol} ${this.command}: ${this.reply}`
  }
}

export interface Wire {
  readonly readLine: Effect.Effect<string, ProtocolError>
  readonly readBytes: (n: number) => Effect.Effect<string, ProtocolError>
  readonly write: (data: string) => Effect.Effect<void, ProtocolError>
}

const READ_TIMEOUT: Duration.DurationInput = "120 seconds"

/**
 * The bytes a loopback connection has delivered so far, read by `take`. Shared by `openWire`
 * and the csync test client (which puts an inflater between the socket and the buffer).
 */
export interface SocketBytes {
  readonly socket: Socket
  /** Adds bytes to the buffer (what the socket delivers, unless `redirect`ed). */
  readonly push: (chunk: Buffer) => void
  /** Sends the socket's bytes to `to` instead of `push` (e.g. through an inflater that pushes). */
  readonly redirect: (to: (chunk: Buffer) => void) => void
  /** Ends reading: waiting and later `take`s fail with `reason` once `f` finds nothing. */
  readonly fail: (reason: string) => void
  /**
   * Waits until `f` can take something from the buffered bytes: it returns the value and how
   * many bytes it used, or undefined to wait for more (`closed`: no more will come).
   */
  readonly take: <A>(what: string, f: (buffered: Buffer, closed: boolean) => readonly [A, number] | undefined) => Effect.Effect<A, ProtocolError>
}

/** Connects to 127.0.0.1:port; the socket is destroyed when the scope closes. */
export const connectBytes = (
  port: number,
  protocol: ProtocolError["protocol"],
  timeout: Duration.DurationInput = READ_TIMEOUT
): Effect.Effect<SocketBytes, ProtocolError, Scope.Scope> =>
  Effect.gen(function*() {
    const socket = yield* Effect.acquireRelease(
      Effect.async<Socket, ProtocolError>((resume) => {
        const s = connect({ host: "127.0.0.1", port })
        const onError = (e: Error) =>
          resume(Effect.fail(new ProtocolError({ protocol, command: `connect :${port}`, reply: String(e) })))
        s.once("error", onError)
        s.once("connect", () => {
          s.off("error", onError)
          resume(Effect.succeed(s))
        })
      }),
      (s) => Effect.sync(() => s.destroy())
    )
    let buffer: Buffer = Buffer.alloc(0)
    let closed: string | undefined
    let wake: (() => void) | undefined
    const notify = () => {
      const w = wake
      wake = undefined
      w?.()
    }
    const push = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      notify()
    }
    const fail = (reason: string) => {
      closed ??= reason
      notify()
    }
    let input = push
    socket.on("data", (chunk: Buffer) => input(chunk))
    socket.on("error", (e) => fail(String(e)))
    socket.on("close", () => fail("connection closed"))

    const take = <A>(what: string, f: (buffered: Buffer, closed: boolean) => readonly [A, number] | undefined): Effect.Effect<A, ProtocolError> =>
      Effect.async<A, ProtocolError>((resume) => {
        const attempt = () => {
          const got = f(buffer, closed !== undefined)
          if (got !== undefined) {
            buffer = buffer.subarray(got[1])
            return resume(Effect.succeed(got[0]))
          }
          if (closed !== undefined) {
            return resume(Effect.fail(new ProtocolError({ protocol, command: what, reply: closed })))
          }
          wake = attempt
        }
        attempt()
        return Effect.sync(() => {
          wake = undefined
        })
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new ProtocolError({ protocol, command: what, reply: "timeout" })
        }),
        withLiveClock
      )

    return { socket, push, redirect: (to) => void (input = to), fail, take } satisfies SocketBytes
  })

/** The next line with its line end, from `bytes`. */
export const readRawLine = (bytes: SocketBytes): Effect.Effect<string, ProtocolError> =>
  bytes.take("read line", (b) => {
    const at = b.indexOf("\n")
    return at < 0 ? undefined : [b.subarray(0, at + 1).toString("latin1"), at + 1]
  })

/** The next `n` bytes from `bytes`. */
export const readExactly = (bytes: SocketBytes, n: number): Effect.Effect<string, ProtocolError> =>
  bytes.take(`read ${n} bytes`, (b) => (b.length < n ? undefined : [b.subarray(0, n).toString("latin1"), n]))

/** Connects to 127.0.0.1:port; the socket is destroyed when the scope closes. */
export const openWire = (
  port: number,
  protocol: ProtocolError["protocol"]
): Effect.Effect<Wire, ProtocolError, Scope.Scope> =>
  Effect.gen(function*() {
    const bytes = yield* connectBytes(port, protocol)
    const write = (data: string) =>
      Effect.async<void, ProtocolError>((resume) => {
        bytes.socket.write(Buffer.from(data, "latin1"), (e) =>
          resume(
            e === undefined || e === null
              ? Effect.void
              : Effect.fail(new ProtocolError({ protocol, command: "write", reply: String(e) }))
          ))
      })
    const wire: Wire = {
      readLine: Effect.map(readRawLine(bytes), (l) => l.replace(/\r?\n$/, "")),
      readBytes: (n) => readExactly(bytes, n),
      write
    }
    return wire
  })
