/**
 * Interop with the real Cyrus 3.6.1 tools (run as cyrus): what we write passes
 * `ctl_backups verify`, `cyr_backup dump message` returns the exact bytes, our lock is seen
 * by `ctl_backups lock`, and crash-recovered files verify too.
 */
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { item, kvlist, atom } from "../../src/protocol/dlist/value.js"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { copyGolden, cyrusConf, goldenLines, type GoldenLine } from "./support.js"
import { chownForCyrus, haveCyrusTools, runCyrusTool, tempDir, warnNoCyrusTools } from "../support/cyrus.js"

warnNoCyrusTools("store interop tests")

const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex")

/** Appends the golden lines into `data`, one scope per golden chunk. */
const writeGoldenCopy = (data: string, lines: ReadonlyArray<GoldenLine>) =>
  Effect.forEach(
    [...new Set(lines.map((l) => l.chunk))],
    (id) =>
      Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true })
          for (const l of lines.filter((x) => x.chunk === id)) yield* w.append(l.item, l.ts)
        })
      ),
    { discard: true }
  )

const verify = (conf: string, data: string) => runCyrusTool("ctl_backups", ["-C", conf, "-F", "-f", "verify", data])

describe.skipIf(!haveCyrusTools)("store interop with Cyrus 3.6.1", () => {
  it.effect("a backup we wrote passes ctl_backups verify, and cyr_backup dumps exact message bytes", () =>
    Effect.gen(function*() {
      const dir = tempDir("interop")
      const conf = cyrusConf(dir)
      const lines = yield* goldenLines(path.join(dir, "staging"))
      const data = path.join(dir, "backups", "alice_ours")
      yield* writeGoldenCopy(data, lines)
      chownForCyrus(dir)
      const v = yield* Effect.promise(() => verify(conf, data))
      expect(v.code, v.stdout + v.stderr).toBe(0)

      const files = lines.flatMap((l) => (l.item.key === "MESSAGE" && l.item.value._tag === "List" ? l.item.value.items : []))
      const picks = [files[0], files[Math.floor(files.length / 2)], files[files.length - 1]]
      for (const f of picks) {
        if (f === undefined || f._tag !== "File") continue
        const r = yield* Effect.promise(() => runCyrusTool("cyr_backup", ["-C", conf, "-f", data, "dump", "message", f.guid]))
        expect(r.code, r.stderr).toBe(0)
        const bytes = Buffer.from(r.stdout, "latin1")
        expect(bytes.length).toBe(f.size)
        expect(sha1(bytes)).toBe(f.guid)
      }

    }))

  it.effect("ctl_backups reindex of our file gives an index that verifies; we append after it", () =>
    Effect.gen(function*() {
      const dir = tempDir("interop-reindex")
      const conf = cyrusConf(dir)
      // Cyrus 3.6.1's reindex counts a chunk on its re-printing of the lines, which writes a
      // literal `{n+}` where we write `{n}`: a chunk holding a literal (APPLY SIEVE) never gets
      // an index its verify accepts (docs/storage.md), so this backup leaves them out.
      const lines = (yield* goldenLines(path.join(dir, "staging"))).filter((l) => l.item.key !== "SIEVE")
      const data = path.join(dir, "backups", "alice_reindex")
      yield* writeGoldenCopy(data, lines)
      chownForCyrus(dir)
      const ri = yield* Effect.promise(() => runCyrusTool("ctl_backups", ["-C", conf, "-f", "reindex", data]))
      expect(ri.code, ri.stdout + ri.stderr).toBe(0)
      const v2 = yield* Effect.promise(() => verify(conf, data))
      expect(v2.code, v2.stdout + v2.stderr).toBe(0)
      // and we can append after the C tools rebuilt the index (slow path, our table is gone)
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data)
          expect(w.recovery.actions).toContain("rebuilt")
          yield* w.append(item("SUB", kvlist([["USERID", atom("alice")], ["MBOXNAME", atom("user.alice.Extra")]])))
        })
      )
      chownForCyrus(dir)
      const v3 = yield* Effect.promise(() => verify(conf, data))
      expect(v3.code, v3.stdout + v3.stderr).toBe(0)
    }))

  it.effect("appending to the C-written golden backup keeps it verifiable", () =>
    Effect.gen(function*() {
      const dir = tempDir("interop-golden")
      const conf = cyrusConf(dir)
      const data = copyGolden(path.join(dir, "backups"))
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data)
          expect(w.recovery.actions).toContain("rebuilt")
          yield* w.append(item("UNSUB", kvlist([["USERID", atom("alice")], ["MBOXNAME", atom("user.alice.Work")]])))
        })
      )
      chownForCyrus(dir)
      const v = yield* Effect.promise(() => verify(conf, data))
      expect(v.code, v.stdout + v.stderr).toBe(0)
    }))

  it.effect("ctl_backups lock sees our lock while a writer is open", () =>
    Effect.gen(function*() {
      const dir = tempDir("interop-lock")
      const conf = cyrusConf(dir)
      const data = path.join(dir, "backups", "alice_lock")
      const scope = yield* Scope.make()
      const w = yield* openForAppend(data, { create: true }).pipe(Scope.extend(scope))
      yield* w.append(item("SUB", kvlist([["USERID", atom("alice")], ["MBOXNAME", atom("user.alice")]])), 1000)
      chownForCyrus(dir)
      const held = yield* Effect.promise(() => runCyrusTool("ctl_backups", ["-C", conf, "lock", "-x", "/bin/true", "-f", data]))
      expect(held.code).toBe(75) // EX_TEMPFAIL
      expect(held.stderr).toMatch(/unable to lock .*: Mailbox is locked/)
      yield* Scope.close(scope, Exit.void)
      const free = yield* Effect.promise(() => runCyrusTool("ctl_backups", ["-C", conf, "lock", "-x", "/bin/true", "-f", data]))
      expect(free.code, free.stdout + free.stderr).toBe(0)
    }))

  it.effect("a chunk abandoned mid-session is sealed on the next open and verifies", () =>
    Effect.gen(function*() {
      const dir = tempDir("interop-crash")
      const conf = cyrusConf(dir)
      const data = path.join(dir, "backups", "alice_crash")
      const copy = path.join(dir, "backups", "alice_crash_copy")
      const scope = yield* Scope.make()
      const w = yield* openForAppend(data, { create: true }).pipe(Scope.extend(scope))
      for (let i = 0; i < 5; i++) {
        yield* w.append(item("SUB", kvlist([["USERID", atom("alice")], ["MBOXNAME", atom(`user.alice.F${i}`)]])), 1000 + i)
      }
      // What a kill -9 leaves: the files as they are now (committed index, unsealed member),
      // plus some bytes of an APPLY that was never acknowledged.
      fs.copyFileSync(data, copy)
      fs.copyFileSync(`${data}.index`, `${copy}.index`)
      fs.appendFileSync(copy, Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a]))
      yield* Scope.close(scope, Exit.void)
      chownForCyrus(dir)
      // The unsealed copy already passes C verify (trailer-less last member is tolerated)…
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w2 = yield* openForAppend(copy)
          expect(w2.recovery.actions).toEqual(["truncated", "sealed"])
          const subs = yield* w2.reader.subscriptions()
          expect(subs.map((s) => s.mboxname)).toEqual([0, 1, 2, 3, 4].map((i) => `user.alice.F${i}`))
        })
      )
      chownForCyrus(dir)
      const v = yield* Effect.promise(() => verify(conf, copy))
      expect(v.code, v.stdout + v.stderr).toBe(0)
      const ri = yield* Effect.promise(() => runCyrusTool("ctl_backups", ["-C", conf, "-f", "reindex", copy]))
      expect(ri.code, ri.stdout + ri.stderr).toBe(0)
      const v2 = yield* Effect.promise(() => verify(conf, copy))
      expect(v2.code, v2.stdout + v2.stderr).toBe(0)
    }))
})
