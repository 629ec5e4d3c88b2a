import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FastCheck as fc, Stream } from "effect"
import { ByteReader, EOF, WORD_STOP } from "../../src/protocol/ByteReader.js"
import { readerOf } from "./dlistSupport.js"

const bytes = (s: string) => Buffer.from(s, "latin1")

describe("ByteReader", () => {
  it.effect("reads words like getword, across chunk boundaries", () =>
    Effect.gen(function* () {
      const r = readerOf(bytes("APPLY MESSAGE(x)\r\nEXIT"), [1, 2, 3])
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "APPLY", terminator: 0x20 })
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "MESSAGE", terminator: 0x28 })
      expect(r.position).toBe(14)
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "x", terminator: 0x29 })
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "", terminator: 0x0d })
      expect(yield* r.readByte).toBe(0x0a)
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "EXIT", terminator: EOF })
      expect(yield* r.peekByte).toBe(EOF)
      expect(yield* r.readByte).toBe(EOF)
      expect(r.position).toBe(22)
      expect(r.atEof).toBe(true)
    })
  )

  it.effect("a token over the limit fails with TokenTooLong", () =>
    Effect.gen(function* () {
      const r = readerOf(bytes("x".repeat(50) + " y"), [7])
      const e = yield* Effect.flip(r.readToken(WORD_STOP, 49))
      expect(e._tag).toBe("TokenTooLong")
      const ok = readerOf(bytes("x".repeat(50) + " y"), [7])
      expect((yield* ok.readToken(WORD_STOP, 50)).token.length).toBe(50)
    })
  )

  it.effect("readExactly and readInto take exact counts; EOF is UnexpectedEof", () =>
    Effect.gen(function* () {
      const r = readerOf(bytes("0123456789abcdef"), [3])
      expect((yield* r.readExactly(5)).toString()).toBe("01234")
      const seen: Array<string> = []
      yield* r.readInto(8, (c) => Effect.sync(() => void seen.push(Buffer.from(c).toString())))
      expect(seen.join("")).toBe("56789abc")
      expect(seen.length).toBeGreaterThan(1)
      expect(r.position).toBe(13)
      const e = yield* Effect.flip(r.readInto(10, () => Effect.void))
      expect(e._tag).toBe("UnexpectedEof")
      const e2 = yield* Effect.flip(readerOf(bytes("abc")).readExactly(4))
      expect(e2._tag).toBe("UnexpectedEof")
    })
  )

  it.effect("takeBuffered + switchSource hand the rest of the input to a new layer", () =>
    Effect.gen(function* () {
      // Pretend "COMPRESS DEFLATE\r\n" is followed by bytes that must go through a new layer.
      const r = readerOf(bytes("COMPRESS DEFLATE\r\nABCDEF"), [100])
      expect((yield* r.readToken(WORD_STOP, 100)).token).toBe("COMPRESS")
      expect((yield* r.readToken(WORD_STOP, 100)).token).toBe("DEFLATE")
      expect(yield* r.readByte).toBe(0x0a)
      const rest = r.takeBuffered()
      expect(Buffer.from(rest).toString()).toBe("ABCDEF")
      expect(r.buffered).toBe(0)
      // The "new layer" lower-cases what it is given.
      let given = false
      r.switchSource(
        Effect.sync(() => {
          if (given) return null
          given = true
          return bytes(Buffer.from(rest).toString().toLowerCase() + " tail")
        })
      )
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "abcdef", terminator: 0x20 })
      expect(yield* r.readToken(WORD_STOP, 100)).toEqual({ token: "tail", terminator: EOF })
    })
  )

  it.effect("fromStream reads a Stream; a stream failure is a ByteSourceError", () =>
    Effect.gen(function* () {
      const ok = yield* ByteReader.fromStream(Stream.make(bytes("ab"), bytes(""), bytes("c d")))
      expect((yield* ok.readToken(WORD_STOP, 10)).token).toBe("abc")
      expect((yield* ok.readToken(WORD_STOP, 10)).token).toBe("d")
      const bad = yield* ByteReader.fromStream(Stream.concat(Stream.make(bytes("ab")), Stream.fail("boom")))
      const e = yield* Effect.flip(bad.readToken(WORD_STOP, 10))
      expect(e).toMatchObject({ _tag: "ByteSourceError", cause: "boom" })
    }).pipe(Effect.scoped)
  )

  it.prop(
    "words read the same whatever the chunking",
    [fc.array(fc.constantFrom("a", "b", " ", "\r\n", "(", "\"", "xyz"), { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 })],
    ([pieces, sizes]) => {
      const input = bytes(pieces.join(""))
      const run = (r: ByteReader) =>
        Effect.gen(function* () {
          const out: Array<string> = []
          for (;;) {
            const t = yield* r.readToken(WORD_STOP, 1000)
            out.push(`${t.token}/${t.terminator}`)
            if (t.terminator === EOF) return out
          }
        })
      const a = Effect.runSyncExit(run(readerOf(input)))
      const b = Effect.runSyncExit(run(readerOf(input, sizes)))
      expect(Exit.isSuccess(a) && Exit.isSuccess(b)).toBe(true)
      expect(b).toEqual(a)
    },
    { fastCheck: { numRuns: 300 } }
  )
})
