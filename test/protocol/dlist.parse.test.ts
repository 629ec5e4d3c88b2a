/** The parser's grammar, case by case (docs/architecture.md, "dlist"). */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { type ByteReader, EOF } from "../../src/protocol/ByteReader.js"
import { stagingPath } from "../../src/protocol/dlist/fileSinks.js"
import { parseItem, parseValue, type ParseOptions } from "../../src/protocol/dlist/parse.js"
import { atom, buf, flag, kvlist, list, nil } from "../../src/protocol/dlist/value.js"
import { FsLive, parseBytes, readerOf } from "./dlistSupport.js"

const b = (s: string) => Buffer.from(s, "latin1")
const sha1 = (s: string) => createHash("sha1").update(b(s)).digest("hex")

/** Parse with every chunking from whole to 1-byte pieces; all must agree. */
const parse = (s: string, options?: ParseOptions) =>
  Effect.gen(function* () {
    const whole = yield* Effect.either(parseBytes(b(s), options))
    for (const sizes of [[1], [2], [3, 1, 5]]) {
      const cut = yield* Effect.either(parseBytes(b(s), options, sizes))
      expect(cut).toEqual(whole)
    }
    return yield* whole
  })

const failure = (s: string, options?: ParseOptions) =>
  Effect.flip(parseBytes(b(s), options)).pipe(Effect.map((e) => (e._tag === "DlistParseError" ? e.reason : e._tag)))

describe("dlist parser: values", () => {
  it.effect("atoms, NIL, quoted strings, flags", () =>
    Effect.gen(function* () {
      expect(yield* parse("USER anne\r\n")).toEqual({ item: { key: "USER", value: atom("anne") }, terminator: 0x0d })
      expect((yield* parse("X NIL")).item.value).toEqual(nil)
      expect((yield* parse("X NIL")).terminator).toBe(EOF)
      expect((yield* parse("X nil ")).item.value).toEqual(atom("nil"))
      expect((yield* parse("X \"NIL\"\n")).item.value).toEqual(atom("NIL"))
      expect((yield* parse("X \"a\\\"b\\\\c\\d\"x")).item.value).toEqual(atom("a\"b\\cd"))
      expect((yield* parse("X \"a\\\"b\\\\c\\d\"x")).terminator).toBe(0x78)
      expect((yield* parse("X \\Seen)")).item.value).toEqual(flag("\\Seen"))
      expect((yield* parse("X \\Seen)")).terminator).toBe(0x29)
      expect((yield* parse("X a%b*c{d\\e[f]\xe9 ")).item.value).toEqual(atom("a%b*c{d\\e[f]\xe9"))
      expect((yield* parse("X \"\" ")).item.value).toEqual(atom(""))
    })
  )

  it.effect("literals: {n} and {n+}, binary allowed, re-parsed as Buf", () =>
    Effect.gen(function* () {
      expect(yield* parse("X {5+}\r\nhello ")).toEqual({ item: { key: "X", value: buf("hello") }, terminator: 0x20 })
      expect((yield* parse("X {5}\r\nhe\0lo\r\n")).item.value).toEqual(buf("he\0lo"))
      expect((yield* parse("X {0+}\r\n)")).item.value).toEqual(buf(""))
      expect((yield* parse("{3+}\r\nK\xffY {1+}\r\n\n")).item).toEqual({ key: "K\xffY", value: buf("\n") })
    })
  )

  it.effect("lists and kvlists, empty ones, any whitespace (CR/LF included) between items", () =>
    Effect.gen(function* () {
      expect((yield* parse("X (a b (c) %(K v L ()))\r\n")).item.value).toEqual(
        list([atom("a"), atom("b"), list([atom("c")]), kvlist([["K", atom("v")], ["L", list([])]])])
      )
      expect((yield* parse("X %()\r\n")).item.value).toEqual(kvlist([]))
      expect((yield* parse("X ( \t a\r\n\r\n b )x")).item.value).toEqual(list([atom("a"), atom("b")]))
      expect((yield* parse("X\r\n (a)x")).item.value).toEqual(list([atom("a")]))
      // An atom ends at `(`, `)` and `"`, so these run together.
      expect((yield* parse("X(a\"b\"(c))")).item.value).toEqual(list([atom("a"), atom("b"), list([atom("c")])]))
      expect((yield* parse("X %(\"\" {1+}\r\nv NIL NIL)")).item.value).toEqual(kvlist([["", buf("v")], ["NIL", nil]]))
    })
  )

  it.effect("strings other than literal values end at a NUL byte, as Cyrus's C strings do", () =>
    Effect.gen(function* () {
      expect((yield* parse("X \"ab\0cd\"")).item.value).toEqual(atom("ab"))
      expect((yield* parse("X ab\0cd ")).item.value).toEqual(atom("ab"))
      expect((yield* parse("K\0Y v")).item.key).toBe("K")
      expect(yield* failure("{3+}\r\nK\0Y v")).toBe("NUL in literal")
    })
  )

  it.effect("an unkeyed value reads its first byte as is", () =>
    Effect.gen(function* () {
      const pv = (s: string) => parseValue(readerOf(b(s))).pipe(Effect.provide(FsLive))
      expect(yield* pv("(a b)\r\n")).toEqual({ value: list([atom("a"), atom("b")]), terminator: 0x0d })
      // getxstring treats TAB as the end of an empty atom.
      expect(yield* pv("\tx")).toEqual({ value: atom(""), terminator: 0x09 })
      expect((yield* Effect.flip(pv(" x")))._tag).toBe("DlistParseError")
    })
  )
})

describe("dlist parser: failures", () => {
  it.effect("malformed input gives a DlistParseError with a short reason", () =>
    Effect.gen(function* () {
      expect(yield* failure("X %x")).toBe("bad % form")
      expect(yield* failure("X \"abc")).toBe("unexpected EOF")
      expect(yield* failure("X \"a\rb\"")).toBe("bad quoted string")
      expect(yield* failure("X )")).toBe("unexpected byte")
      expect(yield* failure("X (a b")).toBe("unexpected EOF")
      expect(yield* failure("X %(K)")).toBe("unexpected byte")
      expect(yield* failure("X")).toBe("unexpected EOF")
      expect(yield* failure("X \r\n")).toBe("unexpected EOF")
      expect(yield* failure("X {3+}\nabc")).toBe("bad literal")
      expect(yield* failure("X {x}\r\n")).toBe("bad literal")
      expect(yield* failure("X {5+}\r\nabc")).toBe("unexpected EOF")
      expect(yield* failure("X {99999999999+}\r\n")).toBe("literal too large")
      expect(yield* failure("X {5000+}\r\n" + "a".repeat(5000), { literalMinus: true })).toBe("literal too large for LITERAL-")
      expect(yield* failure("X \xffa")).toBe("unexpected byte 0xFF")
      expect(yield* failure("X (a \xff)")).toBe("unexpected byte 0xFF")
      expect(yield* failure("X " + "(".repeat(65) + ")".repeat(65))).toBe("nesting too deep")
      expect((yield* parse("X " + "(".repeat(64) + ")".repeat(64))).terminator).toBe(EOF)
      expect(yield* failure("X \"" + "q".repeat(131073) + "\"")).toBe("quoted string too long")
      expect((yield* parse("X \"" + "q".repeat(131072) + "\"")).terminator).toBe(EOF)
      expect(yield* failure("X " + "a".repeat(101), { maxAtom: 100 })).toBe("atom too long")
    })
  )

  it.effect("a literal over maxLiteral is consumed before failing, so the stream stays in step", () =>
    Effect.gen(function* () {
      const reader = readerOf(b("X {20+}\r\n" + "z".repeat(20) + "\r\nNEXT"), [4])
      const e = yield* Effect.flip(parseItemOn(reader, { maxLiteral: 10 }))
      expect(e).toMatchObject({ _tag: "DlistParseError", reason: "literal too large" })
      expect(reader.position).toBe(29)
    })
  )
})

const parseItemOn = (reader: ByteReader, options?: ParseOptions) => parseItem(reader, options).pipe(Effect.provide(FsLive))

describe("dlist parser: file literals", () => {
  const msg = "Subject: hi\r\n\r\nbody\r\n"
  const guid = sha1(msg)

  it.effect("Discard mode hashes and records the offset of the first message byte", () =>
    Effect.gen(function* () {
      const input = `MESSAGE (%{default ${guid} ${msg.length}}\r\n${msg} %{p ${guid.toUpperCase()} 0}\n)\r\n`
      const r = yield* parse(input)
      const [f, g] = (r.item.value as { items: ReadonlyArray<unknown> }).items as ReadonlyArray<Record<string, unknown>>
      expect(f).toEqual({ _tag: "File", partition: "default", guid, size: msg.length, path: "", sha1: guid, offset: input.indexOf("Subject") })
      expect(g).toMatchObject({ partition: "p", guid, size: 0, sha1: sha1("") })
      expect(r.terminator).toBe(0x0d)
    })
  )

  it.effect("Stage mode writes <dir>/sync./<pid>/<guid>, replacing an existing file", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(path.join(tmpdir(), "dlist-stage-"))
      try {
        const target = stagingPath(dir, guid, 4242)
        mkdirSync(path.dirname(target), { recursive: true })
        writeFileSync(target, "stale stale stale stale stale stale")
        const r = yield* parse(`MESSAGE (%{default ${guid} ${msg.length}}\r\n${msg})`, {
          files: { _tag: "Stage", stagingDir: dir, pid: 4242 }
        })
        expect(target).toBe(path.join(dir, "sync.", "4242", guid))
        expect(readFileSync(target, "latin1")).toBe(msg)
        expect((r.item.value as { items: ReadonlyArray<unknown> }).items[0]).toMatchObject({ path: target, sha1: guid })
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  )

  it.effect("files staged by a parse that fails later are removed", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(path.join(tmpdir(), "dlist-stage-"))
      try {
        const e = yield* failure(`MESSAGE (%{default ${guid} ${msg.length}}\r\n${msg} %x)`, {
          files: { _tag: "Stage", stagingDir: dir, pid: 1 }
        })
        expect(e).toBe("bad % form")
        expect(existsSync(stagingPath(dir, guid, 1))).toBe(false)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  )

  it.effect("a staging failure still reads the whole line (later literals too), then fails with StagingFailed", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(path.join(tmpdir(), "dlist-stage-"))
      try {
        writeFileSync(path.join(dir, "sync."), "a file where a directory should be")
        // The second literal looks like commands: it must be read as data, never as a line.
        const second = "APPLY UNMAILBOX user.x\r\nGET USER x\r\n"
        const guid2 = createHash("sha1").update(second).digest("hex")
        const input = `MESSAGE (%{default ${guid} ${msg.length}}\r\n${msg} %{default ${guid2} ${second.length}}\r\n${second})\r\nNEXT`
        const reader = readerOf(b(input), [5])
        const e = yield* Effect.flip(parseItemOn(reader, { files: { _tag: "Stage", stagingDir: dir } }))
        expect(e).toMatchObject({ _tag: "StagingFailed", terminator: 0x0d })
        expect((e as { path: string }).path.startsWith(dir)).toBe(true)
        expect(reader.position).toBe(input.indexOf(")\r\nNEXT") + 2)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  )

  it.effect("bad GUIDs are refused after their bytes are consumed; other header errors", () =>
    Effect.gen(function* () {
      for (const g of [guid.slice(1), guid + "0", guid + "00", "g" + guid.slice(1), ""]) {
        const input = `M (%{default ${g} 3}\r\nabc)\r\nNEXT`
        const reader = readerOf(b(input))
        const e = yield* Effect.flip(parseItemOn(reader))
        expect(e).toMatchObject({ reason: g === "" ? "unexpected byte" : "bad GUID" })
        if (g !== "") expect(reader.position).toBe(input.indexOf("abc") + 3)
      }
      expect(yield* failure(`M %{default  ${guid} 3}\r\nabc`)).toBe("unexpected byte")
      expect(yield* failure(`M %{default\t${guid} 3}\r\nabc`)).toBe("bad file literal")
      expect(yield* failure(`M %{default ${guid} 3+}\r\nabc`)).toBe("bad file literal")
      expect(yield* failure(`M %{default ${guid} }\r\nabc`)).toBe("bad file literal")
      expect(yield* failure(`M %{default ${guid} 3}\rabc`)).toBe("bad file literal")
      expect(yield* failure(`M %{default ${guid} 3}\r\nab`)).toBe("unexpected EOF")
      expect(yield* failure(`M %{default ${guid} 4294967296}\r\nab`)).toBe("file too large")
    })
  )
})
