import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { fileURLToPath } from "node:url"
import { Config } from "../../src/config/Config.js"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url))

describe("the harness's configuration files", () => {
  it.effect("backup instance, as backupd reads it", () =>
    Effect.gen(function* () {
      const c = yield* Config.load({ path: fixture("harness-backup.conf"), service: "backupd", env: {} })
      expect(c).toMatchObject({
        configDirectory: "/tmp/cyb/backup/conf",
        serverName: "cyb-backup",
        syslogPrefix: "cyb-backup",
        admins: "admin",
        allowPlaintext: true,
        unixHierarchySep: false,
        backupDbPath: "/tmp/cyb/backup/conf/backups.db",
        backupStagingPath: "/tmp/cyb/backup/staging",
        tempPath: "/tmp/cyb/backup/tmp",
        backupKeepPrevious: false,
        syncTimeout: 1800,
        umask: 0o77
      })
      expect([...c.partitions]).toEqual([["default", "/tmp/cyb/backup/backups"]])
      expect(c.overflow("sasl_pwcheck_method")).toBe("auxprop")
      expect(c.overflow("sasl_mech_list")).toBe("PLAIN LOGIN")
      // mailbox partitions are a different family
      expect(c.overflow("partition-default")).toBe("/tmp/cyb/backup/spool")
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("backup instance, as restore reads its sync settings", () =>
    Effect.gen(function* () {
      const c = yield* Config.load({ path: fixture("harness-backup.conf"), service: "restore", env: {} })
      expect(c.channelSync(undefined)).toEqual({
        host: undefined,
        port: "14293",
        authname: "admin",
        password: "adminpw",
        realm: undefined,
        tryImap: false
      })
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("source instance: the `backup` channel", () =>
    Effect.gen(function* () {
      const c = yield* Config.load({ path: fixture("harness-source.conf"), service: "sync_client", env: {} })
      expect(c.channelSync("backup")).toEqual({
        host: "127.0.0.1",
        port: "14292",
        authname: "admin",
        password: "adminpw",
        realm: undefined,
        tryImap: false
      })
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )
})
