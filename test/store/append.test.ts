/**
 * The writer's contract without the Cyrus tools: lazy chunks, monotonic timestamps, chunk
 * checksums that need no re-read, all-or-nothing appends, the in-process lock, and crash
 * recovery (abandoned files and a child killed with SIGKILL mid-append).
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Scope, Stream } from "effect"
import { atom, item, kvlist, list, type File, type Item } from "../../src/protocol/dlist/value.js"
import { openForRead } from "../../src/store/read/BackupReader.js"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { reindexFile } from "../../src/store/maintain/reindex.js"
import { liveCompressors } from "../../src/store/write/segmentWriter.js"
import { checkChunks, tableRows } from "./support.js"
import { tempDir } from "../support/cyrus.js"

const sub = (name: string): Item => item("SUB", kvlist([["USERID", atom("t")], ["MBOXNAME", atom(name)]]))
const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex")

const stage = (dir: string, body: string): File => {
  const bytes = Buffer.from(body, "latin1")
  const guid = sha1(bytes)
  const p = path.join(dir, guid)
  fs.writeFileSync(p, bytes)
  return { _tag: "File", partition: "default", guid, size: bytes.length, path: p, sha1: guid }
}

const snapshot = (data: string) => ({
  size: fs.statSync(data).size,
  chunk: tableRows(`${data}.index`, "SELECT * FROM chunk ORDER BY id"),
  message: tableRows(`${data}.index`, "SELECT * FROM message ORDER BY id"),
  mailbox: tableRows(`${data}.index`, "SELECT * FROM mailbox ORDER BY id"),
  subscription: tableRows(`${data}.index`, "SELECT * FROM subscription ORDER BY id"),
  sieve: tableRows(`${data}.index`, "SELECT * FROM sieve ORDER BY id")
})

describe("openForAppend", () => {
  it.effect("starts no chunk until the first append; chunks chain their file_sha1", () =>
    Effect.gen(function*() {
      const data = path.join(tempDir("lazy"), "b")
      yield* Effect.scoped(openForAppend(data, { create: true }))
      expect(fs.statSync(data).size).toBe(0)
      expect(tableRows(`${data}.index`, "SELECT * FROM chunk")).toEqual([])
      expect(tableRows(`${data}.index`, "PRAGMA user_version")).toEqual([{ user_version: 3 }])
      for (let s = 0; s < 3; s++) {
        yield* Effect.scoped(
          Effect.gen(function*() {
            const w = yield* openForAppend(data)
            yield* w.append(sub(`user.t.A${s}`), 5000 - s * 10)
            const r = yield* w.append(sub(`user.t.B${s}`), 100)
            expect(r.ts).toBe(5000) // clamped: timestamps never go backwards
          })
        )
      }
      expect(checkChunks(data)).toEqual([])
      const chunks = tableRows(`${data}.index`, "SELECT id, ts_start, ts_end FROM chunk ORDER BY id")
      expect(chunks).toEqual([1, 2, 3].map((id) => ({ id, ts_start: 5000, ts_end: 5000 })))
    }))

  it.effect("a second open in the same process fails at once with BackupLocked", () =>
    Effect.gen(function*() {
      const data = path.join(tempDir("lock"), "b")
      const scope = yield* Scope.make()
      yield* openForAppend(data, { create: true }).pipe(Scope.extend(scope))
      const again = yield* Effect.scoped(openForAppend(data)).pipe(Effect.flip)
      expect(again._tag).toBe("BackupLocked")
      const reader = yield* Effect.scoped(openForRead(data)).pipe(Effect.flip)
      expect(reader._tag).toBe("BackupLocked")
      yield* Scope.close(scope, Exit.void)
      yield* Effect.scoped(openForRead(data))
    }))

  it.effect("a rejected or failing append leaves no trace, and the chunk carries on", () =>
    Effect.gen(function*() {
      const dir = tempDir("rollback")
      const data = path.join(dir, "b")
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true })
          // rejected as the very first append: no chunk, empty file
          const first = yield* w.append(item("MAILBOX", kvlist([["UNIQUEID", atom("u1")]])), 10).pipe(Effect.flip)
          expect(first).toMatchObject({ _tag: "AppendRejected", reason: "bad-parameters" })
          expect(snapshot(data).size).toBe(0)
          expect(snapshot(data).chunk).toEqual([])

          yield* w.append(sub("user.t"), 10)
          const m = stage(dir, "Subject: hi\r\n\r\nbody\r\n")
          yield* w.append(item("MESSAGE", list([m])), 11)
          const before = snapshot(data)

          const unknown = yield* w.append(item("FROBNICATE", kvlist([])), 12).pipe(Effect.flip)
          expect(unknown).toMatchObject({ _tag: "AppendRejected", reason: "protocol" })
          const sieve = yield* w.append(item("SIEVE", kvlist([["FILENAME", atom("x.script")]])), 12).pipe(Effect.flip)
          expect(sieve._tag).toBe("AppendRejected")
          // a staged file changed after upload: the line is cut back out of the member
          const bad = stage(dir, "Subject: other\r\n\r\n" + "y".repeat(100_000))
          fs.writeFileSync(bad.path, "tampered")
          const staged = yield* w.append(item("MESSAGE", list([bad])), 12).pipe(Effect.flip)
          expect(staged._tag).toBe("StagedFileMismatch")
          expect(snapshot(data)).toEqual(before)

          yield* w.append(sub("user.t.after"), 13)
          const bytes = yield* Stream.runCollect(w.reader.messageBytes(m.guid))
          expect(Buffer.concat(Chunk.toReadonlyArray(bytes)).toString("latin1")).toBe("Subject: hi\r\n\r\nbody\r\n")
        })
      )
      expect(checkChunks(data)).toEqual([])
      expect(tableRows(`${data}.index`, "SELECT id FROM chunk")).toEqual([{ id: 1 }])
      expect(tableRows(`${data}.index`, "SELECT mboxname FROM subscription ORDER BY id")).toEqual([
        { mboxname: "user.t" },
        { mboxname: "user.t.after" }
      ])
    }))

  it.effect("an APPLY that failed after part of it was compressed leaves no history behind for the next one", () =>
    Effect.gen(function*() {
      // The chunk's compressor outlives an APPLY. Here the failing APPLY's first message (over
      // 1 MiB, so some of it reaches the compressor) is a 16 KiB block repeated; the
      // next APPLY's message is that block again, which a compressor that still remembered the
      // rolled-back bytes would encode as references to them: bytes the file no longer holds.
      const dir = tempDir("rollback-history")
      const data = path.join(dir, "b")
      // 16 KiB that do not repeat within themselves
      const block = Array.from({ length: 256 }, (_, i) => createHash("sha256").update(`seed ${i}`).digest("hex")).join("")
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true })
          yield* w.append(sub("user.t"), 10)
          const big = stage(dir, "Subject: big\r\n\r\n" + block.repeat(96))
          const bad = stage(dir, "Subject: tampered\r\n\r\nbody\r\n")
          fs.writeFileSync(bad.path, "tampered")
          const failed = yield* w.append(item("MESSAGE", list([big, bad])), 11).pipe(Effect.flip)
          expect(failed._tag).toBe("StagedFileMismatch")
          const again = stage(dir, `Subject: again\r\n\r\n${block}${block}`)
          yield* w.append(item("MESSAGE", list([again])), 12)
          const bytes = yield* Stream.runCollect(w.reader.messageBytes(again.guid))
          expect(sha1(Buffer.concat(Chunk.toReadonlyArray(bytes)))).toBe(again.guid)
        })
      )
      expect(checkChunks(data)).toEqual([])
    }))

  it.effect("memberDigests: each sealed member's SHA-256, whole and per part, is what the file holds, across a rolled-back APPLY", () =>
    Effect.gen(function*() {
      const dir = tempDir("member-digests")
      const data = path.join(dir, "b")
      const partSize = 64 * 1024
      // text that hardly compresses, so that the members span several parts
      const noise = (seed: string, n: number) => {
        let s = ""
        for (let i = 0; s.length < n; i++) s += createHash("sha512").update(`${seed} ${i}`).digest("base64")
        return s.slice(0, n)
      }
      const sessions = [[150_000, 90_000], [10]] // the second member fits in one part
      for (const [k, sizes] of sessions.entries()) {
        yield* Effect.scoped(
          Effect.gen(function*() {
            const w = yield* openForAppend(data, { create: true, memberDigests: { partSize } })
            yield* w.append(sub(`user.t${k}`), 10)
            for (const [i, n] of sizes!.entries()) {
              yield* w.append(item("MESSAGE", list([stage(dir, `Subject: ${k}/${i}\r\n\r\n${noise(`${k}/${i}`, n)}`)])), 11)
              if (k === 0 && i === 0) {
                // fails after over a MiB of its compressed bytes reached the file: cut back out
                const big = stage(dir, `Subject: big\r\n\r\n${noise("big", 8_000_000)}`)
                const bad = stage(dir, "Subject: tampered\r\n\r\nbody\r\n")
                fs.writeFileSync(bad.path, "Subject: Tampered\r\n\r\nbody\r\n") // same size, other bytes: found once read
                expect((yield* w.append(item("MESSAGE", list([big, bad])), 12).pipe(Effect.flip))._tag).toBe("StagedFileMismatch")
              }
            }
          })
        )
      }
      expect(checkChunks(data)).toEqual([])
      const file = fs.readFileSync(data)
      const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
      const chunks = tableRows(`${data}.index`, "SELECT id, offset, data_sha1, file_sha1 FROM chunk ORDER BY id") as Array<Record<string, unknown>>
      const rows = tableRows(`${data}.index`, "SELECT * FROM backupd_member_digest ORDER BY chunk_id") as Array<Record<string, unknown>>
      expect(rows.map((r) => r.chunk_id)).toEqual([1, 2])
      for (const [i, c] of chunks.entries()) {
        const end = i + 1 < chunks.length ? Number(chunks[i + 1]!.offset) : file.length
        const member = file.subarray(Number(c.offset), end)
        const parts: Array<string> = []
        if (member.length > partSize) for (let at = 0; at < member.length; at += partSize) parts.push(sha256(member.subarray(at, at + partSize)))
        expect(rows[i]).toEqual({
          chunk_id: c.id,
          offset: c.offset,
          size: member.length,
          data_sha1: c.data_sha1,
          file_sha1: c.file_sha1,
          part_size: partSize,
          sha256: sha256(member),
          part_sha256: parts.join(" ")
        })
      }
      expect(rows[0]!.part_sha256).toMatch(/^([0-9a-f]{64} ){2,}[0-9a-f]{64}$/)
      expect(rows[1]!.part_sha256).toBe("")
      // without the option the index gets no such table
      const plain = path.join(dir, "plain")
      yield* Effect.scoped(Effect.flatMap(openForAppend(plain, { create: true }), (w) => w.append(sub("user.p"), 10)))
      expect(tableRows(`${plain}.index`, "SELECT name FROM sqlite_master WHERE name = 'backupd_member_digest'")).toEqual([])
    }))

  it.effect("many open backups share a bounded number of live compressors, and every one stays decodable", () =>
    Effect.gen(function*() {
      const dir = tempDir("many-open")
      const datas = Array.from({ length: 7 }, (_, i) => path.join(dir, `b${i}`))
      const bodies: Array<string> = []
      yield* Effect.scoped(
        Effect.gen(function*() {
          const writers = []
          for (const d of datas) writers.push(yield* openForAppend(d, { create: true }))
          for (let round = 0; round < 3; round++) {
            for (const [i, w] of writers.entries()) {
              const body = `Subject: ${i}/${round}\r\n\r\n${`backup ${i} round ${round} `.repeat(2000)}\r\n`
              bodies.push(body)
              yield* w.append(item("MESSAGE", list([stage(dir, body)])), 10 + round)
              expect(liveCompressors()).toBeLessThanOrEqual(4)
            }
          }
          for (const [i, w] of writers.entries()) {
            for (let round = 0; round < 3; round++) {
              const body = Buffer.from(bodies[round * writers.length + i]!, "latin1")
              const got = yield* Stream.runCollect(w.reader.messageBytes(sha1(body)))
              expect(Buffer.concat(Chunk.toReadonlyArray(got)).equals(body)).toBe(true)
            }
          }
        })
      )
      expect(liveCompressors()).toBe(0)
      for (const d of datas) expect(checkChunks(d)).toEqual([])
    }))

  it.effect("appendAll: several lines as one unit, each indexed at its own offset; one bad line and none is kept", () =>
    Effect.gen(function*() {
      const dir = tempDir("append-all")
      const data = path.join(dir, "b")
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true })
          yield* w.append(sub("user.t.first"), 10)
          const before = snapshot(data)
          // the third line is rejected: the first two must not stay either
          const rejected = yield* w.appendAll([sub("user.t.a"), sub("user.t.b"), item("MAILBOX", kvlist([["UNIQUEID", atom("u1")]]))], 11).pipe(Effect.flip)
          expect(rejected).toMatchObject({ _tag: "AppendRejected", reason: "bad-parameters" })
          expect(snapshot(data)).toEqual(before)
          const m = stage(dir, "Subject: batch\r\n\r\nin the middle of a batch\r\n")
          const rs = yield* w.appendAll(
            [sub("user.t.a"), item("MESSAGE", list([m])), item("UNSUB", kvlist([["USERID", atom("t")], ["MBOXNAME", atom("user.t.first")]])), sub("user.t.b")],
            12
          )
          expect(rs.map((r) => r.ts)).toEqual([12, 12, 12, 12])
          const bytes = yield* Stream.runCollect(w.reader.messageBytes(m.guid))
          expect(Buffer.concat(Chunk.toReadonlyArray(bytes)).toString("latin1")).toBe("Subject: batch\r\n\r\nin the middle of a batch\r\n")
          expect(new Set(rs.map((r) => r.chunkId)).size).toBe(1)
          expect(rs[1]!.offset).toBeGreaterThan(rs[0]!.offset)
          expect(yield* w.appendAll([])).toEqual([])
        })
      )
      expect(checkChunks(data)).toEqual([])
      expect(tableRows(`${data}.index`, "SELECT mboxname, unsubscribed IS NOT NULL AS gone FROM subscription ORDER BY id")).toEqual([
        { mboxname: "user.t.first", gone: 1 },
        { mboxname: "user.t.a", gone: 0 },
        { mboxname: "user.t.b", gone: 0 }
      ])
      // the offsets recorded for each line are where reindex finds them
      const live = ["subscription", "message"].map((t) => tableRows(`${data}.index`, `SELECT * FROM ${t} ORDER BY id`))
      fs.rmSync(`${data}.index`)
      yield* reindexFile(data, { keepPrevious: false })
      expect(["subscription", "message"].map((t) => tableRows(`${data}.index`, `SELECT * FROM ${t} ORDER BY id`))).toEqual(live)
    }))

  it.effect("recovers files left by an abandoned session (unsealed member, partial APPLY)", () =>
    Effect.gen(function*() {
      const dir = tempDir("abandon")
      const data = path.join(dir, "b")
      const scope = yield* Scope.make()
      const w = yield* openForAppend(data, { create: true }).pipe(Scope.extend(scope))
      yield* w.append(sub("user.t.one"), 10)
      yield* w.append(sub("user.t.two"), 11)
      const copies = ["clean", "tail", "first"].map((n) => path.join(dir, n))
      for (const c of copies) {
        fs.copyFileSync(data, c)
        fs.copyFileSync(`${data}.index`, `${c}.index`)
      }
      fs.appendFileSync(copies[1]!, Buffer.alloc(3000, 0x55))
      yield* Scope.close(scope, Exit.void)
      // "first": a crash during the very first APPLY of a new backup leaves only bytes
      const first = copies[2]!
      fs.writeFileSync(first, Buffer.alloc(100, 1))
      fs.rmSync(`${first}.index`)
      yield* Effect.scoped(openForAppend(first, { create: true })).pipe(Effect.flip, Effect.map((e) => expect(e._tag).toBe("BackupNeedsReindex")))

      for (const [c, actions] of [[copies[0]!, ["sealed"]], [copies[1]!, ["truncated", "sealed"]]] as const) {
        yield* Effect.scoped(
          Effect.gen(function*() {
            const w2 = yield* openForAppend(c)
            expect(w2.recovery.actions).toEqual(actions)
            yield* w2.append(sub("user.t.three"), 12)
          })
        )
        expect(checkChunks(c)).toEqual([])
        expect(tableRows(`${c}.index`, "SELECT id, length FROM chunk ORDER BY id").map((r) => r.id)).toEqual([1, 2])
        yield* Effect.scoped(
          Effect.gen(function*() {
            const w3 = yield* openForAppend(c)
            expect(w3.recovery.actions).toEqual(["clean"])
          })
        )
      }
    }))

  it.effect("survives SIGKILL mid-append: every acknowledged APPLY is kept, the file stays well-formed", () =>
    Effect.gen(function*() {
      const dir = tempDir("sigkill")
      const staging = path.join(dir, "staging")
      fs.mkdirSync(staging)
      const data = path.join(dir, "b")
      const here = path.dirname(fileURLToPath(import.meta.url))
      const viteNode = path.join(here, "..", "..", "node_modules", ".bin", "vite-node")
      const trials = Number(process.env["STORE_CRASH_TRIALS"] ?? 3)
      let acked = 0
      for (let t = 0; t < trials; t++) {
        const killAfter = 3 + ((t * 5) % 7)
        const got = yield* Effect.async<number>((resume) => {
          const child = spawn(viteNode, [path.join(here, "crashChild.ts"), data, staging, String(acked)], { stdio: ["ignore", "pipe", "pipe"] })
          let last = -1
          let seen = 0
          let buffer = ""
          child.stdout.on("data", (b: Buffer) => {
            buffer += b.toString()
            const lines = buffer.split("\n")
            buffer = lines.pop() ?? ""
            for (const l of lines) {
              const m = /^ACK (\d+)$/.exec(l)
              if (m) {
                last = Number(m[1])
                if (++seen === killAfter) child.kill("SIGKILL")
              }
            }
          })
          child.on("exit", () => resume(Effect.succeed(last)))
        })
        expect(got).toBeGreaterThanOrEqual(acked)
        acked = got + 1
        yield* Effect.scoped(
          Effect.gen(function*() {
            const w = yield* openForAppend(data)
            const names = new Set((yield* w.reader.subscriptions()).map((s) => s.mboxname))
            for (let n = 0; n < acked; n++) expect(names.has(`user.crash.F${n}`)).toBe(true)
          })
        )
        expect(checkChunks(data)).toEqual([])
      }
    }), Number(process.env["STORE_CRASH_TRIALS"] ?? 3) * 20_000 + 30_000)
})
