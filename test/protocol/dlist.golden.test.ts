/**
 * Golden tests against bytes produced by the real Cyrus 3.6.1: every APPLY/GET argument a
 * sync_client sent to backupd, every `* ` reply backupd sent, and every line of a backup
 * data file written by backupd, parses and re-prints byte for byte.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Chunk, Effect, Stream } from "effect"
import { ByteReader, EOF, WORD_STOP, byteClass } from "../../src/protocol/ByteReader.js"
import { parseItem, type ParseOptions } from "../../src/protocol/dlist/parse.js"
import { printItemStream } from "../../src/protocol/dlist/print.js"
import { filesOf } from "../../src/protocol/dlist/value.js"
import { FsLive, fixture, readerOf, reprintFromInput, splitTelemetry } from "./dlistSupport.js"

const LF_STOP = byteClass(0x0a)
const CR = 0x0d
const LF = 0x0a

interface Checked {
  readonly lines: number
  readonly files: number
}

/**
 * Walk a stream of command lines `<word> SP <dlist> CRLF` (client side) or `* <dlist>`
 * (server side); every dlist must re-print as the exact bytes it was parsed from.
 */
const checkLines = (
  input: Buffer,
  dlistWords: ReadonlySet<string>,
  options: ParseOptions,
  chunkSizes: ReadonlyArray<number>
) =>
  Effect.gen(function* () {
    const reader = readerOf(input, chunkSizes)
    let lines = 0
    let files = 0
    for (;;) {
      if ((yield* reader.peekByte) === EOF) break
      const word = yield* reader.readToken(WORD_STOP, 1024)
      if (!dlistWords.has(word.token) || word.terminator !== 0x20) {
        // Not a dlist line (OK, COMPRESS, EXIT, a data file's `#` comment...): skip it.
        if (word.terminator !== LF) yield* reader.readToken(LF_STOP, 1 << 20)
        continue
      }
      const start = reader.position
      const parsed = yield* parseItem(reader, options)
      const end = reader.position - 1
      expect(parsed.terminator).toBe(CR)
      expect(yield* reader.readByte).toBe(LF)
      const original = input.subarray(start, end)
      let printed: Buffer
      if (options.files !== undefined && "_tag" in options.files && options.files._tag === "Stage") {
        const chunks = yield* Stream.runCollect(printItemStream(parsed.item))
        printed = Buffer.concat(Chunk.toReadonlyArray(chunks))
      } else {
        printed = reprintFromInput(parsed.item, input)
      }
      if (!printed.equals(original)) {
        expect(printed.toString("latin1")).toBe(original.toString("latin1"))
      }
      for (const f of filesOf(parsed.item.value)) expect(f.sha1).toBe(f.guid)
      files += filesOf(parsed.item.value).length
      lines++
    }
    return { lines, files } satisfies Checked
  }).pipe(Effect.provide(FsLive))

const transcripts = [
  "01_initial_allusers.backupd.log",
  "02_incremental_rolling.backupd.log",
  "03_incremental_allusers.backupd.log"
]

describe("golden: backupd telemetry transcripts", () => {
  for (const name of transcripts) {
    const { client, server } = splitTelemetry(fixture(name))

    it.effect(`${name}: client APPLY/GET lines re-print identically (staged files)`, () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(path.join(tmpdir(), "dlist-golden-"))
        try {
          const r = yield* checkLines(client, new Set(["APPLY", "GET"]), { files: { _tag: "Stage", stagingDir: dir } }, [])
          expect(r.lines).toBeGreaterThan(0)
          // Staged files stay until their command is processed; here they are all still there.
          if (r.files > 0) expect(readdirSync(path.join(dir, "sync.", String(process.pid))).length).toBeGreaterThan(0)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      })
    )

    it.effect(`${name}: client lines re-print identically when read in odd-sized chunks`, () =>
      Effect.gen(function* () {
        const r = yield* checkLines(client, new Set(["APPLY", "GET"]), { files: { _tag: "Discard" } }, [1, 7, 3, 4096, 2, 61, 1])
        expect(r.lines).toBeGreaterThan(0)
      })
    )

    it.effect(`${name}: server '* ' replies re-print identically`, () =>
      Effect.gen(function* () {
        const r = yield* checkLines(server, new Set(["*"]), {}, [])
        // 01 has no untagged replies (first backup: all GET USER answers are empty).
        expect(r.lines).toBeGreaterThanOrEqual(0)
      })
    )
  }

  it.effect("the expected number of dlist lines is seen", () =>
    Effect.gen(function* () {
      const counts: Array<number> = []
      for (const name of transcripts) {
        const { client, server } = splitTelemetry(fixture(name))
        counts.push((yield* checkLines(client, new Set(["APPLY", "GET"]), {}, [])).lines)
        counts.push((yield* checkLines(server, new Set(["*"]), {}, [])).lines)
      }
      // Counted independently with grep on the logs.
      expect(counts).toEqual([58, 0, 60, 62, 4, 31])
    })
  )
})

describe("golden: backup data file written by backupd", () => {
  const data = fixture("alice.backup.decompressed.txt")

  it.effect("every `<epoch> APPLY <dlist>` line re-prints identically, messages at the recorded offsets", () =>
    Effect.gen(function* () {
      const reader = ByteReader.fromBytes(data)
      let lines = 0
      let messages = 0
      for (;;) {
        const first = yield* reader.peekByte
        if (first === EOF) break
        if (first === 0x23) {
          // `# cyrus backup: chunk start`
          yield* reader.readToken(LF_STOP, 1024)
          continue
        }
        const stamp = yield* reader.readToken(WORD_STOP, 32)
        expect(stamp.token).toMatch(/^\d+$/)
        const verb = yield* reader.readToken(WORD_STOP, 32)
        expect(verb.token).toBe("APPLY")
        const start = reader.position
        const parsed = yield* parseItem(reader)
        expect(parsed.terminator).toBe(CR)
        expect(yield* reader.readByte).toBe(LF)
        const original = data.subarray(start, reader.position - 2)
        const printed = reprintFromInput(parsed.item, data)
        if (!printed.equals(original)) expect(printed.toString("latin1")).toBe(original.toString("latin1"))
        for (const f of filesOf(parsed.item.value)) {
          // The offset is where the message's first byte is in the (decompressed) file.
          expect(data.subarray(f.offset! - 2, f.offset!).toString("latin1")).toBe("\r\n")
          messages++
        }
        lines++
      }
      expect(lines).toBeGreaterThan(20)
      expect(messages).toBeGreaterThan(20)
    }).pipe(Effect.provide(FsLive))
  )
})
