/**
 * A fake sync_server for restore tests without Cyrus: it greets like sync_server, records every
 * command (literals and message files included), answers RESERVE with every GUID missing (so
 * everything is uploaded) and everything else with OK.
 */
import * as net from "node:net"

/** A fake sync_server: records each command (literals included), answers OK. */
export const recorder = async (socketPath: string) => {
  const commands: Array<string> = []
  const server = net.createServer((sock) => {
    let buf = ""
    sock.write("* OK recorder Cyrus sync server (conformance recorder)\r\n")
    sock.on("data", (b: Buffer) => {
      buf += b.toString("latin1")
      // Cut complete commands: a line ends at CRLF unless it ends in a literal header.
      for (;;) {
        let at = 0
        let complete = false
        for (;;) {
          const eol = buf.indexOf("\r\n", at)
          if (eol < 0) break
          const head = buf.slice(at, eol)
          const lit = /(?:\{(\d+)\+?\}|%\{\S+ \S+ (\d+)\})$/.exec(head)
          if (lit === null) {
            at = eol + 2
            complete = true
            break
          }
          const n = Number(lit[1] ?? lit[2])
          if (buf.length < eol + 2 + n) break
          at = eol + 2 + n
        }
        if (!complete) return
        const cmd = buf.slice(0, at - 2)
        buf = buf.slice(at)
        commands.push(cmd)
        const reserve = /^APPLY RESERVE .* GUID \(([0-9a-f ]*)\)\)$/.exec(cmd)
        sock.write(reserve && reserve[1] !== "" ? `* MISSING (${reserve[1]})\r\nOK success\r\n` : cmd.startsWith("EXIT") ? "OK Finished\r\n" : "OK success\r\n")
      }
    })
    sock.on("error", () => undefined)
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  return { commands, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

