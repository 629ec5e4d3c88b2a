/**
 * `inTransaction`: all or nothing, nested as savepoints, and a COMMIT that fails is a typed
 * BackupIndexError that leaves the connection usable (`SqlClient.withTransaction` turns it
 * into a defect, which would end a session instead of answering NO). A deferred foreign key
 * makes COMMIT itself fail, as a full disk does.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { inTransaction, openIndexDb, query, run } from "../../src/store/index/db.js"

const withIndex = <A, E>(body: (sql: Effect.Effect.Success<ReturnType<typeof openIndexDb>>, indexPath: string) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-txn-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const indexPath = path.join(dir, "u.index")
      const sql = yield* openIndexDb(indexPath)
      yield* run(sql, "CREATE TABLE parent (id INTEGER PRIMARY KEY);")
      yield* run(sql, "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);")
      yield* run(sql, "PRAGMA foreign_keys = ON;")
      return yield* body(sql, indexPath)
    })
  )

const count = (sql: Effect.Effect.Success<ReturnType<typeof openIndexDb>>, table: string) =>
  Effect.map(query<{ n: bigint }>(sql, `SELECT COUNT(*) AS n FROM ${table};`), (r) => Number(r[0]!.n))

describe("inTransaction", () => {
  it.effect("commits all writes of the body, or none when the body fails", () =>
    withIndex((sql, indexPath) =>
      Effect.gen(function* () {
        yield* inTransaction(sql, indexPath, Effect.zipRight(run(sql, "INSERT INTO parent VALUES (1);"), run(sql, "INSERT INTO parent VALUES (2);")))
        expect(yield* count(sql, "parent")).toBe(2)
        const failed = yield* Effect.exit(
          inTransaction(sql, indexPath, Effect.zipRight(run(sql, "INSERT INTO parent VALUES (3);"), Effect.fail("stop" as const)))
        )
        expect(failed).toEqual(Exit.fail("stop"))
        expect(yield* count(sql, "parent")).toBe(2)
      })
    )
  )

  it.effect("a failing COMMIT is a BackupIndexError, nothing is kept, and the connection takes the next transaction", () =>
    withIndex((sql, indexPath) =>
      Effect.gen(function* () {
        // The child row names a parent that does not exist: the deferred check fails at COMMIT.
        const e = yield* Effect.flip(inTransaction(sql, indexPath, run(sql, "INSERT INTO child VALUES (1, 42);")))
        expect(e._tag).toBe("BackupIndexError")
        expect(e.message).toMatch(/FOREIGN KEY/i)
        expect(yield* count(sql, "child")).toBe(0)
        yield* inTransaction(sql, indexPath, Effect.zipRight(run(sql, "INSERT INTO parent VALUES (42);"), run(sql, "INSERT INTO child VALUES (1, 42);")))
        expect(yield* count(sql, "child")).toBe(1)
      })
    )
  )

  it.effect("nested transactions are savepoints: an inner failure undoes only the inner writes", () =>
    withIndex((sql, indexPath) =>
      Effect.gen(function* () {
        yield* inTransaction(
          sql,
          indexPath,
          Effect.gen(function* () {
            yield* run(sql, "INSERT INTO parent VALUES (1);")
            const inner = yield* Effect.exit(inTransaction(sql, indexPath, Effect.zipRight(run(sql, "INSERT INTO parent VALUES (2);"), Effect.fail("inner" as const))))
            expect(Exit.isFailure(inner)).toBe(true)
            yield* inTransaction(sql, indexPath, run(sql, "INSERT INTO parent VALUES (3);"))
          })
        )
        const ids = yield* query<{ id: bigint }>(sql, "SELECT id FROM parent ORDER BY id;")
        expect(ids.map((r) => Number(r.id))).toEqual([1, 3])
      })
    )
  )
})
