import * as net from "node:net"
import * as zlib from "node:zlib"
import { Effect, Option } from "effect"
import { describe, expect, it } from "vitest"
import { fromSocket } from "../../src/service/nodeConnection.js"
import { IDLE_TIMEOUT_MESSAGE } from "../../src/transport/Connection.js"

/** A connected pair: `server` wrapped as our Connection, `client` a plain socket. */
const pair = () =>
  new Promise<{ server: net.Socket; client: net.Socket; close: () => void }>((resolve) => {
    const listener = net.createServer((server) => resolve({ server, client, close: () => listener.close() }))
    let client: net.Socket
    listener.listen(0, "127.0.0.1", () => {
      client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1")
    })
  })

describe("the Node transport", () => {
  it("a read that waits longer than the idle timeout fails with the idle message; a read of buffered input does not wait", async () => {
    const { server, client, close } = await pair()
    try {
      const conn = fromSocket(server)
      conn.setIdleTimeout!(150)
      client.write("NOOP\r\n")
      const first = await Effect.runPromise(conn.read)
      expect(Buffer.from(Option.getOrThrow(first)).toString()).toBe("NOOP\r\n")
      const t0 = Date.now()
      const e = await Effect.runPromise(Effect.flip(conn.read))
      expect(e.message).toBe(IDLE_TIMEOUT_MESSAGE)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(100)
      // the timer is gone with the read: later input is still read
      client.write("EXIT\r\n")
      const next = await Effect.runPromise(conn.read)
      expect(Buffer.from(Option.getOrThrow(next)).toString()).toBe("EXIT\r\n")
      await Effect.runPromise(conn.close)
    } finally {
      client.destroy()
      close()
    }
  })

  it("COMPRESS input is inflated piece by piece, each piece as soon as it is read", async () => {
    const { server, client, close } = await pair()
    try {
      const conn = fromSocket(server)
      await Effect.runPromise(conn.startCompression(new Uint8Array(0)))
      const deflate = zlib.createDeflateRaw()
      const send = (text: string) =>
        new Promise<void>((resolve) => {
          deflate.write(text)
          deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            const out = deflate.read() as Buffer | null
            if (out !== null) client.write(out)
            resolve()
          })
        })
      const readText = async (n: number) => {
        let got = ""
        while (got.length < n) got += Buffer.from(Option.getOrThrow(await Effect.runPromise(conn.read))).toString("latin1")
        return got
      }
      const big = "x".repeat(300_000)
      await send("APPLY MESSAGE ()\r\n")
      expect(await readText(18)).toBe("APPLY MESSAGE ()\r\n")
      await send(big)
      expect(await readText(big.length)).toBe(big)
      // garbage is a compression failure, not a crash
      client.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))
      const e = await Effect.runPromise(Effect.flip(conn.read))
      expect(e.message).toMatch(/^compression: /)
      await Effect.runPromise(conn.close)
    } finally {
      client.destroy()
      close()
    }
  })
})
