import { existsSync, statSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Partitions } from "../../src/partitions/index.js"
import { BackupsDb } from "../../src/store/index.js"
import { cyrDbtool, giveToCyrus, haveCyrDbtool, parseShow, scratchDir } from "./twoskipSupport.js"

const layers = (dir: string, backend = "twoskip") =>
  BackupsDb.layer({ path: path.join(dir, "conf", "backups.db"), backend, twoskip: { sync: false } }).pipe(
    Layer.provide(Partitions.layer(new Map([["default", path.join(dir, "backups")]])))
  )

describe("BackupsDb over twoskip", () => {
  it.effect("locateOrCreate makes the data file and mapping once; lookup, list, record, remove", () =>
    Effect.gen(function* () {
      const t = scratchDir("locate")
      const result = yield* Effect.gen(function* () {
        const db = yield* BackupsDb
        expect(Option.isNone(yield* db.lookup("alice"))).toBe(true)
        const first = yield* db.locateOrCreate("alice")
        expect(first.created).toBe(true)
        expect(first.dataPath).toMatch(new RegExp(`^${t.dir}/backups/a/alice_[A-Za-z0-9]{6}$`))
        expect(first.indexPath).toBe(`${first.dataPath}.index`)
        expect(statSync(first.dataPath).size).toBe(0)
        const again = yield* db.locateOrCreate("alice")
        expect(again).toEqual({ ...first, created: false })
        yield* db.locateOrCreate("%SHARED")
        yield* db.record("bob", "/elsewhere/bob_abcdef")
        expect((yield* Effect.flip(db.record("bob", "/x")))._tag).toBe("BackupMappingExists")
        const found = yield* db.lookup("bob")
        expect(Option.map(found, (l) => l.dataPath)).toEqual(Option.some("/elsewhere/bob_abcdef"))
        const all = yield* db.list
        expect(all.map((l) => l.userid)).toEqual(["%SHARED", "alice", "bob"])
        expect(yield* db.remove("bob")).toBe(true)
        expect(yield* db.remove("bob")).toBe(false)
        return { dbPath: db.path, all: (yield* db.list).map((l) => [l.userid, l.dataPath] as [string, string]) }
      }).pipe(Effect.provide(layers(t.dir)))
      expect(existsSync(result.dbPath)).toBe(true)
      if (haveCyrDbtool("BackupsDb show by cyr_dbtool")) {
        giveToCyrus(result.dbPath)
        expect(parseShow(cyrDbtool(t.conf, result.dbPath, ["show"]).stdout)).toEqual(result.all)
      }
      t.cleanup()
    })
  )

  it.effect("concurrent locateOrCreate for one user (same process) creates exactly one backup", () =>
    Effect.gen(function* () {
      const t = scratchDir("concurrent")
      const results = yield* Effect.gen(function* () {
        const db = yield* BackupsDb
        return yield* Effect.all(
          Array.from({ length: 12 }, (_, i) => db.locateOrCreate(i % 2 === 0 ? "dave" : "erin")),
          { concurrency: "unbounded" }
        )
      }).pipe(Effect.provide(layers(t.dir)))
      for (const user of ["dave", "erin"]) {
        const mine = results.filter((r) => r.userid === user)
        expect(new Set(mine.map((r) => r.dataPath)).size).toBe(1)
        expect(mine.filter((r) => r.created).length).toBe(1)
      }
      t.cleanup()
    })
  )

  it.effect("backup_db other than twoskip is a clear UnsupportedBackend error", () =>
    Effect.gen(function* () {
      const t = scratchDir("backend")
      for (const backend of ["skiplist", "sql", "zeroskip"]) {
        const err = yield* Effect.flip(Effect.provide(BackupsDb, layers(t.dir, backend)))
        expect(err._tag).toBe("UnsupportedBackend")
        if (err._tag === "UnsupportedBackend") {
          expect(err.backend).toBe(backend)
          expect(err.message).toContain(backend)
        }
      }
      t.cleanup()
    })
  )

  it.effect("no partition configured: creation fails, nothing recorded", () =>
    Effect.gen(function* () {
      const t = scratchDir("nopart")
      const layer = BackupsDb.layer({ path: path.join(t.dir, "backups.db") }).pipe(Layer.provide(Partitions.layer(new Map())))
      const out = yield* Effect.gen(function* () {
        const db = yield* BackupsDb
        const err = yield* Effect.flip(db.locateOrCreate("carol"))
        return { err: err._tag, list: yield* db.list }
      }).pipe(Effect.provide(layer))
      expect(out).toEqual({ err: "NoPartitionConfigured", list: [] })
      t.cleanup()
    })
  )
})
