/**
 * Our verify (Cyrus's `backup_verify` levels, problems as data): the C-written golden backup
 * and files we write pass; each kind of damage is reported against the right chunk, worded
 * like `ctl_backups verify`.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import zlib from "node:zlib"
import path from "node:path"
import { createRequire } from "node:module"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { atom, item, kvlist, list, type File } from "../../src/protocol/dlist/value.js"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { verifyFile, VERIFY_FULL } from "../../src/store/maintain/verify.js"
import { copyGolden } from "./support.js"
import { tempDir } from "../support/cyrus.js"

interface Db {
  exec(sql: string): void
  close(): void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new (path: string) => Db

/** Runs SQL against an index (tests only: simulates a damaged or stale index). */
const tamperIndex = (data: string, sql: string) => {
  const db = new Database(`${data}.index`)
  try {
    db.exec(sql)
  } finally {
    db.close()
  }
}

const messages = (r: { problems: ReadonlyArray<{ message: string }> }) => r.problems.map((p) => p.message)

describe("verify", () => {
  it.effect("the C-written golden backup passes quick and full verify", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("verify-golden"))
      const quick = yield* verifyFile(data, { level: "quick" })
      expect(quick).toMatchObject({ ok: true, chunks: 4, checks: ["lastChecksum"] })
      const full = yield* verifyFile(data)
      expect(messages(full)).toEqual([])
      expect(new Set(full.checks)).toEqual(VERIFY_FULL)
    }))

  it.effect("an empty backup verifies", () =>
    Effect.gen(function*() {
      const data = path.join(tempDir("verify-empty"), "b")
      yield* Effect.scoped(openForAppend(data, { create: true }))
      expect(yield* verifyFile(data)).toMatchObject({ ok: true, chunks: 0, problems: [] })
    }))

  it.effect("a stale mailbox row and record are reported as missing mailbox data", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("verify-mbox"))
      tamperIndex(data, "UPDATE mailbox SET last_uid = last_uid + 1 WHERE uniqueid = 'nmvlkc9gmmqlk26jwc9fxzgj'; UPDATE mailbox_message SET modseq = 77 WHERE id = 1;")
      const r = yield* verifyFile(data)
      expect(messages(r)).toEqual([
        "chunk 1 missing mailbox_message data for nmvlkc9gmmqlk26jwc9fxzgj uid 1",
        "chunk 2 missing mailbox data for nmvlkc9gmmqlk26jwc9fxzgj (user.alice)"
      ])
      expect(r.problems.map((p) => [p.chunkId, p.check])).toEqual([[1, "mailboxLinks"], [2, "mailboxLinks"]])
      // the quick level does not look at links
      expect((yield* verifyFile(data, { level: "quick" })).ok).toBe(true)
    }))

  it.effect("a message row pointing at the wrong line is reported", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("verify-msg"))
      tamperIndex(data, "UPDATE message SET offset = offset + 1 WHERE id = 2;")
      const r = yield* verifyFile(data, { level: new Set(["messageLinks"]) })
      expect(messages(r)).toEqual(["chunk 1: message 2 (edbf584be940556d7aa660af74b6d812cdcb4211) not found at offset 30"])
      expect(r.checks).toEqual(["messageLinks"])
    }))

  it.effect("checksum damage: index checksums, and a flipped byte in the data file", () =>
    Effect.gen(function*() {
      const data = copyGolden(tempDir("verify-sum"))
      tamperIndex(data, "UPDATE chunk SET data_sha1 = '0000000000000000000000000000000000000000' WHERE id = 3;")
      const quick = yield* verifyFile(data, { level: "quick" })
      expect(quick.ok).toBe(true) // the last chunk (4) is intact
      const full = yield* verifyFile(data)
      expect(full.problems).toEqual([
        {
          chunkId: 3,
          check: "allChecksums",
          message: "data checksum mismatch for chunk 3: b708653c339fff736366ae4f10c792bfd51ffc60 on disk, 0000000000000000000000000000000000000000 in index"
        }
      ])

      const data2 = copyGolden(tempDir("verify-flip"))
      const fd = fs.openSync(data2, "r+")
      const b = Buffer.alloc(1)
      fs.readSync(fd, b, 0, 1, 610_000)
      b[0] = b[0]! ^ 0x40
      fs.writeSync(fd, b, 0, 1, 610_000)
      fs.closeSync(fd)
      const r = yield* verifyFile(data2)
      expect(r.ok).toBe(false)
      const byChunk = new Set(r.problems.map((p) => p.chunkId))
      expect(byChunk.has(2)).toBe(true) // the damaged member
      expect(byChunk.has(3)).toBe(true) // every later chunk's file_sha1
      expect(messages(r)).toContain("file checksum mismatch for chunk 3: " + r.problems.find((p) => p.chunkId === 3)!.message.split(": ")[1]!.split(" ")[0] + " on disk, 5e7a4a1376c36a9ec147b077ab7bfe0fab74f2a1 in index")
      expect((yield* verifyFile(data2, { level: "quick" })).problems.map((p) => p.chunkId)).toEqual([4])
    }))

  it.effect("message bytes that no longer hash to their GUID are reported (guid level only)", () =>
    Effect.gen(function*() {
      const dir = tempDir("verify-guid")
      const data = path.join(dir, "b")
      const body = Buffer.from("Subject: guid\r\n\r\nthe original body\r\n", "latin1")
      const guid = createHash("sha1").update(body).digest("hex")
      fs.writeFileSync(path.join(dir, guid), body)
      const file: File = { _tag: "File", partition: "default", guid, size: body.length, path: path.join(dir, guid), sha1: guid }
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true })
          yield* w.append(item("MESSAGE", list([file])), 100)
        })
      )
      // Rewrite the member with one message byte changed and fix the chunk checksum, so only
      // the GUID check can notice.
      const raw = zlib.gunzipSync(fs.readFileSync(data))
      const at = raw.indexOf("original")
      raw[at] = 0x4f
      fs.writeFileSync(data, zlib.gzipSync(raw))
      tamperIndex(data, `UPDATE chunk SET data_sha1 = '${createHash("sha1").update(raw).digest("hex")}'; DELETE FROM backupd_chunk_state;`)
      expect((yield* verifyFile(data, { level: new Set(["allChecksums", "messageLinks", "mailboxLinks"]) })).ok).toBe(true)
      const r = yield* verifyFile(data)
      expect(r.problems).toEqual([{ chunkId: 1, check: "messageGuids", message: "guid mismatch for message 1" }])
    }))

  it.effect("a file we wrote passes full verify; the lock is respected", () =>
    Effect.gen(function*() {
      const data = path.join(tempDir("verify-ours"), "b")
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true })
          yield* w.append(item("SUB", kvlist([["USERID", atom("t")], ["MBOXNAME", atom("user.t")]])), 100)
          const locked = yield* verifyFile(data).pipe(Effect.flip)
          expect(locked._tag).toBe("BackupLocked")
        })
      )
      expect((yield* verifyFile(data)).ok).toBe(true)
    }))
})
