/**
 * A minimal LMTP client (RFC 2033) for delivering test mail to lmtpd, which
 * the source runs with `-a` (preauthenticated) on TCP.
 */
import { Effect } from "effect"
import { openWire, ProtocolError, type Wire } from "./Wire.js"

export interface Delivery {
  /** e.g. alice@example.com, or alice+Work.Projects@example.com for INBOX.Work.Projects (needs `anyone p`). */
  readonly recipient: string
  /** The raw RFC 5322 message, latin1, CRLF line ends. */
  readonly message: string
}

export interface DeliveryReport {
  readonly delivered: number
  /** recipient and reply of every refused delivery */
  readonly refused: ReadonlyArray<{ recipient: string; reply: string }>
  readonly bytes: number
}

/** Reads one (possibly multi-line) reply; returns the code and the full text. */
const readReply = (wire: Wire): Effect.Effect<{ code: number; text: string }, ProtocolError> =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    for (;;) {
      const line = yield* wire.readLine
      lines.push(line)
      if (!/^\d{3}-/.test(line)) return { code: Number(line.slice(0, 3)), text: lines.join("\n") }
    }
  })

const expect = (wire: Wire, command: string, ok: (code: number) => boolean) =>
  readReply(wire).pipe(
    Effect.filterOrFail((r) => ok(r.code), (r) => new ProtocolError({ protocol: "lmtp", command, reply: r.text }))
  )

/** Dot-stuffing plus the terminating dot line. */
const dataBlock = (message: string): string => {
  const body = message.endsWith("\r\n") ? message : `${message}\r\n`
  return body.replace(/(^|\r\n)\./g, "$1..") + ".\r\n"
}

/**
 * Delivers every message in one LMTP session (one transaction each).
 * A recipient refused at RCPT or after DATA is reported, not failed.
 */
export const deliver = (port: number, deliveries: ReadonlyArray<Delivery>): Effect.Effect<DeliveryReport, ProtocolError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const wire = yield* openWire(port, "lmtp")
      yield* expect(wire, "greeting", (c) => c === 220)
      yield* wire.write("LHLO harness.example\r\n")
      yield* expect(wire, "LHLO", (c) => c === 250)
      let delivered = 0
      let bytes = 0
      const refused: Array<{ recipient: string; reply: string }> = []
      for (const d of deliveries) {
        yield* wire.write("MAIL FROM:<sender@example.com>\r\n")
        yield* expect(wire, "MAIL FROM", (c) => c === 250)
        yield* wire.write(`RCPT TO:<${d.recipient}>\r\n`)
        const rcpt = yield* readReply(wire)
        if (rcpt.code !== 250) {
          refused.push({ recipient: d.recipient, reply: rcpt.text })
          yield* wire.write("RSET\r\n")
          yield* expect(wire, "RSET", (c) => c === 250)
          continue
        }
        yield* wire.write("DATA\r\n")
        yield* expect(wire, "DATA", (c) => c === 354)
        yield* wire.write(dataBlock(d.message))
        const result = yield* readReply(wire) // one reply per accepted recipient
        if (result.code === 250) {
          delivered++
          bytes += d.message.length
        } else {
          refused.push({ recipient: d.recipient, reply: result.text })
        }
      }
      yield* wire.write("QUIT\r\n")
      yield* readReply(wire).pipe(Effect.ignore)
      return { delivered, refused, bytes }
    })
  )
