import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { decode64, encode64 } from "../../src/auth/base64.js"
import { authUnixCanonify, canonicalizeUser } from "../../src/auth/canonicalUser.js"
import { testSettings } from "./support.js"

describe("decode64 (libsasl rules)", () => {
  it.prop("round-trips any bytes encoded with padding", [fc.uint8Array({ maxLength: 300 })], ([bytes]) => {
    const s = Buffer.from(bytes).toString("latin1")
    expect(decode64(encode64(s))).toEqual({ _tag: "Decoded", bytes: s })
  })

  it("classifies malformed input like sasl_decode64", () => {
    expect(decode64("")).toEqual({ _tag: "Decoded", bytes: "" })
    expect(decode64("YWJj")).toEqual({ _tag: "Decoded", bytes: "abc" })
    expect(decode64("YWJjZA")).toEqual({ _tag: "Incomplete", bytes: "abc" })
    expect(decode64("YW=j")).toEqual({ _tag: "Invalid", result: "BADPROT" })
    expect(decode64("YQ==YQ==")).toEqual({ _tag: "Invalid", result: "BADPROT" })
    expect(decode64("YQ==Y")).toEqual({ _tag: "Invalid", result: "BADPROT" })
    expect(decode64("YWJj ")).toEqual({ _tag: "Incomplete", bytes: "abc" })
    expect(decode64("YW j")).toEqual({ _tag: "Invalid", result: "BADPROT" })
    expect(decode64("YW ")).toEqual({ _tag: "Incomplete", bytes: "" })
    expect(decode64("YW jZA==")).toEqual({ _tag: "Invalid", result: "BADPROT" })
    expect(decode64("\rYWJj")).toEqual({ _tag: "Invalid", result: "FAIL" })
    expect(decode64("YWJj", 3)).toEqual({ _tag: "Invalid", result: "BUFOVER" })
  })
})

describe("user canonicalisation", () => {
  const s = testSettings()
  it("auth_unix character set, lower-casing and length", () => {
    expect(authUnixCanonify("Bob.Smith-1", true)).toBe("bob.smith-1")
    expect(authUnixCanonify("Bob", false)).toBe("Bob")
    for (const bad of ["a%b", "a&b", "a*b", "a/b", "a:b", "a?b", "a\x7fb", "a\tb", "caf\xe9", "group:mail"]) {
      expect(authUnixCanonify(bad, true)).toBeUndefined()
    }
    expect(authUnixCanonify("x".repeat(80), true)).toBe("x".repeat(80))
    expect(authUnixCanonify("x".repeat(81), true)).toBeUndefined()
  })

  it("special ids, whitespace trimming, errors", () => {
    expect(canonicalizeUser(s, "AnyBody")).toEqual({ _tag: "Ok", id: "anyone" })
    expect(canonicalizeUser(s, "ANONYMOUS")).toEqual({ _tag: "Ok", id: "anonymous" })
    expect(canonicalizeUser(s, "  Admin ")).toEqual({ _tag: "Ok", id: "admin" })
    expect(canonicalizeUser(s, "admin\0junk")).toEqual({ _tag: "Ok", id: "admin" })
    expect(canonicalizeUser(s, "   ")).toMatchObject({ _tag: "Err", failure: { result: "FAIL" } })
    expect(canonicalizeUser(s, "a%b")).toMatchObject({ _tag: "Err", failure: { result: "BADAUTH" } })
    expect(canonicalizeUser(s, "x".repeat(1024))).toMatchObject({ _tag: "Err", failure: { result: "BUFOVER" } })
  })

  it("virtdomains on: the local domain is appended unless it is the default one", () => {
    const on = testSettings({ virtdomains: "on", defaultDomain: "main.org" })
    expect(canonicalizeUser(on, "bob", { localDomain: "other.org" })).toEqual({ _tag: "Ok", id: "bob@other.org" })
    expect(canonicalizeUser(on, "bob", { localDomain: "MAIN.org" })).toEqual({ _tag: "Ok", id: "bob" })
    expect(canonicalizeUser(on, "bob")).toEqual({ _tag: "Ok", id: "bob" })
    const userid = testSettings({ virtdomains: "userid" })
    expect(canonicalizeUser(userid, "bob", { localDomain: "other.org" })).toEqual({ _tag: "Ok", id: "bob" })
  })
})
