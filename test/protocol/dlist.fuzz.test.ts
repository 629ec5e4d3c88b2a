/**
 * Fuzzing: random bytes and mutations of real lines never make the parser throw, die or
 * hang: it either succeeds or fails with a DlistParseError.
 *
 * Discard mode never touches the file system, so these run with `Effect.runSyncExit` under
 * the plain `it.prop` (`it.effect.prop` builds a test runtime per case, ten times slower).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc } from "effect"
import { ByteReader, EOF, WORD_STOP, byteClass } from "../../src/protocol/ByteReader.js"
import { parseItem } from "../../src/protocol/dlist/parse.js"
import { printItem } from "../../src/protocol/dlist/print.js"
import { fixture, provideFs, readerOf, splitTelemetry } from "./dlistSupport.js"

const RUNS = 1000

/**
 * Real argument lines (after their command word, CRLF included) of a transcript, cut out
 * by parsing the streams; lines over 6000 bytes (messages) are left out to keep cases small.
 */
const realLines: ReadonlyArray<Buffer> = (() => {
  const { client, server } = splitTelemetry(fixture("02_incremental_rolling.backupd.log"))
  const out: Array<Buffer> = []
  const LF = byteClass(0x0a)
  for (const side of [client, server]) {
    Effect.runSync(
      provideFs(
        Effect.gen(function* () {
          const reader = ByteReader.fromBytes(side)
          for (;;) {
            const w = yield* reader.readToken(WORD_STOP, 100)
            if (w.terminator === EOF) return
            if (!["APPLY", "GET", "*"].includes(w.token) || w.terminator !== 0x20) {
              if (w.terminator !== 0x0a) yield* reader.readToken(LF, 1 << 20)
              continue
            }
            const start = reader.position
            yield* parseItem(reader)
            yield* reader.readByte
            if (reader.position - start <= 6000) out.push(side.subarray(start, reader.position))
          }
        })
      )
    )
  }
  return out
})()

/** Interesting bytes to splice in: the grammar's punctuation. */
const special = fc.constantFrom(..."(){}%\\\"+ \r\n\t\0\xff0123456789NIL".split("").map((c) => c.charCodeAt(0)))
const anyByte = fc.oneof(fc.integer({ min: 0, max: 255 }), special)

type Mutation =
  | { readonly op: "set"; readonly at: number; readonly byte: number }
  | { readonly op: "insert"; readonly at: number; readonly bytes: ReadonlyArray<number> }
  | { readonly op: "delete"; readonly at: number; readonly length: number }
  | { readonly op: "truncate"; readonly at: number }

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), byte: anyByte }),
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), bytes: fc.array(anyByte, { minLength: 1, maxLength: 6 }) }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() })
)

const mutate = (line: Buffer, ms: ReadonlyArray<Mutation>): Buffer => {
  let b = Array.from(line)
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1)
    if (m.op === "set") b[Math.min(at, b.length - 1)] = m.byte
    else if (m.op === "insert") b.splice(at, 0, ...m.bytes)
    else if (m.op === "delete") b.splice(at, m.length)
    else b = b.slice(0, at)
  }
  return Buffer.from(b)
}

/** Parse everything in `input` item after item until EOF or failure; only DlistParseError may fail. */
const parseAllOf = (input: Uint8Array, sizes: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const reader = readerOf(input, sizes)
    for (let n = 0; n < 10_000; n++) {
      if ((yield* reader.peekByte) === EOF) return n
      const r = yield* parseItem(reader, { maxDepth: 16, maxAtom: 4096, maxLiteral: 1 << 20 })
      // What parsed must print (and print must not throw).
      printItem(r.item)
      if (r.terminator === EOF) return n + 1
    }
    return -1
  })

const expectOnlyParseErrors = (exit: Exit.Exit<number, unknown>) => {
  if (Exit.isFailure(exit)) {
    const failures = Array.from(Cause.failures(exit.cause))
    // No defects, no interruptions: exactly one typed failure.
    expect(Cause.isDie(exit.cause)).toBe(false)
    expect(failures.length).toBe(1)
    expect((failures[0] as { _tag: string })._tag).toBe("DlistParseError")
  } else {
    expect(exit.value).toBeGreaterThanOrEqual(0)
  }
}

describe("dlist parser fuzzing", () => {
  it("has real lines to mutate", () => {
    expect(realLines.length).toBeGreaterThan(50)
  })

  it.prop(
    "random bytes: success or DlistParseError, nothing else",
    [fc.uint8Array({ maxLength: 300 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 3 })],
    ([bytes, sizes]) => expectOnlyParseErrors(Effect.runSyncExit(provideFs(parseAllOf(bytes, sizes)))),
    { fastCheck: { numRuns: RUNS } }
  )

  it.prop(
    "random bytes made of grammar punctuation: success or DlistParseError",
    [fc.array(special, { maxLength: 200 }).map((a) => Uint8Array.from(a))],
    ([bytes]) => expectOnlyParseErrors(Effect.runSyncExit(provideFs(parseAllOf(bytes, [5])))),
    { fastCheck: { numRuns: RUNS } }
  )

  it.prop(
    "mutated real lines: success or DlistParseError",
    [fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 3 })],
    ([pick, ms, sizes]) => {
      const line = mutate(realLines[pick % realLines.length]!, ms)
      expectOnlyParseErrors(Effect.runSyncExit(provideFs(parseAllOf(line, sizes))))
    },
    { fastCheck: { numRuns: RUNS } }
  )

  it.effect("unmutated real lines all parse as one item ending in CR", () =>
    Effect.gen(function* () {
      for (const line of realLines) {
        const r = yield* provideFs(parseItem(ByteReader.fromBytes(line)))
        expect(r.terminator).toBe(0x0d)
      }
    })
  )

  it.effect("a session-like loop resynchronises after errors by skipping to LF", () =>
    Effect.gen(function* () {
      // Garbage lines between good ones: every good line is still found.
      const good = realLines.slice(0, 20)
      const input = Buffer.concat(good.flatMap((l) => [Buffer.from("X K %bad\r\n"), Buffer.from("APPLY "), l]))
      const reader = readerOf(input, [13])
      const LF = byteClass(0x0a)
      let ok = 0
      for (;;) {
        const w = yield* reader.readToken(WORD_STOP, 100)
        if (w.terminator === EOF) break
        const r = yield* Effect.either(provideFs(parseItem(reader)))
        if (r._tag === "Right") {
          ok++
          expect(yield* reader.readByte).toBe(0x0a)
        } else {
          expect(r.left._tag).toBe("DlistParseError")
          yield* reader.readToken(LF, 1 << 20)
        }
      }
      expect(ok).toBe(good.length)
    })
  )
})
