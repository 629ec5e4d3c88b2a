import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc } from "effect"
import { ConfigError } from "../../src/config/ConfigError.js"
import { logicalLines } from "../../src/config/imapdConf.js"
import { BASE, failLine, fails, ok, parse } from "./support.js"

describe("lines", () => {
  it("splits, joins `\\` continuations and numbers by the last physical line", () => {
    expect(logicalLines("a: 1\nb: 2\\\n 3\\\n4\nc: 5")).toEqual([
      { text: "a: 1", line: 1 },
      { text: "b: 2 34", line: 4 },
      { text: "c: 5", line: 5 }
    ])
  })

  it("drops a continuation cut off by end of file, keeps a last line without newline", () => {
    expect(logicalLines("a: 1\nb: 2\\\n")).toEqual([{ text: "a: 1", line: 1 }])
    expect(logicalLines("a: 1\\")).toEqual([{ text: "a: 1\\", line: 1 }])
  })

  it("stops a line at a NUL byte, which also ends any continuation", () => {
    expect(logicalLines("a: x\0y\\\nb: 2\n")).toEqual([
      { text: "a: x", line: 1 },
      { text: "b: 2", line: 2 }
    ])
  })

  it("ignores comments, blank lines and leading whitespace; trims values", () => {
    const c = ok(`# comment\n\n   \t\n  ${BASE}\t  # indented comment\nservername:   host.example  \t\r\n`)
    expect(c.configDirectory).toBe("/var/lib/cyrus")
    expect(c.serverName).toBe("host.example")
  })

  it("keeps whitespace inside values and bytes above 127 as they are", () => {
    const c = ok(`${BASE}admins: a  b\tc\nsasl_x: caf\xe9\n`)
    expect(c.admins).toBe("a  b\tc")
    expect(c.overflow("sasl_x")).toBe("caf\xe9")
  })

  it("lower-cases keys and accepts - and _", () => {
    const c = ok(`ConfigDirectory: /d\nBackupPartition-Main: /p\nSASL_Mech_List: PLAIN\n`)
    expect(c.configDirectory).toBe("/d")
    expect(c.partitions.get("main")).toBe("/p")
    expect(c.overflow("sasl_mech_list")).toBe("PLAIN")
  })

  it("a continued value is one line with nothing inserted", () => {
    const c = ok(`${BASE}admins: alice \\\nbob\\\n carol\n`)
    expect(c.admins).toBe("alice bob carol")
  })
})

describe("syntax errors name the file and line", () => {
  it("key not followed by a colon", () => {
    expect(failLine(`${BASE}servername = x\n`)).toBe("imapd.conf: /etc/imapd.conf line 2: invalid option name")
    expect(failLine(`${BASE}server name: x\n`)).toBe("imapd.conf: /etc/imapd.conf line 2: invalid option name")
    expect(failLine(`${BASE}servernamé: x\n`)).toBe("imapd.conf: /etc/imapd.conf line 2: invalid option name")
    expect(failLine(`${BASE}servername :x\n`)).toBe("imapd.conf: /etc/imapd.conf line 2: invalid option name")
  })

  it("empty value", () => {
    expect(failLine(`${BASE}\n\nservername:   \n`)).toBe(
      "imapd.conf: /etc/imapd.conf line 4: option 'servername': empty option value"
    )
    const e = fails(`${BASE}admins:\n`)
    expect(e).toBeInstanceOf(ConfigError)
    expect({ reason: e.reason, file: e.file, line: e.line, option: e.option }).toEqual({
      reason: "syntax",
      file: "/etc/imapd.conf",
      line: 2,
      option: "admins"
    })
  })

  it("unknown directive", () => {
    expect(failLine(`${BASE}@import: x\n`)).toBe("imapd.conf: /etc/imapd.conf line 2: invalid directive '@import'")
  })

  it("counts continued lines when numbering", () => {
    expect(failLine(`${BASE}admins: a\\\nb\\\nc\nbad\n`)).toBe("imapd.conf: /etc/imapd.conf line 5: invalid option name")
  })

  it("an empty key is an overflow key, like Cyrus's", () => {
    expect(ok(`${BASE}: value\n`).overflow("")).toBe("value")
  })
})

describe("duplicates and service-specific options", () => {
  it("the same option twice is an error", () => {
    expect(failLine(`${BASE}admins: a\nadmins: b\n`)).toBe(
      "imapd.conf: /etc/imapd.conf line 3: option 'admins': specified twice in config file"
    )
    expect(failLine(`configdirectory: /a\nConfigDirectory: /b\n`)).toContain("line 2: option 'configdirectory': specified twice")
  })

  it("the same overflow key twice is an error too", () => {
    expect(failLine(`${BASE}sasl_a: 1\nSASL_A: 2\n`)).toBe(
      "imapd.conf: /etc/imapd.conf line 3: option 'sasl_a': specified twice in config file"
    )
  })

  it("<service>_<option> overrides the generic option, in either order", () => {
    expect(ok(`${BASE}sync_timeout: 5m\nbackupd_sync_timeout: 10m\n`).syncTimeout).toBe(600)
    expect(ok(`${BASE}backupd_sync_timeout: 10m\nsync_timeout: 5m\n`).syncTimeout).toBe(600)
  })

  it("a generic option after the service-specific one is ignored without being checked", () => {
    expect(ok(`${BASE}backupd_sync_timeout: 10m\nsync_timeout: junk\n`).syncTimeout).toBe(600)
  })

  it("service-specific twice is an error", () => {
    expect(failLine(`${BASE}backupd_admins: a\nbackupd_admins: b\n`)).toBe(
      "imapd.conf: /etc/imapd.conf line 3: option 'backupd_admins': specified twice in config file"
    )
  })

  it("another service's options are just overflow", () => {
    const c = ok(`${BASE}imapd_admins: x\nadmins: y\n`)
    expect(c.admins).toBe("y")
    expect(c.overflowEntries.get("imapd_admins")).toBe("x")
  })

  it("the prefix matches the service name case-insensitively", () => {
    expect(ok(`${BASE}BackupD_admins: x\n`).admins).toBe("x")
    expect(ok(`${BASE}backupd_admins: x\n`, { service: "BACKUPD" }).admins).toBe("x")
  })

  it("overflow lookups try <service>_<key> first", () => {
    const c = ok(`${BASE}sasl_pwcheck_method: auxprop\nbackupd_sasl_pwcheck_method: saslauthd\nsasl_mech_list: PLAIN\n`)
    expect(c.overflow("sasl_pwcheck_method")).toBe("saslauthd")
    expect(c.overflow("sasl_mech_list")).toBe("PLAIN")
    expect(c.overflow("sasl_nothing")).toBeUndefined()
    const other = ok(`${BASE}sasl_pwcheck_method: auxprop\nbackupd_sasl_pwcheck_method: saslauthd\n`, { service: "imapd" })
    expect(other.overflow("sasl_pwcheck_method")).toBe("auxprop")
  })

  it("the service comes from $CYRUS_SERVICE unless told otherwise", () => {
    const text = `${BASE}admins: generic\nbackup2_admins: special\n`
    expect(ok(text, { env: { CYRUS_SERVICE: "backup2" } }).admins).toBe("special")
    expect(ok(text, { env: { CYRUS_SERVICE: "backup2" } }).service).toBe("backup2")
    expect(ok(text, { env: { CYRUS_SERVICE: "backup2" }, serviceFromEnv: false }).admins).toBe("generic")
  })
})

describe("@include", () => {
  it("reads the named file in place, as given", () => {
    const c = ok(`${BASE}@include: /etc/cyrus/sasl.conf\nadmins: a\n`, {
      files: { "/etc/cyrus/sasl.conf": "sasl_mech_list: PLAIN\nservername: inc\n" }
    })
    expect(c.overflow("sasl_mech_list")).toBe("PLAIN")
    expect(c.serverName).toBe("inc")
    expect(c.files).toEqual(["/etc/imapd.conf", "/etc/cyrus/sasl.conf"])
  })

  it("nested includes work; duplicates across files are errors located in the included file", () => {
    const files = { "/a.conf": "@include: /b.conf\n", "/b.conf": "\nadmins: x\n" }
    expect(ok(`${BASE}@INCLUDE: /a.conf\n`, { files }).admins).toBe("x")
    expect(failLine(`${BASE}admins: y\n@include: /a.conf\n`, { files })).toBe(
      "imapd.conf: /b.conf line 2: option 'admins': specified twice in config file"
    )
  })

  it("recursion is detected", () => {
    const files = { "/a.conf": "@include: /b.conf\n", "/b.conf": "@include: /a.conf\n" }
    expect(failLine(`${BASE}@include: /a.conf\n`, { files })).toBe(
      "imapd.conf: /b.conf line 1: configuration file /a.conf included twice"
    )
    expect(failLine(`${BASE}@include: /etc/imapd.conf\n`)).toBe(
      "imapd.conf: /etc/imapd.conf line 2: configuration file /etc/imapd.conf included twice"
    )
  })

  it("including a file twice is an error even without recursion (as in Cyrus)", () => {
    const files = { "/a.conf": "sasl_x: 1\n" }
    expect(failLine(`${BASE}@include: /a.conf\n@include: /a.conf\n`, { files })).toContain("included twice")
  })

  it("a missing include names the including line", () => {
    expect(failLine(`${BASE}@include: /nope.conf\n`)).toBe(
      "imapd.conf: /etc/imapd.conf line 2: can't open configuration file /nope.conf: No such file or directory"
    )
  })
})

describe("configdirectory", () => {
  it("is required", () => {
    const e = fails("servername: x\n")
    expect(e.reason).toBe("missing")
    expect(e.message).toBe("imapd.conf: /etc/imapd.conf: configdirectory option not specified in configuration file")
  })

  it("prefixes string options starting with {configdirectory}, case-insensitively", () => {
    const c = ok(
      `configdirectory: /var/lib/cyrus\nbackup_db_path: {configdirectory}/bk.db\ntemp_path: {ConfigDirectory}/tmp\ndebug_command: x{configdirectory}\n`
    )
    expect(c.backupDbPath).toBe("/var/lib/cyrus/bk.db")
    expect(c.tempPath).toBe("/var/lib/cyrus/tmp")
    expect(c.backupStagingPath).toBe("/var/lib/cyrus/tmp/backup")
    expect(c.debugCommand).toBe("x{configdirectory}")
    // defaults too
    expect(c.optionText("lmtpsocket")).toBe("/var/lib/cyrus/socket/lmtp")
  })

  it("leaves overflow strings alone (Cyrus does not substitute them)", () => {
    const c = ok(`${BASE}backuppartition-default: {configdirectory}/backup\n`)
    expect(c.partitions.get("default")).toBe("{configdirectory}/backup")
  })
})

describe("value errors name the option", () => {
  it.each([
    ["sync_timeout: 3x", `option 'sync_timeout': invalid duration "3x"`],
    ["backupd_sync_timeout: 1y", `option 'backupd_sync_timeout': invalid duration "1y"`],
    ["maxword: 12k", `option 'maxword': non-integer value "12k"`],
    ["allowplaintext: maybe", `option 'allowplaintext': non-switch value "maybe"`],
    ["virtdomains: sometimes", `option 'virtdomains': invalid value 'sometimes' (expected one of: off, userid, on)`],
    ["backup_db: berkeley", `option 'backup_db': invalid value 'berkeley' (expected one of: skiplist, sql, twoskip, zeroskip)`],
    ["defaultpartition: my-part", `option 'defaultpartition': defaultpartition option contains non-alphanumeric character`]
  ])("%s", (line, want) => {
    expect(failLine(`${BASE}\n${line}\n`)).toBe(`imapd.conf: /etc/imapd.conf line 3: ${want}`)
  })

  it("renders control bytes visibly so the message stays on one line", () => {
    expect(failLine(`${BASE}maxword: 1\x1b2\n`)).toBe(`imapd.conf: /etc/imapd.conf line 2: option 'maxword': non-integer value "1\\x1b2"`)
  })
})

describe("robustness", () => {
  const line = fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc
      .tuple(
        fc.constantFrom("admins", "sync_timeout", "maxword", "allowplaintext", "virtdomains", "backupd_debug", "@include", "sasl_x", "x y"),
        fc.constantFrom(":", ": ", " : ", "="),
        fc.string({ unit: "binary", maxLength: 12 }),
        fc.constantFrom("\n", "\\\n", "\r\n", "")
      )
      .map((parts) => parts.join(""))
  )

  it.prop("arbitrary input yields a config or a ConfigError, never a throw", [fc.array(line, { maxLength: 12 })], ([lines]) => {
    const r = parse(`${BASE}${lines.join("\n")}`)
    if (Either.isLeft(r)) {
      expect(r.left).toBeInstanceOf(ConfigError)
      expect(r.left.message).not.toContain("\n")
    }
  })

  it.effect("ConfigError is catchable by tag", () =>
    Effect.gen(function* () {
      const { Config } = yield* Effect.promise(() => import("../../src/config/Config.js"))
      const tag = yield* Config.fromString("x", { service: "backupd", env: {} }).pipe(
        Effect.catchTag("ConfigError", (e) => Effect.succeed(e._tag))
      )
      expect(tag).toBe("ConfigError")
    })
  )
})
