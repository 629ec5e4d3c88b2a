/**
 * Round trip: the golden file's APPLY lines, parsed and appended (chunk by chunk, same
 * timestamps) into a new backup, give the C backupd's index rows and the C backupd's chunk
 * bytes, with our one deliberate difference (docs/storage.md, "Literals in data-file lines"):
 * a line's literal is written `{n}` where C writes `{n+}`. So each chunk must equal the golden
 * chunk with exactly that rewrite, and offsets behind such a literal move back one byte each.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { GOLDEN_INDEX, goldenChunksAsWritten, goldenLines, tableRows } from "./support.js"
import { tempDir } from "../support/cyrus.js"

const TABLES: ReadonlyArray<[string, string]> = [
  ["message", "SELECT * FROM message ORDER BY id"],
  ["mailbox", "SELECT * FROM mailbox ORDER BY id"],
  ["mailbox_message", "SELECT * FROM mailbox_message ORDER BY id"],
  ["subscription", "SELECT * FROM subscription ORDER BY id"],
  ["seen", "SELECT * FROM seen ORDER BY id"],
  ["sieve", "SELECT * FROM sieve ORDER BY id"],
  ["storage classes", "SELECT typeof(mboxname), typeof(acl), typeof(annotations), typeof(last_uid), typeof(highestmodseq), typeof(deleted) FROM mailbox ORDER BY id"]
]

const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex")

describe("round trip of the golden lines", () => {
  it.effect("reproduces the C index rows and chunk bytes, literals written {n}", () =>
    Effect.gen(function*() {
      const dir = tempDir("roundtrip")
      const lines = yield* goldenLines(path.join(dir, "staging"))
      const data = path.join(dir, "alice_rt")
      const chunkIds = [...new Set(lines.map((l) => l.chunk))]
      for (const id of chunkIds) {
        yield* Effect.scoped(
          Effect.gen(function*() {
            const w = yield* openForAppend(data, { create: true, durable: false })
            for (const l of lines.filter((x) => x.chunk === id)) {
              const r = yield* w.append(l.item, l.ts)
              expect(r.chunkId).toBe(id)
            }
          })
        )
      }
      const written = goldenChunksAsWritten().filter((c) => chunkIds.includes(c.id))
      // The golden backup holds one literal (alice's sieve script, `CONTENT {233+}`).
      expect(written.map((c) => c.literals)).toEqual([1, 0, 0])
      const asWritten = new Map(written.map((c) => [c.id, c]))
      // message and sieve rows carry an offset within their chunk
      const moved = (rows: Array<Record<string, unknown>>) =>
        rows.map((r) => ({ ...r, offset: asWritten.get(r["chunk_id"] as number)!.offset(r["offset"] as number) }))
      for (const [name, q] of TABLES) {
        const golden = tableRows(GOLDEN_INDEX, q)
        const expected = name === "message" || name === "sieve" ? moved(golden) : golden
        expect({ name, rows: tableRows(`${data}.index`, q) }).toEqual({ name, rows: expected })
      }
      const ours = tableRows(`${data}.index`, "SELECT id, offset, length, data_sha1 FROM chunk ORDER BY id") as Array<{ id: number; offset: number; length: number; data_sha1: string }>
      expect(ours.map(({ id, length, data_sha1 }) => ({ id, length, data_sha1 }))).toEqual(
        written.map((c) => ({ id: c.id, length: c.bytes.length, data_sha1: sha1(c.bytes) }))
      )
      const file = fs.readFileSync(data)
      ours.forEach((c, i) => {
        const bytes = zlib.gunzipSync(file.subarray(c.offset, ours[i + 1]?.offset ?? file.length))
        if (!bytes.equals(asWritten.get(c.id)!.bytes)) expect(bytes.toString("latin1")).toBe(asWritten.get(c.id)!.bytes.toString("latin1"))
      })
    }))
})
