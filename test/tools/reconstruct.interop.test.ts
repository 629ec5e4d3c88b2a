/**
 * Acceptance: `ctl_backups reconstruct` (ours; Cyrus 3.6.1 has no such command) rebuilds
 * backups.db so that the real tools cannot tell it from the one the real backupd wrote.
 * Backups of three users are made by the C backupd from a real sync_client; the real
 * `cyr_dbtool ... twoskip show` and `ctl_backups list` outputs are saved, backups.db is
 * deleted, our `bin/ctl_backups reconstruct` runs as cyrus, and both outputs are the same.
 * Needs `npm run build` first.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync, rmSync } from "node:fs"
import * as path from "node:path"
import {
  haveCyrus,
  populate,
  runCtlBackups,
  runCyrus,
  runSyncClient,
  startBackupServer,
  startSource,
  warnIfNoCyrus,
  type BackupServerInstance
} from "../harness/index.js"

const ROOT = path.resolve(__dirname, "../..")
const OUR_CTL = path.join(ROOT, "bin", "ctl_backups")
const built = existsSync(path.join(ROOT, "dist", "bin", "ctl_backups.js"))

const cyrusPresent = haveCyrus()
warnIfNoCyrus("ctl_backups reconstruct interop")
if (cyrusPresent && !built) console.warn("\n!!! SKIPPING reconstruct interop: dist/bin/ctl_backups.js missing, run `npm run build`\n")

const makeEnv = Effect.gen(function*() {
  const backup = yield* startBackupServer()
  const source = yield* startSource({ backupPort: backup.port })
  yield* populate(source, { messages: 9, maxAttachment: 20_000 })
  const sync = yield* runSyncClient(source, ["-A"])
  if (sync.exitCode !== 0) throw new Error(`sync_client -A: ${sync.stderr}`)
  yield* backup.awaitBackupsClosed()
  return { backup, source }
})

class Env extends Context.Tag("ReconstructInteropEnv")<Env, Effect.Effect.Success<typeof makeEnv>>() {}

/** The real reader's view of backups.db: every key and value, as text. */
const dbShow = (backup: BackupServerInstance) =>
  Effect.map(runCyrus("cyr_dbtool", ["-C", backup.conf, backup.backupDbPath, "twoskip", "show"]), (r) => {
    expect(r.exitCode, r.stderr).toBe(0)
    return r.stdout
  })

const theirList = (backup: BackupServerInstance) =>
  Effect.map(runCtlBackups(backup, ["list"]), (r) => ({ code: r.exitCode, stdout: r.stdout, stderr: r.stderr }))

const ours = (backup: BackupServerInstance, args: ReadonlyArray<string>) => runCtlBackups(backup, args, { program: OUR_CTL })

describe.skipIf(!cyrusPresent || !built)("our ctl_backups reconstruct against backups.db written by the C backupd", () => {
  layer(Layer.scoped(Env, makeEnv), { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("a reconstructed backups.db lists identically under cyr_dbtool and ctl_backups", () =>
      Effect.gen(function*() {
        const { backup, source } = yield* Env
        const before = yield* dbShow(backup)
        for (const u of source.users) expect(before).toMatch(new RegExp(`^${u}\t${backup.partitionDir}/\\S+/${u}_[A-Za-z0-9]{6}$`, "m"))
        const listBefore = yield* theirList(backup)
        expect(listBefore.code, listBefore.stderr).toBe(0)

        rmSync(backup.backupDbPath)
        const r = yield* ours(backup, ["reconstruct"])
        expect(r.exitCode, r.stderr).toBe(0)
        expect(r.stdout).toBe(source.users.map((u) => `reconstruct ${u}: added\n`).sort().join(""))
        expect(r.stderr).toBe("")

        expect(yield* dbShow(backup)).toBe(before)
        expect(yield* theirList(backup)).toEqual(listBefore)
        const verify = yield* runCtlBackups(backup, ["verify", "-A"])
        expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)

        // nothing left to do: a second run changes nothing and says so only with -v
        const again = yield* ours(backup, ["-v", "reconstruct"])
        expect(again.exitCode).toBe(0)
        expect(again.stdout).toBe(source.users.map((u) => `reconstruct ${u}: ok\n`).sort().join(""))
        expect(yield* dbShow(backup)).toBe(before)
      }))
  })
})
