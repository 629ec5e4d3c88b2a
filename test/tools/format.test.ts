/** The C-formatting helpers, jansson-style JSON, getopt scanning and header parsing. */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { errorMessage, fixed6_1, g17, janssonReal, localTime, strncmpCode } from "../../src/tools/cFormat.js"
import { decodeGuid, headersJson, parseCyrBackupArgs } from "../../src/tools/cyrBackup.js"
import { parseCtlArgs } from "../../src/tools/ctlBackups/args.js"
import { getopt } from "../../src/tools/getopt.js"
import { JObject, JReal, jsonDump, jstring } from "../../src/tools/jansson.js"

describe("C number and time formats", () => {
  it("prints %6.1f with glibc's round-half-even on exact ties", () => {
    expect(fixed6_1(65.571214861552292)).toBe("  65.6")
    expect(fixed6_1(189.65517241379311)).toBe(" 189.7")
    expect(fixed6_1(12.25)).toBe("  12.2")
    expect(fixed6_1(12.75)).toBe("  12.8")
    expect(fixed6_1(Infinity)).toBe("   inf")
  })

  it("prints %.17g and jansson reals", () => {
    expect(g17(64.080558025029063)).toBe("64.080558025029063")
    expect(g17(110.25641025641026)).toBe("110.25641025641026")
    expect(janssonReal(100)).toBe("100.0")
    expect(janssonReal(1e20)).toBe("1e20")
    expect(janssonReal(1.5e-7)).toBe("1.4999999999999999e-7")
  })

  it.prop("%.17g round-trips", [fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e30, max: 1e30 })], ([x]) => {
    expect(Number(g17(x))).toBe(x)
  })

  it("prints local times with strftime %F %T", () => {
    const tz = process.env.TZ
    process.env.TZ = "UTC"
    try {
      expect(localTime(1795885547)).toBe("2026-11-28 17:05:47")
      expect(localTime(0)).toBe("1970-01-01 00:00:00")
    } finally {
      process.env.TZ = tz
    }
  })

  it("names error codes like com_err", () => {
    expect(errorMessage(-1)).toBe("Unknown code ____ 255")
    expect(errorMessage(-8)).toBe("Unknown code ____ 248")
    expect(errorMessage(5)).toBe("Input/output error")
    expect(strncmpCode("0000", "0088")).toBe(-8)
  })
})

describe("jansson dumps", () => {
  it("indents by two, keeps key order, escapes like jansson", () => {
    const o = new JObject().set("b", 1).set("a", [new JReal(2), "x/\u0001\"é"]).set("skip", jstring("\xff")).set("e", []).set("f", new JObject())
    expect(jsonDump(o)).toBe('{\n  "b": 1,\n  "a": [\n    2.0,\n    "x/\\u0001\\"é"\n  ],\n  "e": [],\n  "f": {}\n}')
    expect(jstring("caf\xc3\xa9")).toBe("café")
  })
})

describe("getopt", () => {
  it("permutes operands after options and takes the next word as an argument", () => {
    expect(getopt(["list", "-j", "-t", "5", "alice", "--", "-x"], ":jt:")).toEqual({
      events: [{ _tag: "Option", opt: "j" }, { _tag: "Option", opt: "t", arg: "5" }],
      operands: ["list", "alice", "-x"]
    })
    expect(getopt(["-t"], ":t:").events).toEqual([{ _tag: "MissingArgument", opt: "t" }])
    expect(getopt(["-vz"], "v").events).toEqual([{ _tag: "Option", opt: "v" }, { _tag: "Unknown", opt: "z" }])
  })

  it("applies ctl_backups's rules", () => {
    expect(parseCtlArgs(["list"])).toMatchObject({ command: "list", mode: "all" })
    expect(parseCtlArgs(["list", "-t"])).toMatchObject({ listStale: 24 })
    expect(parseCtlArgs(["-t", "list"])).toEqual({ usage: true })
    expect(parseCtlArgs(["-j", "-v", "list"])).toEqual({ usage: true })
    expect(parseCtlArgs(["-A", "lock"])).toEqual({ usage: true })
    expect(parseCtlArgs(["-s", "verify", "alice"])).toEqual({ usage: true })
    expect(parseCtlArgs(["move", "alice", "other"])).toMatchObject({ command: "move", names: ["alice", "other"] })
    expect(parseCtlArgs(["reconstruct", "x"])).toEqual({ usage: true })
  })

  it("reads metrics and health with options of their own", () => {
    expect(parseCtlArgs(["-C", "/x.conf", "metrics", "--per-user", "--textfile", "/d"])).toMatchObject({
      command: "metrics",
      altConfig: "/x.conf",
      monitor: { perUser: true, textfileDir: "/d" }
    })
    expect(parseCtlArgs(["metrics", "--textfile=/d"])).toMatchObject({ monitor: { perUser: false, textfileDir: "/d" } })
    expect(parseCtlArgs(["health", "-w", "36h", "-c2d"])).toMatchObject({ command: "health", monitor: { warn: "36h", crit: "2d" } })
    for (const bad of [["metrics", "-w", "1"], ["metrics", "--textfile"], ["health", "--per-user"], ["health", "-v"], ["metrics", "alice"], ["health", "-j"]]) {
      expect([bad, parseCtlArgs(bad)]).toEqual([bad, { usage: true }])
    }
    // elsewhere -w and -c keep their meaning (wait, create)
    expect(parseCtlArgs(["-w", "list"])).toMatchObject({ command: "list", wait: true })
    expect(parseCtlArgs(["lock", "-c", "alice"])).toMatchObject({ command: "lock", createExclusive: true })
  })

  it("applies cyr_backup's rules", () => {
    expect(parseCyrBackupArgs(["alice", "list", "all"])).toMatchObject({ mode: "userid", command: "list all" })
    expect(parseCyrBackupArgs(["alice", "list", "all", "x"])).toEqual({ usage: "" })
    expect(parseCyrBackupArgs(["alice", "dump", "chunk"])).toEqual({ usage: "" })
    expect(parseCyrBackupArgs(["-f", "-u", "a", "list", "all"])).toEqual({ usage: "" })
    expect(decodeGuid("4F2F03627CECABD1A517D16970B4CA4FBAB68BFC")).toBe("4f2f03627cecabd1a517d16970b4ca4fbab68bfc")
    expect(decodeGuid("4f2f")).toBeUndefined()
  })
})

describe("json headers", () => {
  it("groups repeated headers, unfolds, stops at the blank line", () => {
    const msg = Buffer.from("Received: a\r\n\tb\r\nReceived:  c\r\nX:\r\nbad line\r\nSubject: s\r\n\r\nBody: no\r\n", "latin1")
    expect(jsonDump(headersJson(msg))).toBe(
      '{\n  "Received": [\n    "a\\tb",\n    "c"\n  ],\n  "X": [\n    ""\n  ],\n  "Subject": [\n    "s"\n  ]\n}'
    )
  })
})
