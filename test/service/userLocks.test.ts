/**
 * A session releases each user's backup when the next user's sync begins (GET USER / GET
 * META of another user), as long as nothing RESERVEd for it still waits for its upload; a
 * later command for that user opens it again. In-process server, real files; the lock is seen
 * through the in-process claim that lockDataFile holds exactly as long as the fcntl lock.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openForRead } from "../../src/store/index.js"
import { isHeldInProcess } from "../../src/store/dataFileLock.js"
import { dataFiles, makeInProcessServer, makeServerRoot, type InProcessServer } from "../conformance/support/inProcess.js"

let server: InProcessServer
beforeAll(async () => {
  server = await makeInProcessServer(makeServerRoot("userlocks"))
})
afterAll(async () => {
  await server?.dispose()
  if (server) fs.rmSync(server.root.root, { recursive: true, force: true })
})

const dataFileOf = (user: string) => {
  const f = dataFiles(server.root.backups).find((p) => path.basename(p).startsWith(`${user}_`))
  if (f === undefined) throw new Error(`no backup of ${user}`)
  return f
}
const locked = (user: string) => isHeldInProcess(dataFileOf(user))

const message = (text: string) => {
  const body = Buffer.from(text, "latin1")
  const guid = createHash("sha1").update(body).digest("hex")
  return { guid, line: `APPLY MESSAGE (%{default ${guid} ${body.length}}\r\n${text})` }
}

describe("per-user release of backups within a session", () => {
  it("GET USER of the next user unlocks the users before it; a later command opens them again", async () => {
    const s = server.open()
    expect(await s.command("GET USER anne")).toEqual(["OK Success"])
    expect(await s.command("APPLY SUB %(USERID anne MBOXNAME user.anne.x)")).toEqual(["OK Success"])
    expect(locked("anne")).toBe(true)
    expect(await s.command("GET USER bob")).toEqual(["OK Success"])
    expect(locked("anne")).toBe(false)
    expect(await s.command("APPLY SUB %(USERID bob MBOXNAME user.bob.y)")).toEqual(["OK Success"])
    expect(await s.command("GET META carol")).toEqual(["OK Success"])
    expect(locked("bob")).toBe(false)
    // back to anne: opened again, and her state is all there
    expect(await s.command("GET META anne")).toEqual(["* LSUB (user.anne.x)", "OK Success"])
    expect(await s.command("APPLY SUB %(USERID anne MBOXNAME user.anne.z)")).toEqual(["OK Success"])
    expect(await s.command("GET META anne")).toEqual(["* LSUB (user.anne.x user.anne.z)", "OK Success"])
    expect(locked("anne")).toBe(true)
    await s.close()
    expect(locked("anne")).toBe(false)
  })

  it("EXIT seals and unlocks every open backup before it is answered", async () => {
    const s = server.open()
    expect(await s.command("GET USER gina")).toEqual(["OK Success"])
    expect(await s.command("APPLY SUB %(USERID gina MBOXNAME user.gina.x)")).toEqual(["OK Success"])
    expect(await s.command("APPLY SUB %(USERID hans MBOXNAME user.hans.x)")).toEqual(["OK Success"])
    expect([locked("gina"), locked("hans")]).toEqual([true, true])
    expect(await s.command("EXIT")).toEqual(["OK Finished"])
    // what a client may do as soon as it has read the answer (sync_client -A returns then)
    expect(locked("gina")).toBe(false)
    expect(locked("hans")).toBe(false)
    const subs = await Effect.runPromise(Effect.scoped(Effect.flatMap(openForRead(dataFileOf("gina")), (r) => r.subscriptions())))
    expect(subs.map((r) => r.mboxname)).toEqual(["user.gina.x"])
    await s.close()
  })

  it("keeps a backup open while a GUID RESERVEd for it has not been uploaded; the upload still lands there", async () => {
    const m = message("Subject: reserved for dora\r\n\r\nbody\r\n")
    const s = server.open()
    expect(await s.command("GET USER dora")).toEqual(["OK Success"])
    expect(await s.command(`APPLY RESERVE %(PARTITION default MBOXNAME (user.dora) GUID (${m.guid}))`)).toEqual([
      `* MISSING (${m.guid})`,
      "OK Success"
    ])
    expect(await s.command("GET USER emil")).toEqual(["OK Success"])
    expect(locked("dora")).toBe(true)
    expect(await s.command(m.line)).toEqual(["OK Success"])
    expect(await s.command("GET USER fred")).toEqual(["OK Success"])
    expect(locked("dora")).toBe(false)
    await s.close()
    const held = await Effect.runPromise(
      Effect.scoped(Effect.flatMap(openForRead(dataFileOf("dora")), (r) => r.messageByGuid(m.guid)))
    )
    expect(Option.isSome(held)).toBe(true)
  })
})
