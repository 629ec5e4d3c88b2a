/** The progress bar of the long tools: drawn only on a terminal, never with -j or a piped stdout. */
import { PassThrough, Readable } from "node:stream"
import { describe, expect, it } from "vitest"
import { byteText, progressBar } from "../../src/tools/Progress.js"
import { uploadProgress } from "../../src/tools/restore/restore.js"
import type { ToolIo } from "../../src/tools/ToolIo.js"

const ioWith = (stderrIsTty: boolean, stdoutIsTty: boolean) => {
  const err = new PassThrough()
  const parts: Array<Buffer> = []
  err.on("data", (b: Buffer) => parts.push(b))
  const io: ToolIo = { stdout: new PassThrough(), stderr: err, stdin: Readable.from([]), stderrIsTty, stdoutIsTty, env: {} }
  return { io, text: () => Buffer.concat(parts).toString("latin1") }
}

const drive = (io: ToolIo, json = false) => {
  let t = 0
  const bar = progressBar(io, { json, unit: "chunks", now: () => t })
  bar.step(0, 4, "alice")
  t = 2000
  bar.addBytes(4_000_000)
  bar.step(2, 4, "bob")
  bar.clear()
}

describe("progress bar", () => {
  it("on a terminal: counts, bytes and rate, then erased", async () => {
    const { io, text } = ioWith(true, true)
    drive(io)
    await new Promise((r) => setImmediate(r))
    expect(text()).toContain("[------------------------] 0/4 chunks alice")
    expect(text()).toContain("[############------------] 2/4 chunks, 4.0 MB, 2.0 MB/s bob")
    expect(text().endsWith("\r\x1b[K")).toBe(true)
  })

  it("nothing with -j, with stdout piped, or with stderr not a terminal", async () => {
    for (const [err, out, json] of [[true, true, true], [true, false, false], [false, true, false]] as const) {
      const { io, text } = ioWith(err, out)
      drive(io, json)
      await new Promise((r) => setImmediate(r))
      expect(text()).toBe("")
    }
  })

  it("restore's upload bar follows the same rule: both stdout and stderr terminals", () => {
    for (const [stderrIsTty, stdoutIsTty, drawn] of [[true, true, true], [true, false, false], [false, true, false]] as const) {
      const parts: Array<string> = []
      const bar = uploadProgress({ stdout: () => {}, stderr: (t) => void parts.push(t), stderrIsTty, stdoutIsTty })
      bar.step(1, 4, 1_000_000, 4_000_000)
      bar.clear()
      expect(parts.join(""), `stderr ${stderrIsTty}, stdout ${stdoutIsTty}`).toBe(drawn ? "\r\x1b[K[######------------------] 1/4 messages, 1.0/4.0 MB\r\x1b[K" : "")
    }
  })

  it("byte amounts", () => {
    expect([999, 1500, 2_500_000, 3_210_000_000].map(byteText)).toEqual(["999 B", "1.5 kB", "2.5 MB", "3.21 GB"])
  })
})
