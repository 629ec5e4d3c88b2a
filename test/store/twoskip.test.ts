import { copyFileSync, chmodSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import { Engine, Image } from "../../src/store/twoskip/Engine.js"
import { decodeHeader } from "../../src/store/twoskip/format.js"
import * as Twoskip from "../../src/store/twoskip/index.js"
import { scratchDir } from "./twoskipSupport.js"

const fixture = (name: string) => path.join(import.meta.dirname, "..", "fixtures", "twoskip", name)
const b = (s: string) => Buffer.from(s, "latin1")
const s = (buf: Buffer) => buf.toString("latin1")

/** A coin that yields the given levels in turn (each level L = L-1 heads then one tail). */
const levelsCoin = (levels: ReadonlyArray<number>) => {
  const flips: number[] = []
  for (const level of levels) {
    for (let i = 1; i < level; i++) flips.push(0.1)
    if (level < 31) flips.push(0.9)
  }
  let i = 0
  return () => flips[i++] ?? 0.9
}

/** Deterministic pseudo-random coin (mulberry32). */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const dump = (file: string, options?: Twoskip.TwoskipOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const db = yield* Twoskip.open(file, options)
      yield* db.consistent
      const all = yield* db.foreach()
      return all.map((e) => [s(e.key), s(e.value)] as [string, string])
    })
  )

const tmpCopy = (dir: string, src: string, name: string) => {
  const dst = path.join(dir, name)
  copyFileSync(src, dst)
  chmodSync(dst, 0o644)
  return dst
}

describe("twoskip: golden backups.db from Cyrus 3.6.1", () => {
  const expected = readFileSync(fixture("backups.db.show.txt"), "latin1")
    .split("\n")
    .filter((l) => l.includes("\t"))
    .map((l) => l.split("\t") as [string, string])

  it.effect("reads the same pairs as cyr_dbtool show", () =>
    Effect.gen(function* () {
      const t = scratchDir("golden")
      const file = tmpCopy(t.dir, fixture("backups.db.twoskip"), "backups.db")
      const pairs = yield* dump(file)
      expect(pairs).toEqual(expected)
      const one = yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.fetch(b("bob"))))
      expect(Option.map(one, s)).toEqual(Option.some("/tmp/cyb/backup/backups/b/bob_6y7SNk"))
      const none = yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.fetch(b("bo"))))
      expect(Option.isNone(none)).toBe(true)
      const info = yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.info))
      expect(info).toEqual({ generation: 1, numRecords: 4, repackSize: 336, currentSize: 784 })
      // reading never writes
      expect(readFileSync(file).equals(readFileSync(fixture("backups.db.twoskip")))).toBe(true)
      t.cleanup()
    })
  )

  it.effect("writes the golden file byte for byte given the same record levels", () =>
    Effect.gen(function* () {
      const t = scratchDir("golden-write")
      const file = path.join(t.dir, "backups.db")
      // order of the records in the golden file, and the levels Cyrus drew for them
      const order = ["nosuchuser", "alice", "bob", "carol"]
      const byKey = new Map(expected)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file, { create: true, random: levelsCoin([1, 5, 1, 1]) })
          for (const k of order) yield* db.store(b(k), b(byKey.get(k)!))
        })
      )
      expect(readFileSync(file).toString("hex")).toEqual(readFileSync(fixture("backups.db.twoskip")).toString("hex"))
      t.cleanup()
    })
  )
})

describe("twoskip: basic operations", () => {
  it.effect("new file is header + DUMMY (336 bytes), created with parent dirs", () =>
    Effect.gen(function* () {
      const t = scratchDir("new")
      const file = path.join(t.dir, "a", "b", "new.db")
      yield* Effect.scoped(Twoskip.open(file, { create: true }))
      const bytes = readFileSync(file)
      expect(bytes.length).toBe(336)
      const h = decodeHeader(bytes, bytes.length, file)
      expect(h).toEqual({ version: 1, generation: 1, numRecords: 0, repackSize: 336, currentSize: 336, flags: 0 })
      expect(bytes[64]).toBe(0x3d)
      expect(bytes[65]).toBe(31)
      t.cleanup()
    })
  )

  it.effect("missing file without create fails with TwoskipNotFound", () =>
    Effect.gen(function* () {
      const t = scratchDir("missing")
      const err = yield* Effect.flip(Effect.scoped(Twoskip.open(path.join(t.dir, "nope.db"))))
      expect(err._tag).toBe("TwoskipNotFound")
      t.cleanup()
    })
  )

  it.effect("store, replace, create, delete, prefix foreach, transactions and abort", () =>
    Effect.gen(function* () {
      const t = scratchDir("ops")
      const file = path.join(t.dir, "ops.db")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file, { create: true, random: seeded(1) })
          yield* db.store(b("b"), b("1"))
          yield* db.store(b("a"), b("2"))
          yield* db.store(b("ab"), b("3"))
          yield* db.store(b("b"), b("4"))
          expect((yield* db.create(b("a"), b("x")).pipe(Effect.flip))._tag).toBe("TwoskipKeyExists")
          expect(yield* db.delete(b("zz"))).toBe(false)
          expect(yield* db.delete(b("ab"))).toBe(true)
          yield* db.store(b("a\x00b"), b("nul"))
          yield* db.store(b("\xff"), b("high"))
          const all = (yield* db.foreach()).map((e) => [s(e.key), s(e.value)])
          expect(all).toEqual([["a", "2"], ["a\x00b", "nul"], ["b", "4"], ["\xff", "high"]])
          const pre = (yield* db.foreach(b("a"))).map((e) => s(e.key))
          expect(pre).toEqual(["a", "a\x00b"])
          // a failing transaction leaves nothing behind
          const before = statSync(file).size
          const failed = yield* db
            .transaction((txn) =>
              Effect.gen(function* () {
                yield* txn.store(b("c"), b("5"))
                yield* txn.delete(b("a"))
                expect(Option.isNone(yield* txn.fetch(b("a")))).toBe(true)
                return yield* Effect.fail("nope" as const)
              })
            )
            .pipe(Effect.flip)
          expect(failed).toBe("nope")
          expect(statSync(file).size).toBe(before)
          expect((yield* db.foreach()).length).toBe(4)
          // unchanged value: no I/O at all
          yield* db.store(b("a"), b("2"))
          expect(statSync(file).size).toBe(before)
          // empty key is rejected
          expect((yield* Effect.flip(db.store(b(""), b("x"))))._tag).toBe("TwoskipEmptyKey")
          yield* db.consistent
          const info = yield* db.info
          expect(info.numRecords).toBe(4)
        })
      )
      t.cleanup()
    })
  )

  it.effect("checkpoint rewrites live records only, generation + 1; auto-checkpoint after growth", () =>
    Effect.gen(function* () {
      const t = scratchDir("ckpt")
      const file = path.join(t.dir, "c.db")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file, { create: true, random: seeded(2), autoCheckpoint: false, sync: false })
          for (let i = 0; i < 300; i++) yield* db.store(b(`key${i % 20}`), b(`value-${i}`))
          const grown = yield* db.info
          expect(grown.currentSize).toBeGreaterThan(16834)
          yield* db.checkpoint
          const after = yield* db.info
          expect(after.generation).toBe(2)
          expect(after.repackSize).toBeLessThan(grown.currentSize)
          expect(after.numRecords).toBe(20)
          yield* db.consistent
          expect((yield* db.foreach()).length).toBe(20)
        })
      )
      const file2 = path.join(t.dir, "auto.db")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file2, { create: true, random: seeded(3), sync: false })
          for (let i = 0; i < 300; i++) yield* db.store(b(`k${i % 10}`), b(`v${i}`))
          const info = yield* db.info
          expect(info.generation).toBeGreaterThan(1)
          expect(info.currentSize).toBeLessThanOrEqual(Math.max(16834, 2 * info.repackSize))
          const all = (yield* db.foreach()).map((e) => [s(e.key), s(e.value)])
          expect(all).toEqual(Array.from({ length: 10 }, (_, k) => [`k${k}`, `v${290 + k}`]))
        })
      )
      t.cleanup()
    })
  )

  it.effect("long keys and values use the escaped length fields", () =>
    Effect.gen(function* () {
      const t = scratchDir("long")
      const file = path.join(t.dir, "l.db")
      const bigKey = Buffer.alloc(70_000, 0x6b)
      const value = Buffer.alloc(100, 0x76)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file, { create: true, sync: false })
          yield* db.store(bigKey, value)
          yield* db.store(b("small"), b("x"))
        })
      )
      const bytes = readFileSync(file)
      expect(bytes.readUInt16BE(336 + 2)).toBe(0xffff)
      const back = yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.fetch(bigKey)))
      expect(Option.getOrThrow(back).equals(value)).toBe(true)
      t.cleanup()
    })
  )
})

describe("twoskip: crash at every I/O step of a transaction", () => {
  it.effect("every prefix of the writes opens as either the old or the new state", () =>
    Effect.gen(function* () {
      const t = scratchDir("prefix")
      const base = path.join(t.dir, "base.db")
      const oldState: Array<[string, string]> = []
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(base, { create: true, random: seeded(4), sync: false })
          for (let i = 0; i < 30; i++) yield* db.store(b(`user${i}`), b(`/p/${i}`))
          for (const e of yield* db.foreach()) oldState.push([s(e.key), s(e.value)])
        })
      )
      const original = readFileSync(base)
      // one transaction: inserts, a replace, deletes
      const image = new Image(Buffer.from(original), original.length)
      const engine = new Engine(base, image, decodeHeader(image.buf, image.size, base), seeded(5))
      engine.store(b("user10"), b("/replaced"), true)
      engine.store(b("aaa"), b("/first"), true)
      engine.store(b("zzz"), b("/last"), true)
      engine.delete(b("user3"))
      engine.delete(b("user29"))
      engine.store(b("user15x"), b("/mid"), true)
      engine.commit()
      const steps = image.drain()
      const model = new Map(oldState)
      model.set("user10", "/replaced").set("aaa", "/first").set("zzz", "/last").set("user15x", "/mid")
      model.delete("user3")
      model.delete("user29")
      const newState = [...model.entries()].sort((x, y) => Buffer.compare(b(x[0]), b(y[0])))
      const lastHeaderWrite = steps.map((st, i) => (st._tag === "Write" && st.offset === 0 ? i : -1)).reduce((a, c) => Math.max(a, c))
      for (let k = 0; k <= steps.length; k++) {
        const bytes = Buffer.from(original)
        let file = Buffer.alloc(Math.max(bytes.length, image.size))
        bytes.copy(file)
        let size = bytes.length
        for (const st of steps.slice(0, k)) {
          if (st._tag === "Write") {
            if (st.offset + st.data.length > file.length) {
              const g = Buffer.alloc(st.offset + st.data.length)
              file.copy(g)
              file = g
            }
            st.data.copy(file, st.offset)
            size = Math.max(size, st.offset + st.data.length)
          } else if (st._tag === "Truncate") size = st.size
        }
        const crashed = path.join(t.dir, `crash${k}.db`)
        writeFileSync(crashed, file.subarray(0, size))
        const got = yield* dump(crashed, { sync: false })
        expect(got, `prefix ${k} of ${steps.length}`).toEqual(k > lastHeaderWrite ? newState : oldState)
      }
      t.cleanup()
    })
  )
})

describe("twoskip: property — random store/delete transactions match a Map", () => {
  it.effect("agrees with the model after every transaction, and stays consistent", () =>
    Effect.gen(function* () {
      const t = scratchDir("prop")
      const op = fc.oneof(
        fc.record({ kind: fc.constant("store" as const), key: fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom("a", "b", "c", "\x00", "\xff") }), value: fc.string({ maxLength: 12 }) }),
        fc.record({ kind: fc.constant("delete" as const), key: fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom("a", "b", "c", "\x00", "\xff") }) })
      )
      const txn = fc.record({ ops: fc.array(op, { maxLength: 12 }), abort: fc.integer({ min: 0, max: 4 }).map((n) => n === 0) })
      let run = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(txn, { maxLength: 15 }), fc.integer(), async (txns, seed) => {
            const file = path.join(t.dir, `p${run++}.db`)
            const model = new Map<string, string>()
            await Effect.runPromise(
              Effect.scoped(
                Effect.gen(function* () {
                  const db = yield* Twoskip.open(file, { create: true, random: seeded(seed), sync: false, autoCheckpoint: run % 2 === 0 })
                  for (const tx of txns) {
                    const staged = new Map(model)
                    const body = db.transaction((tr) =>
                      Effect.gen(function* () {
                        for (const o of tx.ops) {
                          const k = Buffer.from(o.key, "latin1")
                          if (o.kind === "store") {
                            yield* tr.store(k, Buffer.from(o.value, "utf8"))
                            staged.set(o.key, Buffer.from(o.value, "utf8").toString("latin1"))
                          } else {
                            const had = yield* tr.delete(k)
                            expect(had).toBe(staged.delete(o.key))
                          }
                        }
                        if (tx.abort) return yield* Effect.fail("abort")
                      })
                    )
                    const r = yield* Effect.either(body)
                    if (r._tag === "Right") {
                      model.clear()
                      for (const [k, v] of staged) model.set(k, v)
                    }
                    const expected = [...model.entries()].sort((x, y) => Buffer.compare(b(x[0]), b(y[0])))
                    const got = (yield* db.foreach()).map((e) => [s(e.key), s(e.value)])
                    expect(got).toEqual(expected)
                  }
                  yield* db.consistent
                  expect((yield* db.info).numRecords).toBe(model.size)
                })
              )
            )
          }),
          { numRuns: 40 }
        )
      )
      t.cleanup()
    })
  )
})
