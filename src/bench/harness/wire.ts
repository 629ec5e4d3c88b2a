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

/** Connects to 127.0.0.1:port; the socket is destroyed when the scope closes. */
export const openWire = (
  port: number,
  protocol: ProtocolError["protocol"]
): Effect.Effect<Wire, ProtocolError, Scope.Scope> =>
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
    socket.on("data", (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      notify()
    })
    socket.on("error", (e) => {
      closed = String(e)
      notify()
    })
    socket.on("close", () => {
      closed ??= "connection closed"
      notify()
    })

    // waits until `take` can extract something from the buffer
    const takeWhenReady = <A>(what: string, take: () => A | undefined): Effect.Effect<A, ProtocolError> =>
      Effect.async<A, ProtocolError>((resume) => {
        const attempt = () => {
          const got = take()
          if (got !== undefined) return resume(Effect.succeed(got))
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
          duration: READ_TIMEOUT,
          onTimeout: () => new ProtocolError({ protocol, command: what, reply: "timeout" })
        }),
        withLiveClock
      )

    const readLine = takeWhenReady("read line", () => {
      const at = buffer.indexOf("\n")
      if (at < 0) return undefined
      const line = buffer.subarray(0, at).toString("latin1").replace(/\r$/, "")
      buffer = buffer.subarray(at + 1)
      return line
    })
    const readBytes = (n: number) =>
      takeWhenReady(`read ${n} bytes`, () => {
        if (buffer.length < n) return undefined
        const bytes = buffer.subarray(0, n).toString("latin1")
        buffer = buffer.subarray(n)
        return bytes
      })
    const write = (data: string) =>
      Effect.async<void, ProtocolError>((resume) => {
        socket.write(Buffer.from(data, "latin1"), (e) =>
          resume(
            e === undefined || e === null
              ? Effect.void
              : Effect.fail(new ProtocolError({ protocol, command: "write", reply: String(e) }))
          ))
      })
    const wire: Wire = { readLine, readBytes, write }
    return wire
  })
