/**
 * Round trip: the golden file's APPLY lines, parsed and appended (chunk by chunk, same
 * timestamps) into a new backup, give the same index rows as the C backupd's index, and
 * since lines are re-printed canonically, the same chunk lengths and data SHA-1s.
 */
import path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { GOLDEN_INDEX, goldenChunks, goldenLines, tableRows } from "./support.js"
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

describe("round trip of the golden lines", () => {
  it.effect("reproduces the C index rows and chunk checksums", () =>
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
      for (const [name, q] of TABLES) {
        expect({ name, rows: tableRows(`${data}.index`, q) }).toEqual({ name, rows: tableRows(GOLDEN_INDEX, q) })
      }
      const ours = tableRows(`${data}.index`, "SELECT id, length, data_sha1 FROM chunk ORDER BY id")
      const golden = goldenChunks().filter((c) => chunkIds.includes(c.id)).map((c) => ({ id: c.id, length: c.length, data_sha1: c.data_sha1 }))
      expect(ours).toEqual(golden)
    }))
})
