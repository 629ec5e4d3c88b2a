import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Connection } from "../../src/transport/Connection.js"
import { ctimeText, newSessionId, openTelemetryLog, tapConnection, telemetryHeader } from "../../src/telemetry/TelemetryLog.js"
import { joinedRecords, parseTelemetry } from "../harness/telemetryLog.js"

const tempConfigDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "telemetry-"))

/** A connection whose input is a fixed list of chunks and whose flushed output is collected. */
const memoryConnection = (chunks: ReadonlyArray<string>) => {
  const input = chunks.map((c) => Buffer.from(c, "latin1"))
  const sent: Array<string> = []
  let queued = ""
  const conn: Connection = {
    peer: { clientHost: "[127.0.0.1]", isLocal: false, remoteAddress: "127.0.0.1", remotePort: 1, localAddress: "127.0.0.1", localPort: 2 },
    read: Effect.sync(() => Option.fromNullable(input.shift())),
    write: (b) => Effect.sync(() => void (queued += typeof b === "string" ? b : Buffer.from(b).toString("latin1"))),
    flush: Effect.sync(() => {
      if (queued !== "") sent.push(queued)
      queued = ""
    }),
    startCompression: () => Effect.void,
    startTls: () => Effect.void,
    compressed: false,
    tlsActive: false,
    peerCertificateName: undefined,
    stats: { protocolIn: 0, protocolOut: 0, transportIn: 0, transportOut: 0 },
    close: Effect.void
  }
  return { conn, sent }
}

describe("telemetry log format", () => {
  it("ctime text is ctime(3)'s, with its newline and a space-padded day", () => {
    expect(ctimeText(new Date(2023, 10, 14, 22, 13, 20))).toBe("Tue Nov 14 22:13:20 2023\n")
    expect(ctimeText(new Date(2023, 10, 5, 1, 2, 3))).toBe("Sun Nov  5 01:02:03 2023\n")
    expect(telemetryHeader("repluser", new Date(2023, 10, 14, 22, 13, 20))).toBe("---------- repluser Tue Nov 14 22:13:20 2023\n\n")
  })

  it("session ids have Cyrus's form and count within a second", () => {
    const at = new Date(1_700_000_000_500)
    const a = newSessionId("cyb-backup", at, 4242)
    const b = newSessionId("cyb-backup", at, 4242)
    expect(a).toMatch(/^cyb-backup-1700000000-4242-\d+-\d+$/)
    expect(Number(b.split("-")[4])).toBe(Number(a.split("-")[4]) + 1)
  })

  it.effect("no log directory, no log (and none is created); unsafe userids are refused", () =>
    Effect.gen(function*() {
      const dir = tempConfigDir()
      const target = { configDirectory: dir, userid: "admin", ident: "backupd", pid: 77 }
      expect(Option.isNone(yield* openTelemetryLog(target))).toBe(true)
      expect(fs.existsSync(path.join(dir, "log"))).toBe(false)
      fs.mkdirSync(path.join(dir, "log", ".."), { recursive: true })
      expect(Option.isNone(yield* openTelemetryLog({ ...target, userid: ".." }))).toBe(true)
      expect(Option.isNone(yield* openTelemetryLog({ ...target, userid: "a/b" }))).toBe(true)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("the file is <ident>-<pid> (or -<sessionid>), appended to, header first", () =>
    Effect.gen(function*() {
      const dir = tempConfigDir()
      fs.mkdirSync(path.join(dir, "log", "admin"), { recursive: true })
      const target = { configDirectory: dir, userid: "admin", ident: "backupd", pid: 77 }
      const when = new Date(2026, 10, 28, 17, 5, 44)
      for (let i = 0; i < 2; i++) {
        const log = Option.getOrThrow(yield* openTelemetryLog(target, when))
        expect(log.file).toBe(path.join(dir, "log", "admin", "backupd-77"))
        log.close()
      }
      expect(fs.readFileSync(path.join(dir, "log", "admin", "backupd-77"), "latin1")).toBe(
        "---------- admin Sat Nov 28 17:05:44 2026\n\n".repeat(2)
      )
      const bySession = Option.getOrThrow(yield* openTelemetryLog({ ...target, sessionId: "cyb-1-77-1-9" }))
      expect(path.basename(bySession.file)).toBe("backupd-cyb-1-77-1-9")
      bySession.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("a tapped connection logs plaintext input chunks and output flushes once attached", () =>
    Effect.gen(function*() {
      const dir = tempConfigDir()
      fs.mkdirSync(path.join(dir, "log", "admin"), { recursive: true })
      const big = "APPLY MESSAGE " + "x".repeat(9000) + "\r\n"
      const { conn, sent } = memoryConnection(["AUTHENTICATE PLAIN xyz\r\n", "COMPRESS DEFLATE\r\n", big])
      const tapped = tapConnection(conn)
      const c = tapped.connection
      yield* c.read
      yield* c.write("OK Success (no protection)\r\n")
      yield* c.flush // before the log starts: not logged
      tapped.attach(Option.getOrThrow(yield* openTelemetryLog({ configDirectory: dir, userid: "admin", ident: "backupd", pid: 1 })))
      yield* c.read
      yield* c.write("OK DEFLATE active\r\n")
      yield* c.flush
      yield* c.read
      yield* c.write("OK ")
      yield* c.write("Success\r\n")
      yield* c.flush
      tapped.log()!.close()
      expect(sent).toEqual(["OK Success (no protection)\r\n", "OK DEFLATE active\r\n", "OK Success\r\n"])

      const [session] = parseTelemetry(fs.readFileSync(path.join(dir, "log", "admin", "backupd-1"), "latin1"))
      expect(session!.userid).toBe("admin")
      const records = session!.records
      expect(records.map((r) => r.dir)).toEqual(["<", ">", "<", "<", "<", ">"])
      expect(records.map((r) => r.bytes.length)).toEqual([18, 19, 4096, 4096, big.length - 8192, 12])
      expect(joinedRecords(records, "<")).toBe("COMPRESS DEFLATE\r\n" + big)
      expect(joinedRecords(records, ">")).toBe("OK DEFLATE active\r\nOK Success\r\n")
      for (const r of records) expect(Math.abs(r.time - Date.now() / 1000)).toBeLessThan(60)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it("the C backupd's captured logs read back with the same parser (the shape we write)", () => {
    const dir = path.join(import.meta.dirname, "..", "fixtures", "transcripts")
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".backupd.log"))) {
      const sessions = parseTelemetry(fs.readFileSync(path.join(dir, f), "latin1"))
      expect(sessions.length, f).toBeGreaterThan(0)
      for (const s of sessions) {
        expect(s.userid).toBe("admin")
        expect(s.records[0]).toMatchObject({ dir: "<", bytes: "COMPRESS DEFLATE\r\n" })
        expect(s.records[1]).toMatchObject({ dir: ">", bytes: "OK DEFLATE active\r\n" })
        // records are I/O-buffer sized (Cyrus's inflated reads can slightly exceed 4096)
        for (const r of s.records) expect(r.bytes.length).toBeLessThanOrEqual(8192)
        expect(joinedRecords(s.records, "<")).toMatch(/EXIT\r\n$/)
      }
    }
  })
})
