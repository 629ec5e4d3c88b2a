/**
 * One command line read into one tagged `Command` (src/session/commandReader.ts, commands.ts):
 * which tag and fields each line gives, and which lines are answered without a command
 * (`LineRejected`, `ItemRefused`) — with the answers the wire shows (the transcripts of
 * test/conformance hold the whole conversations).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ByteReader } from "../../src/protocol/ByteReader.js"
import { eatLine, readCommand } from "../../src/session/commandReader.js"
import { memoryLog } from "../../src/telemetry/ServiceLog.js"

const staging = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-commands-"))
afterAll(() => fs.rmSync(staging, { recursive: true, force: true }))

/** Reads every command of `input`, as the session would (authenticated or not). */
const readAll = (input: string, authenticated = true, starttls = false) => {
  let given = false
  const reader = ByteReader.make(
    Effect.sync(() => {
      if (given) return null
      given = true
      return Buffer.from(input, "latin1")
    })
  )
  const log = memoryLog()
  const one = readCommand({
    reader,
    maxword: 4096,
    parse: { maxQuoted: 8192, literalMinus: false, files: { _tag: "Stage", stagingDir: staging } },
    starttls,
    authenticated: () => authenticated,
    log
  })
  return Effect.runPromise(
    Effect.gen(function* () {
      const out: Array<unknown> = []
      while (true) {
        const r = yield* Effect.either(one)
        if (Either.isRight(r)) {
          const { item: _item, ...fields } = { item: undefined, ...r.right }
          out.push(fields)
          continue
        }
        const e = r.left
        if (e._tag === "EndOfInput") return out
        if (e._tag === "LineRejected") {
          out.push({ rejected: e.reply })
          yield* eatLine(reader, e.last)
          continue
        }
        if (e._tag === "ItemRefused") {
          out.push({ refused: e.context, code: e.failure._tag === "Refused" ? e.failure.code : e.failure._tag })
          continue
        }
        return yield* Effect.fail(e)
      }
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )
}

describe("a command line as a typed command", () => {
  it("gives the line commands with their arguments", async () => {
    expect(await readAll("NOOP\r\nrestart\r\nAUTHENTICATE PLAIN AGFkbWluAHNlY3JldA==\r\nAuthenticate LOGIN\r\nCOMPRESS DEFLATE\r\nEXIT\r\n")).toEqual([
      { _tag: "Noop" },
      { _tag: "Restart" },
      { _tag: "Authenticate", mechanism: "PLAIN", initial: "AGFkbWluAHNlY3JldA==" },
      { _tag: "Authenticate", mechanism: "LOGIN" },
      { _tag: "Compress", algorithm: "DEFLATE" },
      { _tag: "Exit" }
    ])
  })

  it("gives each kind of APPLY and GET", async () => {
    const lines = [
      "APPLY SUB %(USERID anne MBOXNAME user.anne.x)",
      "APPLY UNMAILBOX user.anne.old",
      "APPLY RENAME %(OLDMBOXNAME user.anne.a NEWMBOXNAME user.anne.b PARTITION default UIDVALIDITY 1)",
      "APPLY RESERVE %(PARTITION default MBOXNAME (user.anne) GUID (0123456789ABCDEF0123456789abcdef01234567 nothex))",
      "APPLY UNUSER anne",
      "APPLY QUOTA %(ROOT user.anne)",
      "GET USER anne",
      "get meta bob",
      "GET MAILBOXES (user.anne user.anne.x)",
      "GET FULLMAILBOX user.anne",
      "GET UNIQUEIDS (x)"
    ]
    expect(await readAll(lines.join("\r\n") + "\r\n")).toEqual([
      { _tag: "ApplyUserItem", kind: "SUB", userid: "anne" },
      { _tag: "ApplyUnmailbox", mboxname: "user.anne.old" },
      { _tag: "ApplyRename", oldName: "user.anne.a", newName: "user.anne.b" },
      { _tag: "ApplyReserve", mboxnames: ["user.anne"], guids: ["0123456789abcdef0123456789abcdef01234567"] },
      { _tag: "ApplyUnuser", userid: "anne" },
      { _tag: "ApplyIgnored" },
      { _tag: "GetUser", userid: "anne" },
      { _tag: "GetMeta", userid: "bob" },
      { _tag: "GetMailboxes", names: ["user.anne", "user.anne.x"] },
      { _tag: "GetFullMailbox", name: "user.anne" },
      { _tag: "GetUniqueids" }
    ])
  })

  it("answers a malformed line without a command, as Cyrus does", async () => {
    const lines = ["", "NOOP extra", "AUTHENTICATE", "AUTHENTICATE ({bad)", "FROB", "STARTTLS", "APPLY", "APPLY FROB x", "GET USER (anne)", "APPLY UNUSER (anne)"]
    expect(await readAll(lines.join("\r\n") + "\r\n")).toEqual([
      { rejected: "BAD Null command" },
      { rejected: "BAD Unexpected extra arguments to Noop" },
      { rejected: "BAD Missing required argument to Authenticate" },
      { rejected: "BAD Invalid mechanism" },
      { rejected: "BAD IMAP_PROTOCOL_ERROR Unrecognized command" },
      { rejected: "BAD IMAP_PROTOCOL_ERROR Unrecognized command" },
      { rejected: "BAD Missing required argument to Apply" },
      { refused: "APPLY FROB", code: "protocol" },
      { refused: "GET USER", code: "bad-parameters" },
      { refused: "APPLY UNUSER", code: "bad-parameters" }
    ])
  })

  it("asks for AUTHENTICATE first for APPLY, GET and other A/G words; offers STARTTLS only with TLS", async () => {
    expect(await readAll("GET USER anne\r\nAPPLY SUB x\r\nAFOO\r\nSTARTTLS\r\nNOOP\r\n", false, true)).toEqual([
      { rejected: "NO Please authenticate first" },
      { rejected: "NO Please authenticate first" },
      { rejected: "NO Please authenticate first" },
      { _tag: "Starttls" },
      { _tag: "Noop" }
    ])
  })
})
