/**
 * Compares our reading of imapd.conf with the real Cyrus 3.6.1 (`cyr_info`), which
 * prints the effective configuration or dies with exit code 78 on a bad file.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { spawnSync } from "node:child_process"
import { chownSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Config, type CyrusConfig } from "../../src/config/Config.js"
import { optionSpecs, type OptionSpec } from "../../src/config/optionTable.js"
import { cyrusIds, cyrusProgram, cyrusToolsSkipReason, tempDir, warnSkipping } from "../support/cyrus.js"

const CYR_INFO = cyrusProgram("cyr_info")
const skipReason = cyrusToolsSkipReason(["cyr_info"])
const haveCyrus = skipReason === undefined
warnSkipping("Cyrus interop tests for the config reader", skipReason)

describe.skipIf(!haveCyrus)("agreement with Cyrus 3.6.1 cyr_info", () => {
  const dir = tempDir("cyb-config-interop")
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const { uid, gid } = cyrusIds() ?? { uid: 0, gid: 0 }
  let counter = 0

  const writeConf = (name: string, text: string): string => {
    const p = join(dir, name)
    writeFileSync(p, text, "latin1")
    chownSync(p, uid, gid)
    return p
  }

  const cyrInfo = (path: string, service: string, command: string) => {
    const r = spawnSync(
      "setpriv",
      ["--reuid=cyrus", "--regid=mail", "--init-groups", "--", CYR_INFO, "-n", service, "-C", path, command],
      { encoding: "latin1", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } }
    )
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  }

  const ours = (path: string, service: string) =>
    Effect.runPromise(
      Effect.either(
        Config.load({ path, service, serviceFromEnv: false, env: {} }).pipe(Effect.provide(NodeFileSystem.layer))
      )
    )

  /** How cyr_info prints one option of our effective config. */
  const printed = (c: CyrusConfig, spec: OptionSpec): string => {
    const v = c.option(spec.name)
    switch (spec.kind) {
      case "switch":
        return v ? "yes" : "no"
      case "int":
        return String(v)
      case "enum":
        return ` ${String(v)}`
      case "bitfield": {
        const set = new Set(v as ReadonlyArray<string>)
        const words = (spec.choices ?? []).flatMap((ch) => {
          const names = ch.split("=")
          return set.has(names[0]!) ? names : []
        })
        return words.map((w) => ` ${w}`).join("")
      }
      case "duration":
        // printf of a NULL string
        return c.optionText(spec.name) ?? "(null)"
      default:
        return c.optionText(spec.name) ?? ""
    }
  }

  const parseConfAll = (stdout: string) => {
    const options = new Map<string, string>()
    const overflow = new Map<string, string>()
    for (const line of stdout.split("\n")) {
      if (line === "") continue
      const i = line.indexOf(":")
      const key = line.slice(0, i)
      // enums and bitfields print "key: word" without the usual separator handling
      const spec = optionSpecs.get(key)
      if (spec !== undefined && !options.has(key)) {
        const raw = line.slice(i + 1)
        options.set(key, spec.kind === "enum" || spec.kind === "bitfield" ? raw : raw.replace(/^ /, ""))
      } else {
        overflow.set(key, line.slice(i + 2))
      }
    }
    return { options, overflow }
  }

  it("prints the same effective value for every option and the same overflow entries", async () => {
    const inc = writeConf("inc.conf", "sasl_mech_list: PLAIN LOGIN\nbackupd_sasl_pwcheck_method: saslauthd\n")
    const path = writeConf(
      "full.conf",
      [
        `configdirectory: ${dir}/conf`,
        "servername: backup.example.org",
        "admins: admin repl",
        "sync_timeout: 1h30",
        "backupd_failedloginpause: 10",
        "failedloginpause: junk-ignored-because-service-specific-seen",
        "allowplaintext: yes",
        "sasl_minimum_layer: 0x10",
        "sasl_maximum_layer: 0400",
        "tls_cert_file: {configdirectory}/cert.pem",
        "backuppartition-default: {configdirectory}/backup",
        "backuppartition-two: /srv/two",
        "partition_select_mode: freespace-percent-weighted",
        "backup_db: zeroskip",
        "temp_path: {CONFIGDIRECTORY}/tmp",
        "backup_retention_days: 14",
        "backup_compact_minsize: 100",
        "virtdomains: yes",
        "username_tolower: off",
        "maxquoted: 010",
        "umask: 027",
        "sieve_extensions: fileinto x-cyrus-snooze imapflags",
        "event_groups: mailbox quota",
        "search_engine: xapian",
        "admins_typo_is_overflow: x",
        `@include: ${inc}`,
        "Imapd_Admins: only-for-imapd",
        "backup_sync_host: 127.0.0.1",
        "  # indented comment",
        "loginrealms: a \\",
        "b"
      ].join("\n") + "\n"
    )
    const cyrus = cyrInfo(path, "backupd", "conf-all")
    expect(cyrus.stderr).toBe("")
    expect(cyrus.status).toBe(0)
    const theirs = parseConfAll(cyrus.stdout)
    const r = await ours(path, "backupd")
    if (Either.isLeft(r)) throw new Error(r.left.message)
    const c = r.right
    let compared = 0
    for (const spec of optionSpecs.values()) {
      if (spec.deprecatedSince !== null) continue
      // cyr_info prints bitfields by list position, which is off once aliases take positions
      if (spec.kind === "bitfield" && (spec.choices ?? []).some((ch) => ch.includes("="))) continue
      expect.soft(`${spec.name}: ${printed(c, spec)}`).toBe(`${spec.name}: ${theirs.options.get(spec.name) ?? "<absent>"}`)
      compared++
    }
    expect(compared).toBeGreaterThan(480)
    expect(new Map([...c.overflowEntries].sort())).toEqual(new Map([...theirs.overflow].sort()))
    // and the typed view of what matters to backupd
    expect(c.syncTimeout).toBe(3630) // 1h + 30 s: a bare trailing number is seconds here
    expect(c.failedLoginPause).toBe(10)
    expect(c.backupRetention).toBe(14 * 86400)
    expect(c.tlsServerCert).toBe(`${dir}/conf/cert.pem`)
    expect(c.overflow("sasl_pwcheck_method")).toBe("saslauthd")
  })

  const cases: ReadonlyArray<readonly [string, string]> = [
    ["minimal", "configdirectory: /x\n"],
    ["no configdirectory", "servername: x\n"],
    ["no trailing newline", "configdirectory: /x"],
    ["comment and blanks", "# c\n\n  \nconfigdirectory: /x\n"],
    ["bad key", "configdirectory: /x\nfoo bar: 1\n"],
    ["no colon", "configdirectory: /x\nfoo\n"],
    ["space before colon", "configdirectory: /x\nfoo : 1\n"],
    ["empty value", "configdirectory: /x\nadmins:\n"],
    ["empty value after spaces", "configdirectory: /x\nadmins:   \t\n"],
    ["empty value continued", "configdirectory: /x\nadmins: \\\n\n"],
    ["duplicate", "configdirectory: /x\nadmins: a\nadmins: b\n"],
    ["duplicate overflow", "configdirectory: /x\nsasl_a: a\nsasl_a: b\n"],
    ["service then generic", "configdirectory: /x\nbackupd_maxword: 1\nmaxword: zzz\n"],
    ["generic then service", "configdirectory: /x\nmaxword: 1\nbackupd_maxword: 2\n"],
    ["service twice", "configdirectory: /x\nbackupd_maxword: 1\nbackupd_maxword: 2\n"],
    ["generic invalid then service", "configdirectory: /x\nmaxword: zzz\nbackupd_maxword: 2\n"],
    ["int hex", "configdirectory: /x\nmaxword: 0x10\n"],
    ["int octal bad", "configdirectory: /x\nmaxword: 08\n"],
    ["int garbage", "configdirectory: /x\nmaxword: 12k\n"],
    ["int sign", "configdirectory: /x\nmaxword: -12\n"],
    ["switch good", "configdirectory: /x\nallowplaintext: true\n"],
    ["switch case", "configdirectory: /x\nallowplaintext: Yes\n"],
    ["switch of", "configdirectory: /x\nallowplaintext: ofx\n"],
    ["duration good", "configdirectory: /x\nsync_timeout: 1d2h3m4s\n"],
    ["duration bare", "configdirectory: /x\nsync_timeout: 45\n"],
    ["duration bad unit", "configdirectory: /x\nsync_timeout: 3x\n"],
    ["duration double minus", "configdirectory: /x\nsync_timeout: --3\n"],
    ["duration lone minus", "configdirectory: /x\nsync_timeout: -\n"],
    ["duration unit first", "configdirectory: /x\nsync_timeout: h1\n"],
    ["enum good", "configdirectory: /x\nvirtdomains: userid\n"],
    ["enum normalised", "configdirectory: /x\nvirtdomains: false\n"],
    ["enum bad", "configdirectory: /x\nvirtdomains: y\n"],
    ["stringlist good", "configdirectory: /x\nbackup_db: sql\n"],
    ["stringlist yes", "configdirectory: /x\nbackup_db: yes\n"],
    ["stringlist two words", "configdirectory: /x\nbackup_db: sql twoskip\n"],
    ["bitfield bad word", "configdirectory: /x\nevent_groups: mailbox bogus\n"],
    ["deprecated bad", "configdirectory: /x\nbackup_retention_days: 2w\n"],
    ["deprecated twice via overflow", "configdirectory: /x\nbackup_retention_days: 2\nbackup_retention_days: 3\n"],
    ["unknown directive", "configdirectory: /x\n@foo: bar\n"],
    ["defaultpartition bad", "configdirectory: /x\ndefaultpartition: a-b\n"],
    ["nul byte", "configdirectory: /x\nmaxword: 1\x002\n"],
    ["continuation at eof", "configdirectory: /x\nmaxword: 1\\\n"],
    ["crlf switch", "configdirectory: /x\r\nallowplaintext: yes\r\n"],
    ["crlf int", "configdirectory: /x\r\nmaxword: 5\r\n"],
    ["at inside key", "configdirectory: /x\nfo@o: 1\n"],
    ["include without value", "configdirectory: /x\n@include:\n"],
    ["continued bad value", "configdirectory: /x\nmaxword: 1\\\n2\\\nx\n"],
    ["high byte in key", "configdirectory: /x\nfo\xe9: 1\n"],
    ["high byte in value", "configdirectory: /x\nadmins: caf\xe9\n"],
    ["unknown with service prefix", "configdirectory: /x\nbackupd_whatever: 1\nwhatever: 2\n"],
    ["int overflowing long", "configdirectory: /x\nmaxword: 99999999999999999999\n"],
    ["configdirectory twice", "configdirectory: /x\nconfigdirectory: /y\n"],
    ["configdirectory service-specific only", "backupd_configdirectory: /x\n"]
  ]

  it("accepts and rejects the same files, at the same line", async () => {
    const disagreements: Array<string> = []
    for (const [name, text] of cases) {
      const path = writeConf(`case-${counter++}.conf`, text)
      const cyrus = cyrInfo(path, "backupd", "conf")
      const r = await ours(path, "backupd")
      const theyAccept = cyrus.status === 0
      if (theyAccept !== Either.isRight(r)) {
        disagreements.push(`${name}: cyrus ${cyrus.status} ${cyrus.stderr.trim()} / ours ${Either.isLeft(r) ? r.left.message : "ok"}`)
        continue
      }
      if (!theyAccept) {
        expect.soft(cyrus.status, name).toBe(78)
        const theirLine = /line (\d+)/.exec(cyrus.stderr)?.[1]
        if (theirLine !== undefined && Either.isLeft(r)) {
          expect.soft(`${name}: line ${r.left.line}`).toBe(`${name}: line ${theirLine}`)
        }
      }
    }
    expect(disagreements).toEqual([])
  })

  it("includes: recursion and missing files are fatal for both", async () => {
    const a = join(dir, "rec-a.conf")
    const b = join(dir, "rec-b.conf")
    writeConf("rec-a.conf", `@include: ${b}\n`)
    writeConf("rec-b.conf", `@include: ${a}\n`)
    const top = writeConf("rec-top.conf", `configdirectory: /x\n@include: ${a}\n`)
    expect(cyrInfo(top, "backupd", "conf").status).toBe(78)
    expect(Either.isLeft(await ours(top, "backupd"))).toBe(true)

    const missing = writeConf("missing.conf", `configdirectory: /x\n@include: ${dir}/nope.conf\n`)
    const cyrus = cyrInfo(missing, "backupd", "conf")
    expect(cyrus.status).toBe(78)
    expect(cyrus.stderr).toContain(`can't open configuration file ${dir}/nope.conf: No such file or directory`)
    const r = await ours(missing, "backupd")
    expect(Either.isLeft(r) && r.left.detail).toBe(`can't open configuration file ${dir}/nope.conf: No such file or directory`)
  })
})
