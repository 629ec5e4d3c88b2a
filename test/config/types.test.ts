import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import {
  bitfieldFromString,
  choiceFromString,
  decodeWith,
  durationFromString,
  formatDuration,
  IntFromString,
  parseCyrusInt,
  parseDuration,
  parseSwitch,
  SwitchFromString
} from "../../src/config/optionTypes.js"

describe("switch values", () => {
  it.each([
    ["1", true],
    ["yes", true],
    ["y", true],
    ["true", true],
    ["t", true],
    ["on", true],
    ["onwards", true],
    ["0", false],
    ["no", false],
    ["nope", false],
    ["false", false],
    ["f", false],
    ["off", false],
    ["of", false]
  ] as const)("%s → %s", (text, want) => {
    expect(parseSwitch(text)).toBe(want)
    expect(Schema.decodeSync(SwitchFromString)(text)).toBe(want)
  })

  it.each(["Yes", "TRUE", "On", "o", "2", "enable", "-1", " yes"])("rejects %j (case-sensitive, first chars only)", (text) => {
    expect(parseSwitch(text)).toBeUndefined()
    expect(decodeWith(SwitchFromString, text)).toEqual(Either.left(`non-switch value "${text}"`))
  })
})

describe("int values (strtol base 0, whole string)", () => {
  it.each([
    ["0", 0],
    ["42", 42],
    ["-7", -7],
    ["+9", 9],
    ["0x10", 16],
    ["0X1f", 31],
    ["010", 8],
    ["-010", -8],
    ["000", 0],
    ["131072", 131072],
    ["2147483647", 2147483647],
    // a long that does not fit a C int is truncated like config_getint's return
    ["4294967296", 0],
    ["2147483648", -2147483648],
    // strtol clamps to LONG_MAX, whose low 32 bits are all ones
    ["99999999999999999999999", -1]
  ] as const)("%s → %d", (text, want) => {
    expect(parseCyrusInt(text)).toBe(want)
    expect(Schema.decodeSync(IntFromString)(text)).toBe(want)
  })

  it.each(["", "x", "12k", "1.5", "08", "0x", "0xg", "- 1", "--1", "1 2", "1e3", "٣"])("rejects %j", (text) => {
    expect(parseCyrusInt(text)).toBeUndefined()
    expect(Either.isLeft(decodeWith(IntFromString, text))).toBe(true)
  })
})

describe("durations", () => {
  it.each([
    ["30m", "s", 1800],
    ["1h30m", "s", 5400],
    ["1d", "s", 86400],
    ["2d3h4m5s", "s", 2 * 86400 + 3 * 3600 + 4 * 60 + 5],
    ["90", "s", 90],
    ["7", "d", 7 * 86400],
    ["1h30", "m", 5400],
    ["1h30", "s", 3630],
    ["3", "s", 3],
    ["0", "d", 0],
    ["-5m", "s", -300],
    ["-5", "d", -5 * 86400],
    ["1m1m", "s", 120],
    ["0010s", "s", 10],
    // Cyrus quirks: nothing, or a lone minus, is zero
    ["", "s", 0],
    ["-", "s", 0]
  ] as const)("%j with bare unit %s → %d s", (text, unit, want) => {
    expect(parseDuration(text, unit)).toBe(want)
    expect(Schema.decodeSync(durationFromString(unit))(text)).toBe(want)
  })

  it.each(["3x", "h", "1hh", "1h-5m", "--5", "1.5h", "5 m", "m5", "1w", " 5", "1H"])("rejects %j", (text) => {
    expect(parseDuration(text, "s")).toBeUndefined()
    expect(decodeWith(durationFromString("s"), text)).toEqual(Either.left(`invalid duration "${text}"`))
  })

  it("wraps at 32 bits like the C int it is computed in", () => {
    expect(parseDuration("24855d3h14m8s", "s")).toBe(-2147483648)
    expect(parseDuration("4294967296s", "s")).toBe(0)
  })

  it("formats canonically", () => {
    expect(formatDuration(0)).toBe("0s")
    expect(formatDuration(5400)).toBe("1h30m")
    expect(formatDuration(86401)).toBe("1d1s")
    expect(formatDuration(-300)).toBe("-5m")
  })

  it.prop("format then parse gives the same seconds", [fc.integer({ min: -2147483647, max: 2147483647 })], ([n]) => {
    expect(parseDuration(formatDuration(n), "d")).toBe(n)
    expect(Schema.encodeSync(durationFromString("s"))(n)).toBe(formatDuration(n))
  })

  it.prop(
    "a sum of parts parses to the sum",
    [fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.constantFrom("d", "h", "m", "s")), { minLength: 1, maxLength: 5 })],
    ([parts]) => {
    const text = parts.map(([n, u]) => `${n}${u}`).join("")
    const secs: Record<string, number> = { d: 86400, h: 3600, m: 60, s: 1 }
    const want = parts.reduce((acc, [n, u]) => acc + n * secs[u]!, 0)
    expect(parseDuration(text, "s")).toBe(want)
    }
  )

  it.prop("arbitrary text never throws", [fc.string({ unit: "binary", maxLength: 12 })], ([text]) => {
    const r = parseDuration(text, "s")
    expect(r === undefined || Number.isInteger(r)).toBe(true)
  })
})

describe("enum / stringlist / bitfield", () => {
  const virt = choiceFromString(["off", "userid", "on"], true)
  const db = choiceFromString(["skiplist", "sql", "twoskip", "zeroskip"], false)

  it("enum takes the listed words and the on/off spellings", () => {
    expect(Schema.decodeSync(virt)("userid")).toBe("userid")
    for (const w of ["1", "yes", "t", "true"]) expect(Schema.decodeSync(virt)(w)).toBe("on")
    for (const w of ["0", "no", "f", "false"]) expect(Schema.decodeSync(virt)(w)).toBe("off")
  })

  it("enum rejects anything else, case-sensitively", () => {
    expect(decodeWith(virt, "On")).toEqual(Either.left("invalid value 'On' (expected one of: off, userid, on)"))
    expect(Either.isLeft(decodeWith(virt, "y"))).toBe(true)
  })

  it("stringlist takes exactly one listed word, without on/off spellings", () => {
    expect(Schema.decodeSync(db)("zeroskip")).toBe("zeroskip")
    expect(Either.isLeft(decodeWith(db, "Twoskip"))).toBe(true)
    expect(Either.isLeft(decodeWith(db, "twoskip sql"))).toBe(true)
    expect(Either.isLeft(decodeWith(choiceFromString(["off", "on"], false), "yes"))).toBe(true)
  })

  it("bitfield takes several words and aliases", () => {
    const bf = bitfieldFromString(["fileinto", "imap4flags=imapflags", "snooze=vnd.cyrus.snooze=x-cyrus-snooze"])
    expect(Schema.decodeSync(bf)("x-cyrus-snooze  imapflags\tfileinto")).toEqual(["fileinto", "imap4flags", "snooze"])
    expect(Either.isLeft(decodeWith(bf, "fileinto bogus"))).toBe(true)
  })
})
