/**
 * Resource use: a 64 MiB message streams through the parser to its staging file without
 * being held in memory, and parsing speed is bounded by hashing, not by per-byte work.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { Effect, Stream } from "effect"
import { ByteReader, EOF, WORD_STOP, byteClass } from "../../src/protocol/ByteReader.js"
import { parseItem } from "../../src/protocol/dlist/parse.js"
import { filesOf } from "../../src/protocol/dlist/value.js"
import { fixture, provideFs } from "./dlistSupport.js"

/** `gc()` even when node runs without --expose-gc (the flag can be turned on at run time). */
const gc: () => void = (() => {
  const existing = (globalThis as { gc?: () => void }).gc
  if (existing) return existing
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
})()

const CHUNK = 64 * 1024
const MESSAGE_CHUNKS = 1024 // 64 MiB

/** The n-th chunk of the generated message: distinct, cheap to make again for hashing. */
const messageChunk = (n: number): Buffer => {
  const b = Buffer.alloc(CHUNK, 0x61 + (n % 26))
  b.writeUInt32BE(n, 0)
  return b
}

describe("dlist parser resource use", () => {
  it.effect(
    "a 64 MiB message literal streams to its staging file with little heap growth",
    () =>
      Effect.gen(function* () {
        const hash = createHash("sha1")
        for (let n = 0; n < MESSAGE_CHUNKS; n++) hash.update(messageChunk(n))
        const guid = hash.digest("hex")
        const size = CHUNK * MESSAGE_CHUNKS
        const dir = mkdtempSync(path.join(tmpdir(), "dlist-mem-"))
        try {
          gc()
          const before = process.memoryUsage()
          let peakHeap = 0
          let peakBuffers = 0
          const sample = (n: number) =>
            Effect.sync(() => {
              if (n % 64 === 0) {
                gc()
                const m = process.memoryUsage()
                peakHeap = Math.max(peakHeap, m.heapUsed - before.heapUsed)
                peakBuffers = Math.max(peakBuffers, m.arrayBuffers - before.arrayBuffers)
              }
            })
          const body = Stream.range(0, MESSAGE_CHUNKS - 1).pipe(
            Stream.tap(sample),
            Stream.map(messageChunk)
          )
          const input = Stream.concat(
            Stream.make(Buffer.from(`MESSAGE (%{default ${guid} ${size}}\r\n`)),
            Stream.concat(body, Stream.make(Buffer.from(")\r\n")))
          )
          const reader = yield* ByteReader.fromStream(input)
          const r = yield* provideFs(parseItem(reader, { files: { _tag: "Stage", stagingDir: dir } }))
          const [file] = filesOf(r.item.value)
          expect(file!.sha1).toBe(guid)
          expect(file!.size).toBe(size)
          expect(statSync(file!.path).size).toBe(size)
          expect(r.terminator).toBe(0x0d)
          console.log(
            `64 MiB message: peak heapUsed growth ${(peakHeap / 2 ** 20).toFixed(1)} MiB, ` +
              `peak arrayBuffers growth ${(peakBuffers / 2 ** 20).toFixed(1)} MiB`
          )
          expect(peakHeap).toBeLessThan(32 * 2 ** 20)
          expect(peakBuffers).toBeLessThan(32 * 2 ** 20)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "throughput: a ~100 MB data file and a metadata-heavy line parse fast (figures logged)",
    () =>
      Effect.gen(function* () {
        // The golden data file repeated: mostly message bytes, as real data files are.
        const data = fixture("alice.backup.decompressed.txt")
        const copies = Math.ceil((100 * 2 ** 20) / data.length)
        const LF = byteClass(0x0a)
        const parseDataFile = (chunks: Stream.Stream<Uint8Array>) =>
          Effect.gen(function* () {
            const reader = yield* ByteReader.fromStream(chunks)
            let lines = 0
            for (;;) {
              const first = yield* reader.peekByte
              if (first === EOF) return lines
              if (first === 0x23) {
                yield* reader.readToken(LF, 1024)
                continue
              }
              yield* reader.readToken(WORD_STOP, 32)
              yield* reader.readToken(WORD_STOP, 32)
              const r = yield* parseItem(reader)
              if (r.terminator !== 0x0d || (yield* reader.readByte) !== 0x0a) throw new Error("bad line end")
              lines++
            }
          }).pipe(Effect.scoped, provideFs)
        const chunked = (whole: Buffer, times: number) =>
          Stream.range(0, times - 1).pipe(
            Stream.flatMap(() => Stream.fromIterable(Array.from({ length: Math.ceil(whole.length / CHUNK) }, (_, i) => whole.subarray(i * CHUNK, (i + 1) * CHUNK))))
          )

        // CPU time of this (forked) test process, so that a busy machine does not skew figures.
        const cpuSecs = (since: NodeJS.CpuUsage) => {
          const u = process.cpuUsage(since)
          return (u.user + u.system) / 1e6
        }
        let t = process.cpuUsage()
        const lines = yield* parseDataFile(chunked(data, copies))
        const dataSecs = cpuSecs(t)
        const dataMB = (data.length * copies) / 1e6

        // One MAILBOX line with 50,000 records: all tokens, no messages.
        const records = Array.from(
          { length: 50_000 },
          (_, i) =>
            `%(UID ${i + 1} MODSEQ ${i + 7} LAST_UPDATED 1700000000 FLAGS (\\Seen $Label) INTERNALDATE 1700000000 SIZE 1234 GUID ${createHash("sha1").update(String(i)).digest("hex")})`
        ).join(" ")
        const meta = Buffer.from(`0 APPLY MAILBOX %(UNIQUEID x MBOXNAME user.anne ACL "anne\tlrs\t" OPTIONS "" RECORD (${records}))\r\n`)
        t = process.cpuUsage()
        expect(yield* parseDataFile(chunked(meta, 4))).toBe(4)
        const metaSecs = cpuSecs(t)
        const metaMB = (meta.length * 4) / 1e6

        // For comparison: SHA-1 alone over the same data-file bytes.
        t = process.cpuUsage()
        const h = createHash("sha1")
        for (let i = 0; i < copies; i++) h.update(data)
        h.digest()
        const shaSecs = cpuSecs(t)

        console.log(
          `throughput: data file ${dataMB.toFixed(0)} MB (${lines} lines) in ${dataSecs.toFixed(2)} s = ` +
            `${(dataMB / dataSecs).toFixed(0)} MB/s of CPU time (SHA-1 alone ${(dataMB / shaSecs).toFixed(0)} MB/s); ` +
            `metadata ${metaMB.toFixed(0)} MB in ${metaSecs.toFixed(2)} s = ${(metaMB / metaSecs).toFixed(0)} MB/s`
        )
        // Lenient floors: CI machines are slow and shared.
        expect(dataMB / dataSecs).toBeGreaterThan(20)
        expect(metaMB / metaSecs).toBeGreaterThan(2)
      }),
    120_000
  )
})
