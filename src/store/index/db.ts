/**
 * Opening a backup's SQLite index the way Cyrus's `sqldb_open` does: rollback journal,
 * Cyrus's pragmas, schema created (user_version 3) or upgraded, plus our chunk-state table.
 *
 * Byte strings (latin1 JS strings) are bound as BLOBs wrapped in `CAST(? AS TEXT)` so their
 * exact bytes are stored with TEXT storage class (Cyrus's readers assert the class), and read
 * back with `CAST(col AS BLOB)`. Integers are read as bigint (SafeIntegers) so 64-bit modseqs
 * survive.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Cause, Effect, Exit, FiberRef, Scope } from "effect"
import { BackupIndexError } from "../errors.js"
import {
  chunkStateTableStatements,
  connectionPragmas,
  CYRUS_INDEX_VERSION,
  cyrusInitStatements,
  cyrusUpgradeStatements
} from "./schema.js"

export type Sql = SqlClient.SqlClient

/** A byte string as an SQL parameter that will be stored as TEXT (use with `CAST(? AS TEXT)`). */
export const textParam = (s: string | null | undefined): Buffer | null =>
  s === null || s === undefined ? null : Buffer.from(s, "latin1")

/** A column read with `CAST(col AS BLOB)` back to a byte string. */
export const textColumn = (v: unknown): string | null =>
  v === null || v === undefined ? null : Buffer.isBuffer(v) ? v.toString("latin1") : String(v)

/** An integer column (bigint under SafeIntegers) as a JS number. */
export const intColumn = (v: unknown): number | null =>
  v === null || v === undefined ? null : typeof v === "bigint" ? Number(v) : Number(v)

/** An integer column kept as bigint (modseqs). */
export const bigColumn = (v: unknown): bigint | null =>
  v === null || v === undefined ? null : typeof v === "bigint" ? v : BigInt(v as number)

/** A bigint as SQLite's signed 64-bit integer (what C's sqlite3_bind_int64 of a uint64 stores). */
export const int64Param = (v: bigint): bigint => BigInt.asIntN(64, v)

export const indexError = (path: string) => (cause: unknown): BackupIndexError =>
  new BackupIndexError({ path, message: describe(cause) })

const describe = (cause: unknown): string => {
  if (cause !== null && typeof cause === "object") {
    const inner = (cause as { cause?: unknown }).cause
    const msg = (cause as { message?: unknown }).message
    const innerMsg = inner !== null && typeof inner === "object" ? (inner as { message?: unknown }).message : undefined
    return [msg, innerMsg].filter((m) => typeof m === "string" && m.length > 0).join(": ")
  }
  return String(cause)
}

/** Runs statements with no parameters, in order. */
export const execAll = (sql: Sql, stmts: ReadonlyArray<string>) =>
  Effect.forEach(stmts, (s) => sql.unsafe(s).raw, { discard: true })

/**
 * Opens (creating if absent) the index at `path` for the lifetime of the scope. The caller
 * must already hold the data-file lock.
 */
export const openIndexDb = (path: string): Effect.Effect<Sql, BackupIndexError, Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqliteClient.make({ filename: path, disableWAL: true }).pipe(
      Effect.provide(Reactivity.layer),
      Effect.catchAllDefect((d) => Effect.fail(indexError(path)(d)))
    )
    yield* execAll(sql, connectionPragmas)
    const rows = yield* sql.unsafe<{ user_version: number | bigint }>("PRAGMA user_version;")
    const version = Number(rows[0]?.user_version ?? 0)
    if (version === 0) {
      yield* execAll(sql, ["BEGIN EXCLUSIVE;", ...cyrusInitStatements, `PRAGMA user_version = ${CYRUS_INDEX_VERSION};`, ...chunkStateTableStatements, "COMMIT;"])
    } else if (version === 1 || version === 2) {
      const steps = cyrusUpgradeStatements(version)
      const last = steps[steps.length - 1]?.[0] ?? version
      yield* execAll(sql, ["BEGIN EXCLUSIVE;", ...steps.flatMap(([, s]) => s), `PRAGMA user_version = ${last};`, "COMMIT;"])
    } else if (version > 4) {
      return yield* Effect.fail(new BackupIndexError({ path, message: `unsupported index user_version ${version}` }))
    }
    // Indexes written by the C tools (or rebuilt by reindex) lack our table.
    yield* execAll(sql, chunkStateTableStatements)
    return sql
  }).pipe(
    Effect.provideService(SqlClient.SafeIntegers, true),
    Effect.mapError((e) => (e._tag === "BackupIndexError" ? e : indexError(path)(e)))
  )

/** A SELECT with positional parameters; integers come back as bigint. */
export const query = <A extends object = Record<string, unknown>>(
  sql: Sql,
  text: string,
  params: ReadonlyArray<unknown> = []
) => sql.unsafe<A>(text, params).pipe(Effect.provideService(SqlClient.SafeIntegers, true))

/** A write statement; returns the number of changed rows and the last inserted rowid. */
export const run = (sql: Sql, text: string, params: ReadonlyArray<unknown> = []) =>
  sql.unsafe(text, params).raw.pipe(
    Effect.provideService(SqlClient.SafeIntegers, true),
    Effect.map((r) => {
      const res = r as unknown as { changes?: number | bigint; lastInsertRowid?: number | bigint }
      return { changes: Number(res.changes ?? 0), lastInsertRowid: Number(res.lastInsertRowid ?? 0) }
    })
  )

/** How deep the current fiber is inside `inTransaction` (0: no transaction open). */
const transactionDepth = FiberRef.unsafeMake(0)

/**
 * Runs `body` as one transaction on the index (a savepoint when nested): all its writes
 * commit together, or none do.
 *
 * Unlike `SqlClient.withTransaction`, a COMMIT or ROLLBACK that fails is an error
 * (`BackupIndexError`), not a defect. That matters on a full disk or an I/O error, where
 * SQLite may fail the COMMIT, or roll the transaction back by itself after a failed statement
 * so that the ROLLBACK then fails too ("no transaction is active"). The caller gets an error
 * it can answer with, and the connection is left outside any transaction either way.
 */
export const inTransaction = <A, E, R>(
  sql: Sql,
  indexPath: string,
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | BackupIndexError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(FiberRef.get(transactionDepth), (depth) => {
      const name = `cyb_txn_${depth}`
      const exec = (stmt: string) => sql.unsafe(stmt).raw
      const begin = exec(depth === 0 ? "BEGIN;" : `SAVEPOINT ${name};`)
      const commit = exec(depth === 0 ? "COMMIT;" : `RELEASE ${name};`)
      const rollback = depth === 0 ? exec("ROLLBACK;") : Effect.zipRight(exec(`ROLLBACK TO ${name};`), exec(`RELEASE ${name};`))
      const fail = (cause: Cause.Cause<unknown>) => Effect.fail(indexError(indexPath)(Cause.squash(cause)))
      return Effect.gen(function*() {
        const begun = yield* Effect.exit(begin)
        if (Exit.isFailure(begun)) return yield* fail(begun.cause)
        const done = yield* Effect.exit(Effect.locally(restore(body), transactionDepth, depth + 1))
        if (Exit.isSuccess(done)) {
          const committed = yield* Effect.exit(commit)
          if (Exit.isSuccess(committed)) return done.value
          yield* Effect.ignore(rollback)
          return yield* fail(committed.cause)
        }
        yield* Effect.ignore(rollback)
        return yield* done
      })
    })
  )
