/**
 * Our cyr_backup and ctl_backups against the installed Cyrus 3.6.1 originals, on the golden
 * C-written backup and on a backup our Store wrote from the same lines: same stdout, same
 * stderr (minus Cyrus's parser noise) and same exit codes, including error and lock cases.
 */
import { spawn } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { createRequire } from "node:module"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Scope } from "effect"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { lockDataFile } from "../../src/store/dataFileLock.js"
import { chownIfRoot, goldenServer, makeServer, runOurs, runTheirs, type Server } from "./support.js"
import { goldenLines } from "../store/support.js"
import { haveCyrusTools, warnNoCyrusTools } from "../support/cyrus.js"

warnNoCyrusTools("tools differential tests")

const GUIDS = [
  "4f2f03627cecabd1a517d16970b4ca4fbab68bfc",
  "2cf3710c0d556d6895b5b763b4ae58ad1fb01aa7",
  "9ccf50bc447029c2f3d0e26406ed0b7e1e882c61",
  "a9bb614c4802609c8841f76e4692598441e1a585"
]

/**
 * Our extension of `list -j` and `stat -j` (docs/tools.md): `last_success` and `stale` after
 * Cyrus's keys. Each object that has them loses them here, so the rest is compared byte for byte.
 */
const withoutSuccessKeys = (argv: ReadonlyArray<string>, stdout: string): string => {
  if (!argv.includes("-j") || !(argv.includes("list") || argv.includes("stat"))) return stdout
  const objects = stdout.split(/^\{$/m).length - 1
  const stripped = stdout.replace(/,\n {2}"last_success": \d+(?=,\n {2}"stale")/g, "").replace(/,\n {2}"stale": (?:true|false)(?=\n\})/g, "")
  expect((stdout.match(/"stale": (?:true|false)\n\}/g) ?? []).length, stdout).toBe(objects)
  return stripped
}

const same = async (prog: "ctl_backups" | "cyr_backup", argv: ReadonlyArray<string>) => {
  const theirs = await runTheirs(prog, argv)
  const ours = await runOurs(prog, argv)
  expect({ argv, ...ours, stdout: withoutSuccessKeys(argv, ours.stdout) }).toEqual({ argv, ...theirs })
  return ours
}

const Database = createRequire(import.meta.url)("better-sqlite3") as new (p: string) => { exec(s: string): void; close(): void }
const tamper = (index: string, sql: string) => {
  const db = new Database(index)
  db.exec(sql)
  db.close()
}

const CYR_COMMANDS: ReadonlyArray<ReadonlyArray<string>> = [
  ["list", "all"],
  ["list", "chunks"],
  ["list", "mailboxes"],
  ["list", "messages"],
  ["json", "chunks"],
  ["json", "mailboxes"],
  ["json", "messages"],
  ["json", "headers", ...GUIDS, "0000000000000000000000000000000000000000", "zz"],
  ["show", "messages", ...GUIDS],
  ["show", "mailboxes", "user/alice/Work/Projects", "ay7v4zhca7h2a2jig64pz370", "user/alice", "nonexistent"],
  ["dump", "chunk", "1"],
  ["dump", "chunk", "2"],
  ["dump", "chunk", "0"],
  ["dump", "chunk", "9"],
  ["dump", "message", GUIDS[1]!],
  ["dump", "message", "abc"],
  ["dump", "message", "0000000000000000000000000000000000000000"],
  ["dump", "mailbox", "x"]
]

describe.skipIf(!haveCyrusTools)("against the Cyrus 3.6.1 tools", () => {
  let tz: string | undefined
  beforeAll(() => {
    tz = process.env.TZ
    // a zone with a half-hour offset shows any UTC/local mix-up
    process.env.TZ = "Asia/Kolkata"
  })
  afterAll(() => {
    process.env.TZ = tz
  })

  describe("on the golden C-written backup", () => {
    let server: Server & { data: string }
    beforeAll(async () => {
      server = await goldenServer("golden")
    })

    it("cyr_backup prints the same for every view", async () => {
      for (const c of CYR_COMMANDS) await same("cyr_backup", ["-C", server.conf, "alice", ...c])
      await same("cyr_backup", ["-C", server.conf, "-m", "user/alice/Work", "list", "chunks"])
      await same("cyr_backup", ["-C", server.conf, "-f", server.data, "-v", "list", "mailboxes"])
    })

    it("cyr_backup errors: unknown user, missing file, bad config", async () => {
      await same("cyr_backup", ["-C", server.conf, "bob", "list", "all"])
      await same("cyr_backup", ["-C", server.conf, "-f", "/nonexistent", "list", "all"])
      await same("cyr_backup", ["-C", "/nonexistent.conf", "alice", "list", "all"])
      const usage = await runOurs("cyr_backup", ["alice", "list"])
      expect(usage.code).toBe((await runTheirs("cyr_backup", ["alice", "list"])).code)
    })

    it("ctl_backups list, stat and verify print the same", async () => {
      for (const argv of [
        ["list"],
        ["-j", "list"],
        ["list", "alice"],
        ["list", "-t"],
        ["list", "-P", "al"],
        ["list", "-D", "internal"],
        ["stat", "alice"],
        ["-j", "stat", "alice"],
        ["verify", "alice"],
        ["-v", "verify", "alice"],
        ["-vv", "verify", "alice"],
        ["-j", "verify", "alice"],
        ["-A", "verify"],
        ["-f", "-j", "verify", server.data],
        ["-f", "stat", server.data],
        ["list", "bob"],
        ["verify", "bob", "alice"],
        ["-f", "verify", "/nonexistent"],
        ["-f", "list", "/nonexistent"],
        ["-f", "stat", "/nonexistent"],
        ["-f", "reindex", "/nonexistent"],
        ["lock", "-x", "exit 3", "bob"]
      ]) {
        await same("ctl_backups", ["-C", server.conf, ...argv])
      }
    })

    it("a damaged index fails the same way (mismatch lines, error codes)", async () => {
      const copy = `${server.data}_copy`
      fs.copyFileSync(server.data, copy)
      fs.copyFileSync(`${server.data}.index`, `${copy}.index`)
      tamper(`${copy}.index`, "UPDATE chunk SET data_sha1 = '0000000000000000000000000000000000000000' WHERE id = 2")
      chownIfRoot(server.dir)
      for (const argv of [["verify"], ["-v", "verify"], ["-vv", "verify"], ["list"], ["stat"]]) {
        await same("ctl_backups", ["-C", server.conf, "-f", ...argv, copy])
      }
      tamper(`${copy}.index`, "UPDATE chunk SET data_sha1 = '0000000000000000000000000000000000000000' WHERE id = 4")
      for (const argv of [["list"], ["-V", "list"], ["stat"], ["lock"]]) await same("ctl_backups", ["-C", server.conf, "-f", ...argv, copy])
      await same("cyr_backup", ["-C", server.conf, "-f", copy, "-v", "list", "chunks"])
    })

    it("a backup locked by us is locked for them, and the other way round", async () => {
      const scope = Effect.runSync(Scope.make())
      await Effect.runPromise(Scope.extend(lockDataFile(server.data), scope))
      try {
        for (const argv of [["list"], ["verify", "alice"], ["stat", "alice"], ["reindex", "alice"], ["lock", "alice"], ["lock", "-x", "true", "alice"]]) {
          const theirs = await runTheirs("ctl_backups", ["-C", server.conf, ...argv])
          expect([argv, theirs.code]).toEqual([argv, argv[0] === "stat" ? 0 : 75])
          expect(theirs.stdout + theirs.stderr).toMatch(/locked/)
        }
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
      // the original holds the lock while its command runs (here: until stdin closes); its own
      // stdout is block-buffered in a pipe, so the command announces the lock
      const holder = spawn(
        "setpriv",
        ["--reuid=cyrus", "--regid=mail", "--init-groups", "--", "/usr/lib/cyrus/bin/ctl_backups", "-C", server.conf, "lock", "-x", "echo held; read x", "alice"],
        { stdio: ["pipe", "pipe", "ignore"] }
      )
      try {
        await new Promise<void>((resolve) => holder.stdout!.on("data", (b: Buffer) => b.toString().includes("held") && resolve()))
        const expected: Record<string, [number, RegExp]> = {
          list: [75, /^alice: Mailbox is locked\n$/],
          verify: [75, /^verify alice: locked\n$/],
          stat: [0, /^alice: Mailbox is locked\n$/],
          reindex: [75, /^reindex alice: locked\n$/],
          lock: [75, /^\* Trying to obtain lock on alice\.\.\.\nNO failed \(Mailbox is locked\)\n$/]
        }
        for (const [cmd, [code, text]] of Object.entries(expected)) {
          const ours = await runOurs("ctl_backups", ["-C", server.conf, cmd, "alice"])
          expect([cmd, ours.code]).toEqual([cmd, code])
          expect(ours.stdout + ours.stderr).toMatch(text)
        }
      } finally {
        holder.stdin!.end()
        await new Promise((r) => holder.once("close", r))
      }
    })
  })

  describe("on a backup written by our Store", () => {
    let server: Server
    beforeAll(async () => {
      server = makeServer("ours")
      const lines = await Effect.runPromise(goldenLines(path.join(server.dir, "staging")))
      const data = path.join(server.partition, "a", "alice_ourown")
      for (const id of [...new Set(lines.map((l) => l.chunk))]) {
        await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function*() {
              const w = yield* openForAppend(data, { create: true, durable: false })
              for (const l of lines.filter((x) => x.chunk === id)) yield* w.append(l.item, l.ts)
            })
          )
        )
      }
      await server.record("alice", data)
    })

    it("cyr_backup and ctl_backups print the same as the originals", async () => {
      for (const c of CYR_COMMANDS) await same("cyr_backup", ["-C", server.conf, "alice", ...c])
      for (const argv of [["list"], ["-j", "list"], ["stat", "alice"], ["-v", "verify", "alice"], ["-j", "verify", "alice"]]) {
        await same("ctl_backups", ["-C", server.conf, ...argv])
      }
    })
  })
})
