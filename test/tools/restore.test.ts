/**
 * `restore` without a server: the command line as Cyrus's getopt loop reads it, the bytes
 * we would send for the golden backup compared with what the C restore sent for it
 * (RESERVE and RESTORE MAILBOX lines captured at the real sync_server), the stored sieve
 * script read back from its chunk, and point-in-time views of the golden backup.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Stream } from "effect"
import { createHash } from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { printItem } from "../../src/protocol/dlist/print.js"
import { openForRead } from "../../src/store/read/BackupReader.js"
import { openAtTime } from "../../src/store/read/pointInTime.js"
import { mailboxItem } from "../../src/tools/restore/mailboxItem.js"
import { parseRestoreArgs, parseTime, type RestoreOptions } from "../../src/tools/restore/options.js"
import { buildPlan, classifyObject, internalName, trimDeletedPrefix, type PlanOptions } from "../../src/tools/restore/plan.js"
import { reserveItem, uploadMessages } from "../../src/tools/restore/transfer.js"
import { storedSieveItem } from "../../src/tools/restore/userState.js"
import { parseServerAddress } from "../../src/tools/restore/syncClient.js"

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures")

const goldenCopy = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "restore-test-"))
  const data = path.join(dir, "alice_golden")
  fs.copyFileSync(path.join(FIXTURES, "golden", "alice.backup.gz"), data)
  fs.copyFileSync(path.join(FIXTURES, "golden", "alice.backup.index.sqlite"), `${data}.index`)
  return data
}

const parsed = (argv: ReadonlyArray<string>): RestoreOptions => {
  const r = parseRestoreArgs(argv)
  if (Either.isLeft(r)) throw new Error(r.left.reason)
  return r.right
}
const refused = (argv: ReadonlyArray<string>) => Either.isLeft(parseRestoreArgs(argv))

describe("restore command line", () => {
  it("takes server, then backup (userid by default), then objects", () => {
    const o = parsed(["-C", "/etc/x.conf", "host:2005", "alice", "user.alice", "user.alice.Sent"])
    expect([o.configPath, o.server, o.mode, o.backupName, o.objects]).toEqual(["/etc/x.conf", "host:2005", "userid", "alice", ["user.alice", "user.alice.Sent"]])
    expect(o.keepUidvalidity || o.dryRun || o.userState).toBe(false)
    expect(o.trimDeletedPrefix).toBe(true)
  })

  it("reads options after operands (GNU getopt) and clustered flags", () => {
    const o = parsed(["host", "-u", "bob", "-a", "-UXnrvvz"])
    expect([o.mode, o.backupName, o.allMailboxes, o.keepUidvalidity, o.expunged, o.dryRun, o.submailboxes, o.verbose, o.requireCompression])
      .toEqual(["userid", "bob", true, true, "exclude", true, true, 2, true])
    expect(parsed(["-muser.bob", "host", "user.bob.Sent"])).toMatchObject({ mode: "mboxname", backupName: "user.bob", objects: ["user.bob.Sent"] })
    expect(parsed(["host", "u", "--", "-a"]).objects).toEqual(["-a"])
  })

  it("gives a trailing -A the empty ACL and takes the next word otherwise", () => {
    expect(parsed(["host", "alice", "user.alice", "-A"]).overrideAcl).toBe("")
    expect(parsed(["-A", "alice lr", "host", "alice", "user.alice"]).overrideAcl).toBe("alice lr")
  })

  it("refuses what Cyrus refuses", () => {
    expect(refused(["-U", "-A", "x", "h", "u", "m"])).toBe(true)
    expect(refused(["-M", "user.x", "-U", "h", "u", "m"])).toBe(true)
    expect(refused(["-X", "-x", "h", "u", "m"])).toBe(true)
    expect(refused(["-a", "-F", "f", "h", "u"])).toBe(true)
    expect(refused(["-u", "a", "-f", "b", "h", "m"])).toBe(true)
    expect(refused(["-a", "h", "u", "user.u"])).toBe(true)
    expect(refused(["h", "u"])).toBe(true)
    expect(refused([])).toBe(true)
    expect(refused(["-q", "h", "u", "m"])).toBe(true)
    expect(refused(["-w", "-3", "h", "u", "m"])).toBe(true)
  })

  it("reads -S and -T (unix seconds or ISO 8601)", () => {
    const o = parsed(["-S", "-T", "1795885544", "h", "u", "-a"])
    expect([o.userState, o.pointInTime]).toEqual([true, 1795885544])
    expect(parseTime("2026-11-28T17:05:44Z")).toBe(1795885544)
    expect(parseTime("yesterday")).toBeUndefined()
    expect(refused(["-T", "soon", "h", "u", "-a"])).toBe(true)
  })

  it("classifies objects and names as restore does", () => {
    expect(classifyObject("nmvlkc9gmmqlk26jwc9fxzgj")).toBe("uniqueid")
    expect(classifyObject("0f0d3b2a-1111-2222-3333-444455556666")).toBe("uniqueid")
    expect(classifyObject("4F2F03627cecabd1a517d16970b4ca4fbab68bfc")).toBe("guid")
    expect(classifyObject("user.alice")).toBe("mboxname")
    expect(internalName("user/alice/Work.2024", true)).toBe("user.alice.Work^2024")
    expect(internalName("user.alice.Work", false)).toBe("user.alice.Work")
    expect(trimDeletedPrefix("DELETED.user.alice.Trash.6B0B09EA", "DELETED")).toBe("user.alice.Trash")
    expect(trimDeletedPrefix("example.com!DELETED.user.a.b.5F00", "DELETED")).toBe("example.com!user.a.b")
    expect(trimDeletedPrefix("user.alice.DELETED", "DELETED")).toBe("user.alice.DELETED")
    expect(parseServerAddress("10.0.0.1:14293", 2005)).toEqual({ _tag: "Tcp", host: "10.0.0.1", port: 14293 })
    expect(parseServerAddress("replica", 2005)).toEqual({ _tag: "Tcp", host: "replica", port: 2005 })
    expect(parseServerAddress("[::1]:99", 2005)).toEqual({ _tag: "Tcp", host: "::1", port: 99 })
    expect(parseServerAddress("/run/sync.sock", 2005)).toEqual({ _tag: "Unix", path: "/run/sync.sock" })
  })
})

const planOptions = (o: Partial<PlanOptions> = {}): PlanOptions => ({
  overrideAcl: undefined,
  overrideMboxname: undefined,
  overridePartition: undefined,
  expunged: "exclude",
  submailboxes: false,
  keepUidvalidity: true,
  trimDeletedPrefix: true,
  deletedPrefix: "DELETED",
  unixHierarchySep: false,
  defaultPartition: "default",
  log: () => {},
  ...o
})

/** What the C restore sent for the golden backup (restore -U -X ... -u alice <live names>). */
const cLines = fs.readFileSync(path.join(FIXTURES, "restore", "04_restore_alice.c_lines.txt"), "latin1").split("\r\n").filter((l) => l !== "")

describe("restore on the golden backup (no server)", () => {
  it.scoped("sends byte for byte the RESERVE and RESTORE MAILBOX lines the C restore sent", () =>
    Effect.gen(function*() {
      const reader = yield* openForRead(goldenCopy())
      const restored = cLines.filter((l) => l.startsWith("RESTORE MAILBOX ")).map((l) => /MBOXNAME (\S+)/.exec(l)![1]!)
      expect(restored).toContain("user.alice.Work.Projects.2024")
      const plan = yield* buildPlan(reader, { _tag: "Objects", names: restored }, planOptions())
      expect(plan.notFound).toEqual([])
      const ours: Array<string> = []
      for (const [partition, guids] of plan.reserve) {
        ours.push("APPLY " + printItem(reserveItem(partition, plan.reserveFolders, guids)).toString("latin1"))
      }
      for (const mb of plan.mailboxes) ours.push("RESTORE " + printItem(yield* mailboxItem(mb)).toString("latin1"))
      expect(ours).toEqual(cLines)
    }))

  it.scoped("without -U drops uniqueid, highestmodseq and uidvalidity; -M gathers into one mailbox", () =>
    Effect.gen(function*() {
      const reader = yield* openForRead(goldenCopy())
      const plan = yield* buildPlan(reader, { _tag: "All" }, planOptions({ keepUidvalidity: false, expunged: "include" }))
      expect(plan.mailboxes.map((m) => m.mboxname)).toContain("user.alice.Trash") // deleted prefix trimmed
      const line = printItem(yield* mailboxItem(plan.mailboxes[0]!)).toString("latin1")
      expect(line).toMatch(/^MAILBOX %\(UNIQUEID NIL MBOXNAME user\.alice MBOXTYPE NIL LAST_UID \d+ HIGHESTMODSEQ 0 /)
      expect(line).toContain(" UIDVALIDITY 0 ")
      const guid = plan.mailboxes[0]!.records[0]!.guid
      const one = yield* buildPlan(reader, { _tag: "Objects", names: [guid.toUpperCase(), "nosuch.box"] }, planOptions({ keepUidvalidity: false, overrideMboxname: "user.alice.Found" }))
      expect(one.notFound).toEqual(["nosuch.box"])
      expect(one.mailboxes.map((m) => [m.mboxname, m.records.map((r) => r.guid)])).toEqual([["user.alice.Found", [guid]]])
      expect(one.reserveFolders).toContain("user.alice.Found")
      expect(one.mailboxes[0]!.records[0]!.internaldate).toBe(plan.mailboxes[0]!.records[0]!.internaldate)
    }))

  it.scoped("reads the stored sieve script back from its chunk line", () =>
    Effect.gen(function*() {
      const reader = yield* openForRead(goldenCopy())
      const [row] = yield* reader.sieve()
      const it = yield* storedSieveItem(reader, row!)
      expect(it.key).toBe("SIEVE")
      const text = printItem(it).toString("latin1")
      expect(text).toMatch(/^SIEVE %\(USERID alice FILENAME harness\.script LAST_UPDATE 1795885539 CONTENT \{233\+\}\r\n/)
      const decompressed = fs.readFileSync(path.join(FIXTURES, "transcripts", "alice.backup.decompressed.txt"), "latin1")
      expect(decompressed).toContain(text)
    }))
})

describe("point in time on the golden backup", () => {
  const names = (mbs: ReadonlyArray<{ mboxname: string }>) => mbs.map((m) => m.mboxname)

  it.scoped("replays only the chunks that had ended (here: before the rename), messages still readable", () =>
    Effect.gen(function*() {
      const data = goldenCopy()
      const early = yield* openAtTime(data, 1795885544, { tempDir: os.tmpdir() })
      expect(early.chunks.map((c) => c.id)).toEqual([1])
      expect(early.skippedChunks).toBe(3)
      const earlyBoxes = yield* early.reader.mailboxes({ withRecords: true })
      expect(names(earlyBoxes)).toContain("user.alice.Lists.cyrus-devel")
      expect(names(earlyBoxes)).not.toContain("user.alice.Mailinglists")
      // the messages of that time come out of the real data file
      const inbox = earlyBoxes.find((m) => m.mboxname === "user.alice")!
      const guid = inbox.records[0]!.guid
      const parts = yield* Stream.runCollect(early.reader.messageBytes(guid))
      expect(createHash("sha1").update(Buffer.concat(Chunk.toReadonlyArray(parts))).digest("hex")).toBe(guid)
    }))

  it.scoped("at the end of time equals the backup's own index; before the first chunk it is empty", () =>
    Effect.gen(function*() {
      const data = goldenCopy()
      const full = yield* Effect.scoped(Effect.flatMap(openForRead(data), (r) => r.mailboxes({ withRecords: true })))
      const late = yield* Effect.scoped(Effect.flatMap(openAtTime(data, 2 ** 40, { tempDir: os.tmpdir() }), (v) => v.reader.mailboxes({ withRecords: true })))
      const shape = (mbs: typeof full) =>
        mbs.map((m) => ({ ...m, id: 0, records: m.records.map((r) => ({ ...r, id: 0, mailboxId: 0, messageId: 0 })) }))
      expect(shape(late)).toEqual(shape(full))
      const none = yield* Effect.scoped(Effect.flatMap(openAtTime(data, 1000, { tempDir: os.tmpdir() }), (v) => v.reader.mailboxes()))
      expect(none).toEqual([])
    }))
})

describe("restore upload progress", () => {
  it("reports every message sent, with running byte counts that end at the total", async () => {
    const data = goldenCopy()
    const steps: Array<[number, number, number, number]> = []
    const sentBytes: Array<number> = []
    const session = {
      banner: [],
      compressed: false,
      sieveMailbox: false,
      command: <E>(_label: string, bytes: Stream.Stream<Uint8Array, E>) =>
        Stream.runForEach(bytes, (c) => Effect.sync(() => void sentBytes.push(c.byteLength))).pipe(
          Effect.as({ untagged: [], text: "Success" })
        )
    }
    const report = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const reader = yield* openForRead(data)
          const guids = (yield* reader.messages()).map((m) => m.guid)
          return yield* uploadMessages(session, reader, "default", guids, () => {}, (d, t, db, tb) => void steps.push([d, t, db, tb]))
        })
      )
    )
    expect(report.messages).toBeGreaterThan(0)
    expect(steps).toHaveLength(report.messages)
    expect(steps.map((s) => s[0])).toEqual(steps.map((_, i) => i + 1))
    const last = steps[steps.length - 1]!
    expect(last[0]).toBe(last[1])
    expect(last[2]).toBe(report.bytes)
    expect(last[3]).toBe(report.bytes)
    expect(sentBytes.reduce((a, b) => a + b, 0)).toBeGreaterThan(report.bytes)
  })
})
