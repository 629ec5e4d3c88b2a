/**
 * The observers' pending counts (pendingUploads, and metrics' survey, both `pendingInSnapshot`
 * on one synchronous read-only snapshot) say what the upload plan says (`planUpload` on an
 * Effect SQL client, the path push and backupd take): a sealed chunk is pending unless the
 * recorded manifest lists it with the same place and content; a row whose entry does not
 * decode counts as not recorded; the open chunk is never pending; an index without our tables
 * has everything sealed pending.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Effect } from "effect"
import fs from "node:fs"
import { createRequire } from "node:module"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { pendingOf, pendingUploads, planUpload } from "../../src/objectstore/index.js"
import { makeSyntheticHost, type SyntheticHost } from "../support/syntheticBackups.js"

const Database = createRequire(import.meta.url)("better-sqlite3") as new (p: string) => { exec(s: string): void; close(): void }

const planned = (dataPath: string) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const sql = yield* SqliteClient.make({ filename: `${dataPath}.index`, readonly: true, disableWAL: true }).pipe(Effect.provide(Reactivity.layer))
        return pendingOf(yield* planUpload(sql, `${dataPath}.index`, "u", dataPath, fs.statSync(dataPath).size))
      })
    )
  )

describe("pending uploads", () => {
  let host: SyntheticHost
  const data = (i: number) => path.join(host.dir, "backups", String.fromCharCode(97 + (i % 26)), `user${String(i).padStart(6, "0")}_AbCdEf`)
  const edit = (i: number, sql: string) => {
    const db = new Database(`${data(i)}.index`)
    db.exec(sql)
    db.close()
  }
  beforeAll(async () => {
    host = await makeSyntheticHost(fs.mkdtempSync(path.join(os.tmpdir(), "pending-")), 6)
    // 0: tables without rows (as after a Cyrus reindex); 1: as made (chunks 1, 2 recorded)
    edit(2, "UPDATE backupd_object SET entry = '{\"id\":1}' WHERE chunk_id = 1") // an entry that does not decode
    edit(3, "UPDATE chunk SET data_sha1 = 'changed' WHERE id = 2") // chunk 2 is not what was uploaded
    edit(4, "INSERT INTO backupd_chunk_state VALUES (1, 3, 0, 300, 100, 0, '', '', 0)") // chunk 3 still open
    edit(5, "DROP TABLE backupd_object; DROP TABLE backupd_object_head; DROP TABLE backupd_object_dropped; DROP TABLE backupd_chunk_state")
  })
  afterAll(() => fs.rmSync(host.dir, { recursive: true, force: true }))

  it("the same counts as the upload plan", async () => {
    const expected = [3, 1, 2, 2, 0, 3]
    for (let i = 0; i < 6; i++) {
      const observed = await Effect.runPromise(pendingUploads(data(i)))
      expect({ i, chunks: observed.chunks, bytes: observed.bytes }).toEqual({ i, chunks: expected[i], bytes: expected[i]! * 100 })
      expect({ i, ...(await planned(data(i))) }).toEqual({ i, chunks: observed.chunks, bytes: observed.bytes })
    }
  })
})
