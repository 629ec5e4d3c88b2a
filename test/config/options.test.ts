import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Layer } from "effect"
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Config } from "../../src/config/Config.js"
import { renderConfigError } from "../../src/config/ConfigError.js"
import { optionSpecs } from "../../src/config/optionTable.js"
import { BASE, CONF, failLine, ok } from "./support.js"

describe("defaults (Cyrus 3.6)", () => {
  const c = ok(BASE)

  it("of the options backupd and its tools read", () => {
    expect(c).toMatchObject({
      configDirectory: "/var/lib/cyrus",
      serverName: hostname(),
      admins: "",
      proxyServers: undefined,
      loginRealms: "",
      syncTimeout: 1800,
      failedLoginPause: 3,
      allowPlaintext: false,
      allowAnonymousLogin: false,
      saslMinimumLayer: 0,
      saslMaximumLayer: 256,
      tlsServerCert: undefined,
      tlsServerKey: undefined,
      tlsClientCaFile: undefined,
      tlsVersions: "tls1_0 tls1_1 tls1_2 tls1_3",
      tlsCiphers: "DEFAULT",
      partitionSelectMode: "freespace-most",
      partitionSelectExclude: undefined,
      partitionSelectExcluded: [],
      partitionSelectSoftUsageLimit: 0,
      partitionSelectUsageReinit: 0,
      backupDb: "twoskip",
      backupDbPath: "/var/lib/cyrus/backups.db",
      backupStagingPath: "/tmp/backup",
      tempPath: "/tmp",
      backupRetention: 7 * 86400,
      backupCompactMinsize: 0,
      backupCompactMaxsize: 0,
      backupCompactWorkThreshold: 1,
      backupCompactMinBytes: 0,
      backupCompactMaxBytes: 0,
      backupCompactEffectiveWorkThreshold: 1,
      backupKeepPrevious: false,
      fulldirhash: false,
      deletedPrefix: "DELETED",
      defaultDomain: "internal",
      virtDomains: "off",
      usernameToLower: true,
      unixHierarchySep: true,
      cyrusUser: "cyrus",
      telemetryBySessionId: false,
      maxWord: 131072,
      maxQuoted: 131072,
      literalMinus: false,
      debug: false,
      debugCommand: undefined,
      debugWritefailGuid: undefined,
      syslogPrefix: undefined,
      syslogFacility: undefined,
      umaskText: "077",
      umask: 0o77,
      lockDebugTime: undefined,
      syncAuthname: undefined,
      syncPassword: undefined,
      syncRealm: undefined,
      syncHost: undefined,
      syncPort: undefined,
      syncTryImap: true,
      warnings: []
    })
    expect(c.partitions.size).toBe(0)
  })

  it("every known option answers by its Cyrus name", () => {
    expect(optionSpecs.size).toBeGreaterThan(500)
    for (const spec of optionSpecs.values()) {
      const v = c.option(spec.name)
      if (spec.name === "configdirectory") expect(v).toBe("/var/lib/cyrus")
      else if (spec.default === null) expect(v).toBeUndefined()
      else if (spec.kind === "switch") expect(v).toBe(spec.default !== 0)
      else if (spec.kind === "int") expect(v).toBe(spec.default)
      else expect(v).toBeDefined()
    }
    expect(c.option("SYNC_TIMEOUT")).toBe("30m")
    expect(c.duration("sync_timeout", "s")).toBe(1800)
    expect(c.isSet("sync_timeout")).toBe(false)
    expect(c.option("no_such_option")).toBeUndefined()
  })
})

describe("typed options as set", () => {
  const c = ok(
    [
      "configdirectory: /srv/conf",
      "servername: backup.example.org",
      "admins: admin repl",
      "proxyservers: proxy",
      "loginrealms: example.org",
      "sync_timeout: 90",
      "failedloginpause: 1m",
      "allowplaintext: yes",
      "allowanonymouslogin: on",
      "sasl_minimum_layer: 0x10",
      "sasl_maximum_layer: 0400",
      "tls_server_cert: {configdirectory}/tls/cert.pem",
      "tls_server_key: /k.pem",
      "tls_client_ca_file: /ca.pem",
      "tls_versions: tls1_2 tls1_3",
      "tls_ciphers: HIGH",
      "backuppartition-default: /srv/backup",
      "backuppartition-second: /srv/backup2",
      "backuppartition-: /ignored",
      "backupd_backuppartition-special: /only/for/backupd",
      "partition_select_mode: random",
      "partition_select_exclude: second,\tthird  fourth",
      "partition_select_soft_usage_limit: 90",
      "partition_select_usage_reinit: 100",
      "backup_db: skiplist",
      "backup_db_path: /srv/bk.db",
      "backup_staging_path: /srv/staging",
      "temp_path: /var/tmp",
      "backup_retention: 2",
      "backup_compact_minsize: 100",
      "backup_compact_maxsize: -5",
      "backup_compact_work_threshold: 0",
      "backup_keep_previous: t",
      "fulldirhash: 1",
      "deletedprefix: Trash",
      "defaultdomain: example.org",
      "virtdomains: userid",
      "username_tolower: no",
      "unixhierarchysep: off",
      "cyrus_user: backup",
      "telemetry_bysessionid: true",
      "maxword: 4096",
      "maxquoted: 010",
      "literalminus: y",
      "debug: 1",
      "debug_command: /usr/bin/gdb %s %d",
      "debug_writefail_guid: 0123456789abcdef0123456789abcdef01234567",
      "syslog_prefix: cyb",
      "syslog_facility: LOCAL6",
      "umask: 0027x9",
      "lock_debugtime: 0.5",
      "sync_authname: repl",
      "sync_password: secret",
      "sync_realm: realm",
      "sync_host: 127.0.0.1",
      "sync_port: 2005",
      "sync_try_imap: 0"
    ].join("\n") + "\n"
  )

  it("are decoded", () => {
    expect(c).toMatchObject({
      serverName: "backup.example.org",
      admins: "admin repl",
      proxyServers: "proxy",
      loginRealms: "example.org",
      syncTimeout: 90,
      failedLoginPause: 60,
      allowPlaintext: true,
      allowAnonymousLogin: true,
      saslMinimumLayer: 16,
      saslMaximumLayer: 256,
      tlsServerCert: "/srv/conf/tls/cert.pem",
      tlsServerKey: "/k.pem",
      tlsClientCaFile: "/ca.pem",
      tlsVersions: "tls1_2 tls1_3",
      tlsCiphers: "HIGH",
      partitionSelectMode: "random",
      partitionSelectExclude: "second,\tthird  fourth",
      partitionSelectExcluded: ["second", "third", "fourth"],
      partitionSelectSoftUsageLimit: 90,
      partitionSelectUsageReinit: 100,
      backupDb: "skiplist",
      backupDbPath: "/srv/bk.db",
      backupStagingPath: "/srv/staging",
      tempPath: "/var/tmp",
      backupRetention: 2 * 86400,
      backupCompactMinsize: 100,
      backupCompactMaxsize: -5,
      backupCompactWorkThreshold: 0,
      backupCompactMinBytes: 102400,
      backupCompactMaxBytes: 0,
      backupCompactEffectiveWorkThreshold: 1,
      backupKeepPrevious: true,
      fulldirhash: true,
      deletedPrefix: "Trash",
      defaultDomain: "example.org",
      virtDomains: "userid",
      usernameToLower: false,
      unixHierarchySep: false,
      cyrusUser: "backup",
      telemetryBySessionId: true,
      maxWord: 4096,
      maxQuoted: 8,
      literalMinus: true,
      debug: true,
      debugCommand: "/usr/bin/gdb %s %d",
      debugWritefailGuid: "0123456789abcdef0123456789abcdef01234567",
      syslogPrefix: "cyb",
      syslogFacility: "LOCAL6",
      umaskText: "0027x9",
      umask: 0o27,
      lockDebugTime: "0.5",
      syncAuthname: "repl",
      syncPassword: "secret",
      syncRealm: "realm",
      syncHost: "127.0.0.1",
      syncPort: "2005",
      syncTryImap: false
    })
    expect(c.isSet("sync_timeout")).toBe(true)
  })

  it("backup partitions come from generic backuppartition-<name> keys", () => {
    expect([...c.partitions]).toEqual([
      ["default", "/srv/backup"],
      ["second", "/srv/backup2"]
    ])
    // the service-specific key is still reachable by lookup
    expect(c.overflow("backuppartition-special")).toBe("/only/for/backupd")
  })

  it("$CYRUS_USER beats cyrus_user", () => {
    expect(ok(`${BASE}cyrus_user: backup\n`, { env: { CYRUS_USER: "other" } }).cyrusUser).toBe("other")
  })
})

describe("deprecated options", () => {
  it("backup_retention_days feeds backup_retention (bare number = days)", () => {
    const c = ok(`${BASE}backup_retention_days: 14\n`)
    expect(c.backupRetention).toBe(14 * 86400)
    expect(c.isSet("backup_retention")).toBe(true)
    expect(c.overflow("backup_retention_days")).toBe("14")
    expect(c.warnings).toEqual([
      "Option 'backup_retention_days' is deprecated in favor of 'backup_retention' since version 3.1.8."
    ])
  })

  it("but not when backup_retention is set too", () => {
    expect(ok(`${BASE}backup_retention: 3d\nbackup_retention_days: 14\n`).backupRetention).toBe(3 * 86400)
    expect(ok(`${BASE}backup_retention_days: 14\nbackup_retention: 3d\n`).backupRetention).toBe(3 * 86400)
  })

  it("old TLS names feed the new ones, after {configdirectory}", () => {
    const c = ok(`${BASE}tls_cert_file: {configdirectory}/c.pem\ntls_key_file: /k.pem\n`)
    expect(c.tlsServerCert).toBe("/var/lib/cyrus/c.pem")
    expect(c.tlsServerKey).toBe("/k.pem")
  })

  it("are checked like any option", () => {
    expect(failLine(`${BASE}backup_retention_days: 2w\n`)).toBe(
      `imapd.conf: /etc/imapd.conf line 2: option 'backup_retention_days': invalid duration "2w"`
    )
  })
})

describe("sync channel settings", () => {
  const c = ok(
    `${BASE}sync_host: default-host\nsync_authname: repl\nbackup_sync_host: 127.0.0.1\nbackup_sync_port: 14292\nbackup_sync_try_imap: yes\nother_sync_try_imap: 1\n`
  )

  it("without a channel: the sync_* options (restore)", () => {
    expect(c.channelSync(undefined)).toEqual({
      host: "default-host",
      port: undefined,
      authname: "repl",
      password: undefined,
      realm: undefined,
      tryImap: true
    })
  })

  it("with a channel: <channel>_sync_* first; try_imap read with atoi, as Cyrus does", () => {
    expect(c.channelSync("backup")).toEqual({
      host: "127.0.0.1",
      port: "14292",
      authname: "repl",
      password: undefined,
      realm: undefined,
      tryImap: false
    })
    expect(c.channelSync("other").tryImap).toBe(true)
  })
})

describe("reading from disk", () => {
  const dir = mkdtempSync(join(tmpdir(), "cyb-config-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const main = join(dir, "imapd.conf")
  writeFileSync(main, `configdirectory: ${dir}\n@include: ${join(dir, "inc.conf")}\nservername: disk\n`)
  writeFileSync(join(dir, "inc.conf"), "sasl_mech_list: PLAIN\nadmins: caf\xe9\n", "latin1")

  it.effect("Config.layer reads the file and its includes as bytes", () =>
    Effect.gen(function* () {
      const c = yield* Config
      expect(c.path).toBe(main)
      expect(c.serverName).toBe("disk")
      expect(c.admins).toBe("caf\xe9")
      expect(c.overflow("sasl_mech_list")).toBe("PLAIN")
      expect(c.files).toEqual([main, join(dir, "inc.conf")])
    }).pipe(Effect.provide(Config.layer({ path: main, service: "backupd", env: {} }).pipe(Layer.provide(NodeFileSystem.layer))))
  )

  it.effect("a missing file fails with Cyrus's message", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Config.load({ path: "/nonexistent", service: "backupd", env: {} }))
      expect(Exit.isFailure(exit)).toBe(true)
      const err = yield* Effect.flip(Config.load({ path: "/nonexistent", service: "backupd", env: {} }))
      expect(err.reason).toBe("open")
      expect(renderConfigError(err)).toBe("can't open configuration file /nonexistent: No such file or directory")
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("a directory is not a configuration file", () =>
    Effect.gen(function* () {
      const err = yield* Effect.flip(Config.load({ path: dir, service: "backupd", env: {} }))
      expect(renderConfigError(err)).toBe(`can't open configuration file ${dir}: Is a directory`)
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("an unreadable file reports permission denied (when not root)", () =>
    Effect.gen(function* () {
      if (process.getuid?.() === 0) return
      const locked = join(dir, "locked.conf")
      writeFileSync(locked, "configdirectory: /x\n")
      chmodSync(locked, 0)
      const err = yield* Effect.flip(Config.load({ path: locked, service: "backupd", env: {} }))
      expect(err.detail).toBe(`can't open configuration file ${locked}: Permission denied`)
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("$CYRUS_PREFIX<path> is tried first, for includes too", () =>
    Effect.gen(function* () {
      const prefix = join(dir, "prefix")
      mkdirSync(join(prefix, "etc"), { recursive: true })
      writeFileSync(join(prefix, "etc", "main.conf"), "configdirectory: /pfx\n@include: /etc/inc.conf\n")
      writeFileSync(join(prefix, "etc", "inc.conf"), "servername: prefixed\n")
      const c = yield* Config.load({ path: "/etc/main.conf", service: "backupd", env: { CYRUS_PREFIX: prefix } })
      expect(c.configDirectory).toBe("/pfx")
      expect(c.serverName).toBe("prefixed")
      // falls back to the plain path when the prefixed one is missing
      const plain = yield* Config.load({ path: main, service: "backupd", env: { CYRUS_PREFIX: prefix } })
      expect(plain.serverName).toBe("disk")
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it("Config.layerFromString provides the service", () => {
    const r = Effect.runSync(
      Effect.either(Effect.provide(Config, Config.layerFromString(BASE, { service: "ctl_backups", env: {} })))
    )
    expect(Either.isRight(r) && r.right.service).toBe("ctl_backups")
  })
})

describe("backup_stale_after (our extension key)", () => {
  it("defaults to two days; a bare number is days; other units work", () => {
    expect(ok(BASE).backupStaleAfter).toBe(2 * 86400)
    expect(ok(`${BASE}backup_stale_after: 3\n`).backupStaleAfter).toBe(3 * 86400)
    expect(ok(`${BASE}backup_stale_after: 36h\n`).backupStaleAfter).toBe(36 * 3600)
    expect(ok(`${BASE}backupd_backup_stale_after: 1h\nbackup_stale_after: 5d\n`).backupStaleAfter).toBe(3600)
  })

  it("refuses what is not a positive duration, naming the key", () => {
    expect(failLine(`${BASE}backup_stale_after: soon\n`)).toBe(`imapd.conf: ${CONF}: option 'backup_stale_after': invalid duration "soon" (e.g. 2d, 36h)`)
    expect(failLine(`${BASE}backup_stale_after: 0\n`)).toContain("backup_stale_after")
  })
})
