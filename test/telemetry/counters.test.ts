/** backupd's session counters: NO/BAD reasons from the lines written, kinds, refusals, the appended line. */
import { Effect, Option } from "effect"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { describe, expect, it } from "vitest"
import { ApplyReply, Reply } from "../../src/session/replies.js"
import { appendSessionCounts, makeSessionCounter, processCountersFile, replyReason } from "../../src/telemetry/Counters.js"
import type { Connection } from "../../src/transport/Connection.js"

const stats = { protocolIn: 10, protocolOut: 20, transportIn: 5, transportOut: 8 }
const fakeConnection = (): Connection => ({
  peer: { clientHost: "[127.0.0.1]", isLocal: false, remoteAddress: undefined, remotePort: undefined, localAddress: undefined, localPort: undefined },
  read: Effect.succeed(Option.none()),
  write: () => Effect.void,
  flush: Effect.void,
  startCompression: () => Effect.void,
  startTls: () => Effect.void,
  compressed: false,
  tlsActive: false,
  peerCertificateName: undefined,
  stats,
  close: Effect.void
})

describe("session counters", () => {
  it("every fixed NO/BAD text of the session has a reason of its own", () => {
    const lines = [...Object.values(Reply), ...Object.values(ApplyReply)]
      .map((r) => (typeof r === "function" ? (r as (x: string) => string)("Apply") : r))
      .filter((l) => l.startsWith("NO ") || l.startsWith("BAD "))
    for (const l of lines) expect([l, replyReason(l.slice(l.indexOf(" ") + 1))]).not.toEqual([l, "other"])
    expect(replyReason("IMAP_MAILBOX_LOCKED Mailbox locked")).toBe("mailbox_locked")
    expect(replyReason("authentication failure")).toBe("other")
  })

  it("counts kinds, NO/BAD lines as written, refusals and bytes; appends one line per session", async () => {
    const c = makeSessionCounter()
    const conn = c.connection(fakeConnection())
    c.command("apply", "MAILBOX")
    c.command("apply", "message")
    c.command("get", "USER")
    c.command("apply", "WHATEVER")
    await Effect.runPromise(conn.write(ApplyReply.mailboxLocked + "\r\n"))
    await Effect.runPromise(conn.write("NO authentication failure\r\n"))
    await Effect.runPromise(conn.write(Reply.nullCommand + "\r\n"))
    await Effect.runPromise(conn.write("* MAILBOX (NO BAD)\r\n"))
    expect(conn.stats).toBe(stats)
    const counts = c.finish(stats, false)
    expect(counts).toEqual({
      sessions: { "": 1 },
      apply: { mailbox: 1, message: 1, other: 1 },
      get: { user: 1 },
      no: { mailbox_locked: 1, other: 1 },
      bad: { null_command: 1 },
      sessions_refused: { auth: 1, locked: 1 },
      received_bytes: { protocol: 10, wire: 5 },
      sent_bytes: { protocol: 20, wire: 8 }
    })
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "counters-"))
    const errors: Array<string> = []
    await Effect.runPromise(appendSessionCounts(path.join(dir, "c"), counts, (m) => errors.push(m)))
    await Effect.runPromise(appendSessionCounts(path.join(dir, "c"), counts, (m) => errors.push(m)))
    expect(errors).toEqual([])
    const lines = fs.readFileSync(processCountersFile(path.join(dir, "c")), "utf8").trimEnd().split("\n")
    expect(lines.map((l) => JSON.parse(l))).toEqual([counts, counts])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("a logged-in or pre-authenticated session is not refused for auth", () => {
    const c = makeSessionCounter()
    c.loggedIn()
    expect(c.finish(stats, false).sessions_refused).toBeUndefined()
  })
})
