/**
 * Interop with the real Cyrus 3.6.1 twoskip code, through `cyr_dbtool` run as cyrus.
 * Skips loudly when Cyrus is not installed.
 */
import { spawn } from "node:child_process"
import { copyFileSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Engine, Image } from "../../src/store/twoskip/Engine.js"
import { decodeHeader } from "../../src/store/twoskip/format.js"
import * as Twoskip from "../../src/store/twoskip/index.js"
import { cyrDbtool, giveToCyrus, haveCyrDbtool, parseShow, scratchDir } from "./twoskipSupport.js"

const b = (s: string) => Buffer.from(s, "latin1")
const s = (buf: Buffer) => buf.toString("latin1")
const sorted = (m: Map<string, string>) => [...m.entries()].sort((x, y) => Buffer.compare(b(x[0]), b(y[0])))

const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const ours = (file: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const db = yield* Twoskip.open(file)
      yield* db.consistent
      return (yield* db.foreach()).map((e) => [s(e.key), s(e.value)] as [string, string])
    })
  )

const cyrusShow = (conf: string, file: string) => {
  const r = cyrDbtool(conf, file, ["show"])
  expect(r.status, r.stderr).toBe(0)
  return parseShow(r.stdout)
}

const cyrusConsistent = (conf: string, file: string) => {
  const r = cyrDbtool(conf, file, ["consistent"])
  expect(r.stdout.toString("latin1").trim(), r.stderr).toBe("Yes, consistent")
}

describe.skipIf(!haveCyrDbtool("twoskip interop with cyr_dbtool"))("twoskip interop with cyr_dbtool", () => {
  it.effect("cyr_dbtool reads what we wrote: many keys, replaces, deletes", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-ours")
      const file = path.join(t.dir, "ours.db")
      const model = new Map<string, string>()
      const rnd = seeded(11)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file, { create: true, random: seeded(7), sync: false })
          for (let round = 0; round < 8; round++) {
            yield* db.transaction((txn) =>
              Effect.gen(function* () {
                for (let i = 0; i < 150; i++) {
                  const k = `user${Math.floor(rnd() * 400)}@example.com`
                  if (rnd() < 0.25) {
                    yield* txn.delete(b(k))
                    model.delete(k)
                  } else {
                    const v = `/var/spool/backup/${k[0]}/${k}_${round}${i}`
                    yield* txn.store(b(k), b(v))
                    model.set(k, v)
                  }
                }
              })
            )
          }
        })
      )
      giveToCyrus(file)
      expect(cyrusShow(t.conf, file)).toEqual(sorted(model))
      cyrusConsistent(t.conf, file)
      // and Cyrus can keep writing to it; we read Cyrus's additions
      const setAll = cyrDbtool(t.conf, file, ["set"], b("zeta\tlast\nalpha\tfirst\n"))
      expect(setAll.status, setAll.stderr).toBe(0)
      model.set("zeta", "last").set("alpha", "first")
      expect(yield* ours(file)).toEqual(sorted(model))
      t.cleanup()
    })
  )

  it.effect("we read what cyr_dbtool wrote (set, replace, delete, repack)", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-cyrus")
      const file = path.join(t.dir, "cyrus.db")
      const model = new Map<string, string>()
      let input = ""
      for (let i = 0; i < 150; i++) {
        input += `key${i}\tvalue${i}\n`
        model.set(`key${i}`, `value${i}`)
      }
      const created = cyrDbtoolCreate(t.conf, file, input)
      expect(created.status, created.stderr).toBe(0)
      // one Cyrus transaction per line, as `set`/`delete` with keys on stdin do
      let sets = ""
      let deletes = ""
      for (let i = 0; i < 150; i += 3) {
        sets += `key${i}\treplaced${i}\n`
        model.set(`key${i}`, `replaced${i}`)
        if (i % 2 === 0) {
          deletes += `key${i + 1}\n`
          model.delete(`key${i + 1}`)
        }
      }
      expect(cyrDbtool(t.conf, file, ["set"], b(sets)).status).toBe(0)
      expect(cyrDbtool(t.conf, file, ["delete"], b(deletes)).status).toBe(0)
      expect(yield* ours(file)).toEqual(sorted(model))
      const repack = cyrDbtool(t.conf, file, ["repack"])
      expect(repack.status, repack.stderr).toBe(0)
      expect(yield* ours(file)).toEqual(sorted(model))
      const info = yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.info))
      expect(info.generation).toBeGreaterThan(1)
      // our own checkpoint, read back by Cyrus
      yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.checkpoint))
      giveToCyrus(file)
      expect(cyrusShow(t.conf, file)).toEqual(sorted(model))
      cyrusConsistent(t.conf, file)
      t.cleanup()
    })
  )

  it.effect("a fresh file is byte-identical to one cyr_dbtool creates", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-fresh")
      const theirs = path.join(t.dir, "theirs.db")
      const mine = path.join(t.dir, "mine.db")
      const r = cyrDbtoolCreate(t.conf, theirs, "")
      expect(r.status, r.stderr).toBe(0)
      yield* Effect.scoped(Twoskip.open(mine, { create: true }))
      expect(readFileSync(mine).toString("hex")).toBe(readFileSync(theirs).toString("hex"))
      t.cleanup()
    })
  )

  it.effect("a transaction Cyrus crashed in (cyr_dbtool damage) is rolled back by us", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-damage")
      const file = path.join(t.dir, "d.db")
      expect(cyrDbtoolCreate(t.conf, file, "a\t1\nb\t2\nc\t3\n").status).toBe(0)
      const damaged = cyrDbtool(t.conf, file, ["damage"])
      expect(damaged.status).not.toBe(0)
      const raw = readFileSync(file)
      const h = decodeHeader(raw, raw.length, file)
      // the crash left the file dirty or longer than its committed size
      expect((h.flags & 1) === 1 || h.currentSize !== raw.length).toBe(true)
      expect(yield* ours(file)).toEqual([["a", "1"], ["b", "2"], ["c", "3"]])
      expect(readFileSync(file).length).toBe(h.currentSize)
      giveToCyrus(file)
      cyrusConsistent(t.conf, file)
      expect(cyrusShow(t.conf, file)).toEqual([["a", "1"], ["b", "2"], ["c", "3"]])
      t.cleanup()
    })
  )

  it.effect("our unfinished transaction is rolled back by Cyrus (every crash point)", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-ourcrash")
      const base = path.join(t.dir, "base.db")
      const before = new Map<string, string>()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(base, { create: true, random: seeded(21), sync: false })
          for (let i = 0; i < 40; i++) {
            yield* db.store(b(`u${i}`), b(`p${i}`))
            before.set(`u${i}`, `p${i}`)
          }
        })
      )
      const original = readFileSync(base)
      const image = new Image(Buffer.from(original), original.length)
      const engine = new Engine(base, image, decodeHeader(image.buf, image.size, base), seeded(22))
      for (let i = 0; i < 40; i += 4) engine.delete(b(`u${i}`))
      for (let i = 0; i < 10; i++) engine.store(b(`u${i}x`), b(`new${i}`), true)
      engine.store(b("u1"), b("changed"), true)
      engine.commit()
      const steps = image.drain()
      // crash points: after each write (not counting the final header write that commits)
      const lastHeader = steps.reduce((at, st, i) => (st._tag === "Write" && st.offset === 0 ? i : at), -1)
      const points = [1, 3, Math.floor(lastHeader / 2), lastHeader - 1, lastHeader]
      for (const k of points) {
        const file = path.join(t.dir, `crash${k}.db`)
        const buf = Buffer.alloc(image.size)
        original.copy(buf)
        let size = original.length
        for (const st of steps.slice(0, k)) {
          if (st._tag === "Write") {
            st.data.copy(buf, st.offset)
            size = Math.max(size, st.offset + st.data.length)
          }
        }
        writeFileSync(file, buf.subarray(0, size))
        giveToCyrus(file)
        expect(cyrusShow(t.conf, file), `crash point ${k}`).toEqual(sorted(before))
        cyrusConsistent(t.conf, file)
        // and after Cyrus repaired it, we agree
        expect(yield* ours(file)).toEqual(sorted(before))
      }
      t.cleanup()
    })
  )

  it.effect("a child killed mid-transaction (SIGKILL) is rolled back by us and by Cyrus", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-kill")
      const file = path.join(t.dir, "k.db")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file, { create: true })
          yield* db.store(b("keep0"), b("v0"))
          yield* db.store(b("keep1"), b("v1"))
        })
      )
      giveToCyrus(file)
      const child = spawn(
        path.join(process.cwd(), "node_modules", ".bin", "vite-node"),
        [path.join(import.meta.dirname, "twoskipCrashChild.ts"), file, "25"],
        { stdio: ["ignore", "pipe", "pipe"] }
      )
      let err = ""
      child.stderr.on("data", (d) => (err += String(d)))
      yield* Effect.promise(
        () =>
          new Promise<void>((resolve, reject) => {
            child.stdout.on("data", (d) => (String(d).includes("READY") ? resolve() : undefined))
            child.on("exit", (code) => reject(new Error(`child exited ${code}: ${err}`)))
          })
      )
      // the child's records are on disk but not committed
      const copy = path.join(t.dir, "snapshot.db")
      const dirty = readFileSync(file)
      expect(dirty.length).toBeGreaterThan(decodeHeader(dirty, dirty.length, file).currentSize)
      child.kill("SIGKILL")
      yield* Effect.promise(() => new Promise((r) => child.on("exit", r)))
      copyFileSync(file, copy)
      giveToCyrus(copy)
      expect(yield* ours(file)).toEqual([["keep0", "v0"], ["keep1", "v1"]])
      expect(cyrusShow(t.conf, copy)).toEqual([["keep0", "v0"], ["keep1", "v1"]])
      t.cleanup()
    })
  )

  it.live("Cyrus waits for our write lock, then sees our commit", () =>
    Effect.gen(function* () {
      const t = scratchDir("interop-lock")
      const file = path.join(t.dir, "lock.db")
      yield* Effect.scoped(Twoskip.open(file, { create: true }))
      giveToCyrus(file)
      let exited = false
      yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* Twoskip.open(file)
          yield* db.transaction((txn) =>
            Effect.gen(function* () {
              yield* txn.store(b("ours"), b("1"))
              const child = spawn(
                "/usr/bin/setpriv",
                ["--reuid=cyrus", "--regid=mail", "--init-groups", "--", "/usr/lib/cyrus/bin/cyr_dbtool", "-C", t.conf, file, "twoskip", "set", "theirs", "2"],
                { stdio: "ignore" }
              )
              child.on("exit", () => (exited = true))
              yield* Effect.sleep("400 millis")
              expect(exited).toBe(false)
            })
          )
        })
      )
      for (let i = 0; i < 100 && !exited; i++) yield* Effect.sleep("50 millis")
      expect(exited).toBe(true)
      expect(yield* ours(file)).toEqual([["ours", "1"], ["theirs", "2"]])
      const got = yield* Effect.scoped(Effect.flatMap(Twoskip.open(file), (db) => db.fetch(b("theirs"))))
      expect(Option.map(got, s)).toEqual(Option.some("2"))
      t.cleanup()
    })
  )
})

/** `cyr_dbtool -n <file> twoskip set` with key<TAB>value lines on stdin (creates the file). */
const cyrDbtoolCreate = (conf: string, file: string, lines: string) =>
  lines.length === 0 ? cyrDbtoolN(conf, file, ["show"]) : cyrDbtoolN(conf, file, ["set"], b(lines))

const cyrDbtoolN = (conf: string, file: string, args: ReadonlyArray<string>, input?: Buffer) =>
  cyrDbtool(conf, file, args, input, ["-n"])
