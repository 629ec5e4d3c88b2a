import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  dirHash,
  parseExcluded,
  parseSelectMode,
  PartitionSelector,
  Partitions,
  type SelectMode,
  type SpaceFigures
} from "../../src/partitions/index.js"

describe("dirHash", () => {
  it("default: lower-cased first letter, else q", () => {
    expect(dirHash("alice", false)).toBe("a")
    expect(dirHash("Anne", false)).toBe("a")
    expect(dirHash("1abc", false)).toBe("q")
    expect(dirHash("%SHARED", false)).toBe("q")
    expect(dirHash("", false)).toBe("q")
    expect(dirHash("\xe9lodie", false)).toBe("q")
    expect(dirHash("Zed", false)).toBe("z")
  })

  it("fulldirhash: n = ((n<<3) ^ (n>>5)) ^ byte up to the first '.', 'A' + n % 23", () => {
    // worked by hand: bob → 98 → 892 → 7065; 7065 % 23 = 4 → 'E'
    expect(dirHash("bob", true)).toBe("E")
    expect(dirHash("alice", true)).toBe("L") // n = 446970
    expect(dirHash("carol", true)).toBe("B") // n = 453975
    expect(dirHash("%SHARED", true)).toBe("J") // n = 12166480
    expect(dirHash("anne.smith", true)).toBe(dirHash("anne", true)) // stops at '.'
    expect(dirHash("anne", true)).toBe("F") // n = 55895
    expect(dirHash("user@example.com", true)).toBe("T") // n = 1719387145 (uint32 wrap)
    expect(dirHash("", true)).toBe("A")
  })
})

const figures = (table: Record<string, SpaceFigures | undefined>) => (p: string) => table[p]

const selector = (
  parts: ReadonlyArray<readonly [string, string]>,
  table: Record<string, SpaceFigures | undefined>,
  mode: SelectMode,
  extra: { softUsageLimit?: number; usageReinit?: number; random?: () => number } = {}
) =>
  new PartitionSelector(
    parts,
    { mode, softUsageLimit: extra.softUsageLimit ?? 0, usageReinit: extra.usageReinit ?? 0 },
    figures(table),
    extra.random ?? Math.random
  )

describe("partition selection (partlist rules)", () => {
  const parts = [["p1", "/p1"], ["p2", "/p2"], ["p3", "/p3"]] as const

  it("parses modes and exclusions like Cyrus", () => {
    expect(parseSelectMode(undefined)).toBe("freespace-most")
    expect(parseSelectMode("freespace-percent-weighted-delta")).toBe("freespace-percent-weighted-delta")
    expect(parseSelectMode("bogus")).toBe("random")
    expect(parseExcluded("a, b\tc,,d")).toEqual(["a", "b", "c", "d"])
  })

  it("freespace-most: most free KiB, one partition per file system", () => {
    const table = {
      "/p1": { fsId: 1, availableKiB: 500, totalKiB: 1000 },
      "/p2": { fsId: 2, availableKiB: 800, totalKiB: 10000 },
      "/p3": { fsId: 1, availableKiB: 900, totalKiB: 1000 } // same fs as p1: ignored
    }
    expect(selector(parts, table, "freespace-most").select()?.name).toBe("p2")
  })

  it("freespace-percent-most: highest percentage free", () => {
    const table = {
      "/p1": { fsId: 1, availableKiB: 500, totalKiB: 1000 },
      "/p2": { fsId: 2, availableKiB: 800, totalKiB: 10000 },
      "/p3": { fsId: 3, availableKiB: 700, totalKiB: 1000 }
    }
    expect(selector(parts, table, "freespace-percent-most").select()?.name).toBe("p3")
  })

  it("soft usage limit: partitions more used than the limit are avoided unless all are", () => {
    const table = {
      "/p1": { fsId: 1, availableKiB: 50, totalKiB: 1000 }, // 95% used
      "/p2": { fsId: 2, availableKiB: 300, totalKiB: 1000 }, // 70% used
      "/p3": { fsId: 3, availableKiB: 90, totalKiB: 100 } // 10% used, but little KiB
    }
    // limit 80% used: p1 avoided; among the rest the most KiB free wins
    const s = selector(parts, table, "freespace-most", { softUsageLimit: 80 })
    expect(s.select()?.name).toBe("p2")
    expect(s.items.find((i) => i.name === "p1")?.quota).toBe(0)
    // limit 5%: every partition is over it, so none is excluded
    expect(selector(parts, table, "freespace-most", { softUsageLimit: 5 }).select()?.name).toBe("p2")
  })

  it("freespace-percent-weighted: draws in proportion to percent free", () => {
    const table = {
      "/p1": { fsId: 1, availableKiB: 100, totalKiB: 1000 }, // 10
      "/p2": { fsId: 2, availableKiB: 300, totalKiB: 1000 }, // 30
      "/p3": { fsId: 3, availableKiB: 0, totalKiB: 1000 } // 0: never
    }
    const draws = [0.0, 0.24, 0.26, 0.99]
    let i = 0
    const s = selector(parts, table, "freespace-percent-weighted", { random: () => draws[i++]! })
    expect(s.items.map((x) => x.quota)).toEqual([0, 0, 0]) // not measured yet
    expect([s.select()?.name, s.select()?.name, s.select()?.name, s.select()?.name]).toEqual(["p1", "p1", "p2", "p2"])
    expect(s.items.map((x) => x.quota)).toEqual([25, 75, 0])
  })

  it("freespace-percent-weighted-delta: weights relative to the fullest, +0.5", () => {
    const table = {
      "/p1": { fsId: 1, availableKiB: 100, totalKiB: 1000 }, // 10 → 0.5
      "/p2": { fsId: 2, availableKiB: 300, totalKiB: 1000 } // 30 → 20.5
    }
    const s = selector(parts.slice(0, 2), table, "freespace-percent-weighted-delta", { random: () => 0.5 })
    expect(s.select()?.name).toBe("p2")
    expect(s.items[0]!.quota).toBeCloseTo((0.5 * 100) / 21)
    expect(s.items[1]!.quota).toBeCloseTo((20.5 * 100) / 21)
  })

  it("random, and inconsistent figures fall back to random", () => {
    const s = selector(parts, {}, "random", { random: () => 0.7 })
    expect(s.select()?.name).toBe("p3")
    // p2 cannot be measured: everything becomes equally likely
    const table = { "/p1": { fsId: 1, availableKiB: 1, totalKiB: 10 }, "/p3": { fsId: 3, availableKiB: 9, totalKiB: 10 } }
    const f = selector(parts, table, "freespace-most", { random: () => 0.4 })
    expect(f.select()?.name).toBe("p2")
    expect(f.items.map((x) => x.quota)).toEqual([50, 50, 50])
  })

  it("nothing free: no selection; usage_reinit re-measures after N selections", () => {
    const table: Record<string, SpaceFigures> = { "/p1": { fsId: 1, availableKiB: 10, totalKiB: 100 } }
    const s = selector([["p1", "/p1"]], table, "freespace-most", { usageReinit: 2 })
    expect(s.select()?.name).toBe("p1")
    table["/p1"] = { fsId: 1, availableKiB: 0, totalKiB: 100 }
    expect(s.select()?.name).toBe("p1") // still the old figures
    expect(s.select()).toBeUndefined() // third selection re-measured: full
  })
})

describe("Partitions layer: new data files", () => {
  const run = <A, E>(partitions: ReadonlyMap<string, string>, options: Parameters<typeof Partitions.layer>[1], f: (p: Partitions["Type"]) => Effect.Effect<A, E>) =>
    Effect.flatMap(Partitions, f).pipe(Effect.provide(Partitions.layer(partitions, options)))

  it.effect("creates <partition>/<hash>/<userid>_XXXXXX, mode 0600, unique, dirs created", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(path.join(tmpdir(), "partitions-"))
      const part = path.join(root, "backups") // missing: created on demand
      const umask = process.umask()
      const files = yield* run(new Map([["default", part]]), {}, (p) =>
        Effect.all([p.createDataFile("alice"), p.createDataFile("alice"), p.createDataFile("%SHARED"), p.createDataFile("Bob")])
      )
      expect(files[0]).toMatch(new RegExp(`^${part}/a/alice_[A-Za-z0-9]{6}$`))
      expect(files[1]).not.toBe(files[0])
      expect(files[2]).toMatch(new RegExp(`^${part}/q/%SHARED_[A-Za-z0-9]{6}$`))
      expect(files[3]).toMatch(new RegExp(`^${part}/b/Bob_[A-Za-z0-9]{6}$`))
      for (const f of files) {
        const st = statSync(f)
        expect(st.size).toBe(0)
        expect(st.mode & 0o777).toBe(0o600 & ~umask)
      }
      expect(statSync(path.join(part, "a")).mode & 0o777).toBe(0o755 & ~umask)
      expect(readdirSync(path.join(part, "a")).length).toBe(2)
      const hashed = yield* run(new Map([["default", part]]), { fulldirhash: true }, (p) => p.createDataFile("bob"))
      expect(hashed).toMatch(new RegExp(`^${part}/E/bob_[A-Za-z0-9]{6}$`))
      rmSync(root, { recursive: true, force: true })
    })
  )

  it.effect("typed errors: none configured, all excluded, not writable", () =>
    Effect.gen(function* () {
      const none = yield* run(new Map(), {}, (p) => p.createDataFile("alice")).pipe(Effect.flip)
      expect(none._tag).toBe("NoPartitionConfigured")
      const excluded = yield* run(new Map([["a", "/tmp"], ["b", "/tmp"]]), { exclude: "a b" }, (p) => p.select).pipe(Effect.flip)
      expect(excluded._tag).toBe("NoPartitionConfigured")
      const root = mkdtempSync(path.join(tmpdir(), "partitions-"))
      writeFileSync(path.join(root, "file"), "x")
      const blocked = yield* run(new Map([["bad", path.join(root, "file", "sub")]]), { mode: "random" }, (p) => p.createDataFile("alice")).pipe(Effect.flip)
      expect(blocked._tag).toBe("PartitionNotWritable")
      const full = yield* run(new Map([["full", root]]), { measure: () => Effect.succeed({ fsId: 1, availableKiB: 0, totalKiB: 10 }) }, (p) => p.select).pipe(Effect.flip)
      expect(full._tag).toBe("NoPartitionAvailable")
      rmSync(root, { recursive: true, force: true })
    })
  )
})
