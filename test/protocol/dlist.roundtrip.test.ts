/**
 * Property tests of the printer/parser pair (docs/architecture.md, "dlist").
 *
 * Canonical form (what a value re-parses as once printed), `canonical` below:
 * - strings are C strings except in Buf: Atom/Flag values and keys end at their first NUL;
 * - a Buf holding a NUL stays a Buf (printed as a literal);
 * - any other string (Atom or Buf) becomes whatever its printed form parses as: an Atom
 *   when printed as an atom or quoted string, a Buf when printed as a literal;
 * - Num becomes the Atom of its unsigned 64-bit decimal digits; Nil and Flag stay.
 *
 * Parsing without file literals is synchronous, so the properties run under `it.prop`
 * with `Effect.runSync` (`it.effect.prop` builds a test runtime per case: ten times slower).
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { Effect, FastCheck as fc } from "effect"
import { astring, cString, isAtom, isQuotable } from "../../src/protocol/dlist/astring.js"
import { printItem, printValueString } from "../../src/protocol/dlist/print.js"
import { type Dlist, type Item, atom, buf, filesOf, flag, kvlist, list, nil, num } from "../../src/protocol/dlist/value.js"
import { parseBytes, reprintFromInput } from "./dlistSupport.js"

const RUNS = 1000

// ---- arbitraries ---------------------------------------------------------------------------

/** Bytes biased towards the interesting ones: atom chars, specials, controls, 8-bit, NUL. */
const byteArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) },
  { weight: 2, arbitrary: fc.constantFrom(0x00, 0x09, 0x0a, 0x0d, 0x1e, 0x1f, 0x20, 0x22, 0x25, 0x28, 0x29, 0x2a, 0x5c, 0x7b, 0x7f) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) }
)
const str = (maxLength: number) =>
  fc.array(byteArb, { maxLength }).map((a) => String.fromCharCode(...a))
/** Some strings long enough to cross the 1024-byte quoted/atom limit. */
const anyString = fc.oneof(
  { weight: 10, arbitrary: str(12) },
  { weight: 1, arbitrary: fc.constantFrom("NIL", "nil", "", "\x1f", "a".repeat(1023), "a".repeat(1024), "a b".repeat(400)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1000, max: 1100 }), byteArb).map(([n, c]) => "x".repeat(n) + String.fromCharCode(c)) }
)
/** Flags: a backslash and bytes that do not end an atom (flags print raw). */
const flagArb = fc
  .array(byteArb.filter((c) => c !== 0 && c !== 0x09 && c !== 0x0a && c !== 0x0b && c !== 0x0c && c !== 0x0d && c !== 0x20 && c !== 0x28 && c !== 0x29 && c !== 0x22), { maxLength: 10 })
  .map((a) => "\\" + String.fromCharCode(...a))

const { value: valueArb } = fc.letrec<{ value: Dlist }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(nil),
    anyString.map(atom),
    anyString.map(buf),
    flagArb.map(flag),
    fc.bigInt({ min: -(1n << 64n), max: (1n << 64n) - 1n }).map(num),
    fc.array(tie("value"), { maxLength: 5 }).map(list),
    fc.array(fc.tuple(anyString, tie("value")), { maxLength: 5 }).map(kvlist)
  )
}))
const itemArb = fc.tuple(anyString, valueArb).map(([key, value]): Item => ({ key, value }))
/** Chunk sizes for the input: tiny ones cut every token somewhere, big ones keep runs fast. */
const chunkSizesArb = fc.array(fc.oneof(fc.integer({ min: 1, max: 17 }), fc.integer({ min: 100, max: 3000 })), {
  minLength: 1,
  maxLength: 4
})

// ---- canonical form ------------------------------------------------------------------------

const canonicalString = (s: string, isBuf: boolean): Dlist => {
  if (isBuf && s.includes("\0")) return buf(s)
  const c = cString(s)
  const printedAsLiteral = c.length > 0 && !(c !== "NIL" && isAtom(c)) && !isQuotable(c)
  return printedAsLiteral ? buf(c) : atom(c)
}

const canonical = (v: Dlist): Dlist => {
  switch (v._tag) {
    case "Nil":
      return nil
    case "Atom":
      return canonicalString(v.value, false)
    case "Buf":
      return canonicalString(v.value, true)
    case "Flag":
      return flag(cString(v.value))
    case "Num":
      return atom(BigInt.asUintN(64, v.value).toString())
    case "File":
      return v
    case "List":
      return list(v.items.map(canonical))
    case "KvList":
      return kvlist(v.items.map(([k, c]) => [cString(k), canonical(c)] as const))
  }
}

const reparse = (bytes: Uint8Array, sizes: ReadonlyArray<number>) =>
  Effect.map(parseBytes(Buffer.concat([bytes, Buffer.from("\r\n")]), { maxDepth: 100 }, sizes), (r) => {
    expect(r.terminator).toBe(0x0d)
    return r.item
  })

describe("dlist round trip", () => {
  it.prop(
    "print(parse(print(v))) == print(v), whatever the chunking",
    [itemArb, chunkSizesArb],
    ([it, sizes]) => {
      const once = printItem(it)
      const again = printItem(Effect.runSync(reparse(once, sizes)))
      expect(again.toString("latin1")).toBe(once.toString("latin1"))
    },
    { fastCheck: { numRuns: RUNS } }
  )

  it.prop(
    "parse(print(v)) is the canonical form of v, which prints the same",
    [itemArb],
    ([it]) => {
      const want: Item = { key: cString(it.key), value: canonical(it.value) }
      expect(Effect.runSync(reparse(printItem(it), []))).toEqual(want)
      expect(printItem(want).equals(printItem(it))).toBe(true)
      expect(canonical(want.value)).toEqual(want.value)
    },
    { fastCheck: { numRuns: RUNS } }
  )
})

const messageArb = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }).map((a) => Buffer.from(a))

describe("dlist round trip with message files", () => {
  it.prop(
    "file literals re-print identically, hashed and located, whatever the chunking",
    [fc.array(fc.tuple(messageArb, fc.constantFrom("default", "p2", "a b", "")), { maxLength: 4 }), chunkSizesArb],
    ([messages, sizes]) => {
      const pieces: Array<Buffer> = [Buffer.from("MESSAGE (")]
      messages.forEach(([m, part], i) => {
        const guid = createHash("sha1").update(m).digest("hex")
        pieces.push(Buffer.from(`${i > 0 ? " " : ""}%{${astring(part)} ${guid} ${m.length}}\r\n`, "latin1"), m)
      })
      pieces.push(Buffer.from(")"))
      const line = Buffer.concat(pieces)
      const r = Effect.runSync(parseBytes(Buffer.concat([line, Buffer.from("\r\n")]), {}, sizes))
      expect(reprintFromInput(r.item, line).equals(line)).toBe(true)
      expect(filesOf(r.item.value).map((f) => f.partition)).toEqual(messages.map(([, p]) => p))
    },
    { fastCheck: { numRuns: 300 } }
  )
})

describe("astring rules (docs/architecture.md, dlist)", () => {
  it("chooses atom, quoted or literal like prot_printastring", () => {
    expect(astring("user.anne")).toBe("user.anne")
    expect(astring("")).toBe("\"\"")
    expect(astring("NIL")).toBe("\"NIL\"")
    expect(astring("nil")).toBe("nil")
    expect(astring("anne\tlrs\t")).toBe("\"anne\tlrs\t\"")
    expect(astring("Junk Mail")).toBe("\"Junk Mail\"")
    expect(astring("50%")).toBe("{3+}\r\n50%")
    expect(astring("caf\xe9")).toBe("{4+}\r\ncaf\xe9")
    expect(astring("a".repeat(1023))).toBe("a".repeat(1023))
    expect(astring("a".repeat(1024))).toBe("{1024+}\r\n" + "a".repeat(1024))
    expect(astring("a b".repeat(400))).toBe("{1200+}\r\n" + "a b".repeat(400))
    // 0x1F passes Cyrus's atom test, 0x1E does not (but is quotable).
    expect(astring("a\x1fb")).toBe("a\x1fb")
    expect(astring("a\x1eb")).toBe("\"a\x1eb\"")
    expect(astring("a\x7fb")).toBe("\"a\x7fb\"")
    for (const c of "{()\"%*\\ ") expect(isAtom(`a${c}`)).toBe(false)
    for (const c of "[]:,!^$@./&+-=~`'#;<>?|_") expect(isAtom(`a${c}`)).toBe(true)
    expect(astring("ab\0cd")).toBe("ab")
  })

  it("prints the node types like dlist_print", () => {
    expect(printValueString(num(18446744073709551615n))).toBe("18446744073709551615")
    expect(printValueString(num(-1n))).toBe("18446744073709551615")
    expect(printValueString(buf("a\0b"))).toBe("{3+}\r\na\0b")
    expect(printValueString(buf("hello"))).toBe("hello")
    expect(printValueString(flag("\\Seen"))).toBe("\\Seen")
    expect(printValueString(kvlist([["K", list([atom("a"), nil])], ["", atom("")]]))).toBe("%(K (a NIL) \"\" \"\")")
    expect(printItem({ key: "MESSAGE", value: list([]) }).toString()).toBe("MESSAGE ()")
    expect(
      printValueString({ _tag: "File", partition: "default", guid: "00".repeat(20), size: 1, path: "/nonexistent", sha1: "" })
    ).toBe("NIL")
  })
})
