/**
 * Our reader on the backup written by the real C backupd: the same chunks, mailboxes and
 * messages as `cyr_backup list all` printed, and every message's bytes hash to its GUID.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { openForRead } from "../../src/store/read/BackupReader.js"
import { copyGolden, FIXTURES, goldenChunks } from "./support.js"
import { tempDir } from "../support/cyrus.js"

const listing = fs.readFileSync(path.join(FIXTURES, "alice.cyr_backup_list_all.txt"), "latin1").split("\n")
const section = (start: RegExp, end: RegExp | null) => {
  const from = listing.findIndex((l) => start.test(l))
  const rest = listing.slice(from + 1)
  const to = end === null ? rest.length : rest.findIndex((l) => end.test(l))
  return rest.slice(0, to).filter((l) => l.trim().length > 0)
}

const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex")

describe("reading the C-written golden backup", () => {
  it.scoped("lists the chunks, mailboxes and messages cyr_backup listed", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("golden"))
      const r = yield* openForRead(data)

      const chunkLines = section(/^\s+id offset\tlength/, /^uniqueid/)
      const chunks = yield* r.chunks()
      expect(chunks.map((c) => `${c.id} ${c.offset}\t${c.length}`)).toEqual(
        chunkLines.map((l) => l.trim().split(/\t/).slice(0, 2).join("\t"))
      )

      const mailboxLines = section(/^uniqueid\s+last append date/, /^[0-9a-f]{40}$/)
      const mailboxes = yield* r.mailboxes()
      expect(mailboxes.map((m) => [m.uniqueid, m.mboxname])).toEqual(
        mailboxLines.map((l) => {
          const parts = l.trim().split(/\s+/)
          return [parts[0], parts[parts.length - 1]]
        })
      )
      const guids = listing.filter((l) => /^[0-9a-f]{40}$/.test(l))
      const messages = yield* r.messages()
      expect(messages.map((m) => m.guid)).toEqual(guids)

      for (const m of messages) {
        const bytes = yield* Stream.runCollect(r.messageBytes(m.guid))
        const all = Buffer.concat(Chunk.toReadonlyArray(bytes))
        expect(all.length).toBe(m.size)
        expect(sha1(all)).toBe(m.guid)
      }
    }))

  it.scoped("inflates each chunk to its recorded length and data_sha1", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("golden"))
      const r = yield* openForRead(data)
      for (const c of goldenChunks()) {
        const parts = yield* Stream.runCollect(r.chunkData(c.id))
        const all = Buffer.concat(Chunk.toReadonlyArray(parts))
        expect(all.length).toBe(c.length)
        expect(sha1(all)).toBe(c.data_sha1)
      }
    }))

  it.scoped("mailbox with records, by name and by uniqueid", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("golden"))
      const r = yield* openForRead(data)
      const inbox = yield* r.mailboxByName("user.alice", { withRecords: true })
      expect(inbox._tag).toBe("Some")
      if (inbox._tag !== "Some") return
      expect(inbox.value.uniqueid).toBe("nmvlkc9gmmqlk26jwc9fxzgj")
      expect(inbox.value.highestmodseq).toBe(9n)
      expect(inbox.value.records.map((x) => [x.uid, x.flags, x.expunged])).toEqual([
        [1, "(\\Answered \\Seen)", null],
        [2, "(\\Deleted Changed $Label2)", 1795885546],
        [3, "()", null]
      ])
      const byId = yield* r.mailboxByUniqueid("ijvpgr1ghft3jfon9kk0utf2")
      expect(byId._tag === "Some" && byId.value.mboxname).toBe("user.alice.Work.Projects")
      const subs = yield* r.subscriptions()
      expect(subs.find((s) => s.mboxname === "user.alice.Sent")?.unsubscribed).toBe(1795885546)
      const sieve = yield* r.sieve()
      expect(sieve.map((s) => [s.filename, s.guid, s.offset])).toEqual([["harness.script", "c1a83dc9c5cff8eb868c9c738c6d8d9b2053be34", 373354]])
    }))
})
