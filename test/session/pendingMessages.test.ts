/**
 * Uploaded messages nobody RESERVEd wait in the staging area until an APPLY MAILBOX claims them
 * (docs/gaps.md G3), and are dropped once no other backup can want them without a new upload:
 * at once when the claiming backup is that of the user whose unit (GET USER / GET META) runs,
 * else when the next unit begins, unless an open backup RESERVEd the message and still lacks it.
 * In-process server, real files; the staging area is looked at between commands.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openForRead } from "../../src/store/index.js"
import { dataFiles, listFiles, makeInProcessServer, makeServerRoot, type InProcessServer } from "../conformance/support/inProcess.js"

let server: InProcessServer
beforeAll(async () => {
  server = await makeInProcessServer(makeServerRoot("pending"))
})
afterAll(async () => {
  await server?.dispose()
  if (server) fs.rmSync(server.root.root, { recursive: true, force: true })
})

interface Message {
  readonly guid: string
  readonly literal: string
  readonly size: number
}
const message = (text: string): Message => {
  const body = `Subject: ${text}\r\n\r\n${text.repeat(20)}\r\n`
  const guid = createHash("sha1").update(body, "latin1").digest("hex")
  return { guid, literal: `%{default ${guid} ${body.length}}\r\n${body}`, size: body.length }
}
const applyMessage = (ms: ReadonlyArray<Message>) => `APPLY MESSAGE (${ms.map((m) => m.literal).join(" ")})`

let uid = 0
const applyMailbox = (name: string, ms: ReadonlyArray<Message>) => {
  const user = name.split(".")[1]!
  const records = ms
    .map((m, i) => `%(UID ${i + 1} MODSEQ 1 LAST_UPDATED 1 FLAGS () INTERNALDATE 1 SIZE ${m.size} GUID ${m.guid})`)
    .join(" ")
  return (
    `APPLY MAILBOX %(UNIQUEID u${++uid}${user} MBOXNAME ${name} SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID ${ms.length} HIGHESTMODSEQ 1 ` +
    `RECENTUID 1 RECENTTIME 1 LAST_APPENDDATE 1 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 7 PARTITION default ` +
    `ACL "${user}\tlrswipkxtecdan\t" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1 RECORD (${records}))`
  )
}

/** GUIDs of the messages waiting in the staging area now. */
const waiting = () =>
  listFiles(server.root.staging)
    .filter((f) => f.split(path.sep).includes("pending"))
    .map((f) => path.basename(f))
    .sort()

const holds = async (user: string, m: Message) => {
  const file = dataFiles(server.root.backups).find((p) => path.basename(p).startsWith(`${user}_`))
  if (file === undefined) return false
  const found = await Effect.runPromise(Effect.scoped(Effect.flatMap(openForRead(file), (r) => r.messageByGuid(m.guid))))
  return Option.isSome(found)
}

const OK = ["OK Success"]

describe("pending messages of a session", () => {
  it("within one user's unit a claimed message is dropped at once; the unclaimed ones wait", async () => {
    const [m1, m2, m3] = [message("one"), message("two"), message("three")]
    const s = server.open()
    expect(await s.command("GET USER anne")).toEqual(OK)
    expect(await s.command(applyMessage([m1!, m2!, m3!]))).toEqual(OK)
    expect(waiting()).toEqual([m1!.guid, m2!.guid, m3!.guid].sort())
    expect(await s.command(applyMailbox("user.anne", [m1!]))).toEqual(OK)
    expect(waiting()).toEqual([m2!.guid, m3!.guid].sort())
    // a second mailbox of the same user with the same message: it is in her backup already
    expect(await s.command(applyMailbox("user.anne.copy", [m1!, m2!]))).toEqual(OK)
    expect(waiting()).toEqual([m3!.guid])
    expect(await s.command("GET USER bert")).toEqual(OK)
    // nobody claimed m3: it waits for the rest of the session
    expect(waiting()).toEqual([m3!.guid])
    await s.close()
    expect(waiting()).toEqual([])
    expect(await holds("anne", m1!)).toBe(true)
    expect(await holds("anne", m2!)).toBe(true)
    expect(await holds("anne", m3!)).toBe(false)
  })

  it("outside one backup's unit a claimed message serves every mailbox, and goes when the next unit begins", async () => {
    const m4 = message("shared by two users")
    const s = server.open()
    // no GET first: the unit may concern any backup
    expect(await s.command(applyMessage([m4]))).toEqual(OK)
    expect(await s.command(applyMailbox("user.cora", [m4]))).toEqual(OK)
    expect(waiting()).toEqual([m4.guid])
    expect(await s.command(applyMailbox("user.dirk", [m4]))).toEqual(OK)
    expect(waiting()).toEqual([m4.guid])
    expect(await s.command("GET MAILBOXES (user.emil)")).toEqual(OK)
    expect(waiting()).toEqual([])
    // no longer held: a RESERVE of it for another user asks for it again
    expect(await s.command(`APPLY RESERVE %(PARTITION default MBOXNAME (user.emil) GUID (${m4.guid}))`)).toEqual([
      `* MISSING (${m4.guid})`,
      "OK Success"
    ])
    await s.close()
    expect(await holds("cora", m4)).toBe(true)
    expect(await holds("dirk", m4)).toBe(true)
  })

  it("GET MAILBOXES of one user's mailboxes is that user's unit", async () => {
    const m6 = message("one user's batch")
    const s = server.open()
    expect(await s.command("GET MAILBOXES (user.ines user.ines.sub)")).toEqual(OK)
    expect(await s.command(applyMessage([m6]))).toEqual(OK)
    expect(await s.command(applyMailbox("user.ines", [m6]))).toEqual(OK)
    expect(waiting()).toEqual([])
    await s.close()
    expect(await holds("ines", m6)).toBe(true)
  })

  it("a claimed message that an open backup RESERVEd and lacks stays past the next unit, until that backup takes it", async () => {
    const m5 = message("reserved while waiting")
    const s = server.open()
    expect(await s.command(applyMessage([m5]))).toEqual(OK)
    expect(await s.command(applyMailbox("user.fred", [m5]))).toEqual(OK)
    // waiting here, so not MISSING: gert's backup is to take it from the pending messages
    expect(await s.command(`APPLY RESERVE %(PARTITION default MBOXNAME (user.gert) GUID (${m5.guid}))`)).toEqual(OK)
    expect(await s.command("GET MAILBOXES (user.gert)")).toEqual(OK)
    expect(waiting()).toEqual([m5.guid])
    expect(await s.command(applyMailbox("user.gert", [m5]))).toEqual(OK)
    // claimed by the backup of the running unit, and nobody else waits for it
    expect(waiting()).toEqual([])
    await s.close()
    expect(await holds("fred", m5)).toBe(true)
    expect(await holds("gert", m5)).toBe(true)
  })
})
