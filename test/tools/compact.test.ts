/**
 * `ctl_backups compact`: a backup our Store wrote, with a message expunged longer ago than
 * the retention period, is compacted by our tool; the result is smaller, keeps its unchanged
 * leading chunk byte for byte, passes our full verify and the real `ctl_backups verify`, and
 * still yields every live message (read back through our reader, not a full IMAP restore).
 * The C compact of the same backup keeps the same messages.
 */
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import zlib from "node:zlib"
import { describe, expect, it } from "vitest"
import { Chunk, Effect, Stream } from "effect"
import { atom, flag, item, kvlist, list, type Dlist, type File, type Item } from "../../src/protocol/dlist/value.js"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { openForRead } from "../../src/store/read/BackupReader.js"
import { verifyFile } from "../../src/store/maintain/verify.js"
import { runRestore } from "../../src/tools/restore/restore.js"
import { recorder } from "../support/syncRecorder.js"
import { copyGolden, lineLiterals } from "../store/support.js"
import { chownIfRoot, makeServer, runOurs, runTheirs } from "./support.js"
import { haveCyrusTools, warnNoCyrusTools } from "../support/cyrus.js"

warnNoCyrusTools("compact tests")

const DAY = 86400
const NOW = Math.floor(Date.now() / 1000)

const message = (staging: string, text: string): File => {
  const body = Buffer.from(text, "latin1")
  const guid = createHash("sha1").update(body).digest("hex")
  const p = path.join(staging, guid)
  fs.writeFileSync(p, body)
  return { _tag: "File", partition: "default", guid, size: body.length, path: p, sha1: guid }
}

const record = (uid: number, m: File, ts: number, flags: ReadonlyArray<Dlist> = []): Dlist =>
  kvlist([
    ["UID", atom(String(uid))],
    ["MODSEQ", atom(String(uid + 10))],
    ["LAST_UPDATED", atom(String(ts))],
    ["FLAGS", list(flags)],
    ["INTERNALDATE", atom(String(ts - 100))],
    ["SIZE", atom(String(m.size))],
    ["GUID", atom(m.guid)]
  ])

const mailbox = (ts: number, lastUid: number, records: ReadonlyArray<Dlist>): Item =>
  item(
    "MAILBOX",
    kvlist([
      ["UNIQUEID", atom("u-inbox-1")],
      ["MBOXNAME", atom("example.com!user.carol")],
      ["SYNC_CRC", atom("0")],
      ["LAST_UID", atom(String(lastUid))],
      ["HIGHESTMODSEQ", atom(String(lastUid + 20))],
      ["RECENTUID", atom("0")],
      ["RECENTTIME", atom(String(ts))],
      ["LAST_APPENDDATE", atom(String(ts))],
      ["POP3_LAST_LOGIN", atom("0")],
      ["UIDVALIDITY", atom("1700000000")],
      ["PARTITION", atom("default")],
      ["ACL", atom("carol@example.com\tlrswipkxtecdan\t")],
      ["OPTIONS", atom("P")],
      ["RECORD", list(records)]
    ])
  )

/** Four sessions (chunks): live mail, mail later expunged, the expunge (30 days ago), new mail. */
const buildBackup = (data: string, staging: string) =>
  Effect.gen(function*() {
    const live1 = message(staging, "Subject: kept\r\n\r\nhello\r\n")
    const gone = message(staging, `Subject: big and gone\r\n\r\n${randomBytes(100_000).toString("base64")}\r\n`)
    const live2 = message(staging, "Subject: new\r\n\r\nrecent\r\n")
    const session = (lines: ReadonlyArray<readonly [Item, number]>, create = false) =>
      Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create, durable: false })
          for (const [it, ts] of lines) yield* w.append(it, ts)
        })
      )
    const t1 = NOW - 40 * DAY
    const t2 = NOW - 35 * DAY
    const t3 = NOW - 30 * DAY
    yield* session([
      [item("MESSAGE", list([live1])), t1],
      [mailbox(t1, 1, [record(1, live1, t1)]), t1],
      [item("SUB", kvlist([["USERID", atom("carol@example.com")], ["MBOXNAME", atom("example.com!user.carol")]])), t1]
    ], true)
    yield* session([
      [item("MESSAGE", list([gone])), t2],
      [mailbox(t2, 2, [record(2, gone, t2)]), t2]
    ])
    yield* session([[mailbox(t3, 2, [record(2, gone, t3, [flag("\\Expunged")])]), t3]])
    yield* session([
      [item("MESSAGE", list([live2])), NOW - 60],
      [mailbox(NOW - 60, 3, [record(3, live2, NOW - 60)]), NOW - 60],
      [item("SEEN", kvlist([["USERID", atom("carol@example.com")], ["UNIQUEID", atom("u-inbox-1")], ["LASTREAD", atom(String(NOW))], ["LASTUID", atom("3")], ["LASTCHANGE", atom(String(NOW))], ["SEENUIDS", atom("1:3")]])), NOW - 60]
    ])
    return {
      live: [live1, live2].map((f) => ({ guid: f.guid, body: fs.readFileSync(f.path) })),
      gone: gone.guid
    }
  })

const chunkOffsets = (data: string) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(openForRead(data), (r) => r.chunks()))
  ).then((cs) => cs.map((c) => c.offset))

const messageGuids = (data: string) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(openForRead(data), (r) => r.messages()))).then((ms) => ms.map((m) => m.guid).sort())

describe.skipIf(!haveCyrusTools)("ctl_backups compact", () => {
  it("drops mail expunged before the retention period, keeps the unchanged leading chunk byte for byte", async () => {
    const server = makeServer("compact", ["backup_retention: 7d"])
    const data = path.join(server.partition, "a", "carol")
    const staging = path.join(server.dir, "stage")
    fs.mkdirSync(staging)
    const built = await Effect.runPromise(buildBackup(data, staging))
    await server.record("carol@example.com", data)
    const copy = path.join(server.dir, "other", "carol-c")
    fs.copyFileSync(data, copy)
    fs.copyFileSync(`${data}.index`, `${copy}.index`)
    chownIfRoot(server.dir)

    const before = fs.readFileSync(data)
    const offsets = await chunkOffsets(data)
    expect(offsets).toHaveLength(4)
    const firstChunk = before.subarray(0, offsets[1])

    const ours = await runOurs("ctl_backups", ["-C", server.conf, "-v", "compact", "carol@example.com"])
    expect(ours).toMatchObject({ code: 0, stderr: "" })
    expect(ours.stdout).toBe("keeping 2 chunks:\n 1 4\ncompact carol@example.com: ok\n")

    const after = fs.readFileSync(data)
    expect(after.length).toBeLessThan(before.length / 4)
    expect(after.subarray(0, firstChunk.length).equals(firstChunk)).toBe(true)
    expect(fs.existsSync(`${data}.new`) || fs.existsSync(`${data}.index.new`)).toBe(false)
    expect(fs.readdirSync(path.dirname(data)).sort()).toEqual(["carol", "carol.index"])

    // our tool ran as root here: the staging dir it made must go back to cyrus for the C tools
    chownIfRoot(server.dir)
    const v = await Effect.runPromise(verifyFile(data))
    expect(v.problems).toEqual([])
    expect(v.ok).toBe(true)
    const cv = await runTheirs("ctl_backups", ["-C", server.conf, "-F", "-f", "verify", data])
    expect(cv).toMatchObject({ code: 0, stdout: `verify ${data}: ok\n` })

    // every live message is still there, byte for byte; the expunged one is gone
    const read = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const r = yield* openForRead(data)
          const out: Array<Buffer> = []
          for (const m of built.live) {
            const bytes = yield* Stream.runCollect(r.messageBytes(m.guid))
            out.push(Buffer.concat(Chunk.toReadonlyArray(bytes)))
          }
          return out
        })
      )
    )
    expect(read).toEqual(built.live.map((m) => m.body))
    expect(await messageGuids(data)).toEqual(built.live.map((m) => m.guid).sort())

    // a later restore (to a recording sync server) still sends every live message, byte for byte
    const socketPath = path.join(server.dir, "restore-recorder.sock")
    const rec = await recorder(socketPath)
    let restoreErr = ""
    const restoreCode = await runRestore(["-C", server.conf, "-U", "-a", socketPath, "carol@example.com"], {
      stdout: () => {},
      stderr: (t) => void (restoreErr += t)
    }).finally(() => rec.close())
    expect(restoreCode, restoreErr).toBe(0)
    const uploaded = new Map<string, Buffer>()
    for (const c of rec.commands) {
      for (const m of c.matchAll(/%\{\S+ ([0-9a-f]{40}) (\d+)\}\r\n/g)) {
        const start = m.index + m[0].length
        uploaded.set(m[1]!, Buffer.from(c.slice(start, start + Number(m[2])), "latin1"))
      }
    }
    expect([...uploaded.keys()].sort()).toEqual(built.live.map((m) => m.guid).sort())
    for (const m of built.live) expect(uploaded.get(m.guid)).toEqual(m.body)

    // the C compact of the same backup keeps the same messages
    const theirs = await runTheirs("ctl_backups", ["-C", server.conf, "-f", "compact", copy])
    expect(theirs.code).toBe(0)
    expect(await messageGuids(copy)).toEqual(await messageGuids(data))

    // nothing left to do: skipped (counted, so exit 75), unless forced
    const again = await runOurs("ctl_backups", ["-C", server.conf, "compact", "carol@example.com"])
    expect(again).toMatchObject({ code: 75, stdout: "compact carol@example.com: skipped\n" })
    const forced = await runOurs("ctl_backups", ["-C", server.conf, "-F", "compact", "carol@example.com"])
    expect(forced).toMatchObject({ code: 0, stdout: "compact carol@example.com: ok\n" })
    expect(fs.readFileSync(data).equals(after)).toBe(true)
  }, 60_000)

  it("a C-written chunk holding a {n+} literal comes out of a rewrite with {n}; both verifies read every line", async () => {
    // 2 MB: every golden chunk is to be combined, so none is copied byte for byte
    const server = makeServer("compact-literal", ["backup_compact_minsize: 2048"])
    const data = copyGolden(path.join(server.partition, "a"), "alice_golden")
    await server.record("alice", data)
    const literalsOf = (file: string) => {
      const text = zlib.gunzipSync(fs.readFileSync(file)).toString("latin1")
      return lineLiterals(text).map((l) => text.slice(l.at, text.indexOf("\r\n", l.at)))
    }
    expect(literalsOf(data)).toEqual(["{233+}"])
    const sieveBefore = await Effect.runPromise(Effect.scoped(Effect.flatMap(openForRead(data), (r) => r.sieve())))
    const ours = await runOurs("ctl_backups", ["-C", server.conf, "-v", "compact", "alice"])
    expect(ours.code, ours.stdout + ours.stderr).toBe(0)
    expect(ours.stdout).toContain("combining chunks 1 and 2")
    expect(literalsOf(data)).toEqual(["{233}"])
    const sieveAfter = await Effect.runPromise(Effect.scoped(Effect.flatMap(openForRead(data), (r) => r.sieve())))
    expect(sieveAfter.map((x) => [x.filename, x.guid])).toEqual(sieveBefore.map((x) => [x.filename, x.guid]))
    chownIfRoot(server.dir)
    expect((await Effect.runPromise(verifyFile(data))).problems).toEqual([])
    const cv = await runTheirs("ctl_backups", ["-C", server.conf, "-F", "-f", "verify", data])
    expect(cv).toMatchObject({ code: 0, stdout: `verify ${data}: ok\n`, stderr: "" })
  }, 60_000)

  it("a staging area it cannot write fails the compaction and leaves the backup as it was (nothing dropped)", async () => {
    const server = makeServer("compact-nostage", ["backup_retention: 7d"])
    const data = path.join(server.partition, "a", "carol")
    const staging = path.join(server.dir, "stage")
    fs.mkdirSync(staging)
    await Effect.runPromise(buildBackup(data, staging))
    await server.record("carol@example.com", data)
    // A file where compaction's staging directory (<temp_path>/backup/sync.) must go.
    fs.mkdirSync(path.join(server.dir, "tmp", "backup"), { recursive: true })
    fs.writeFileSync(path.join(server.dir, "tmp", "backup", "sync."), "not a directory")
    chownIfRoot(server.dir)
    const before = { data: fs.readFileSync(data), index: fs.readFileSync(`${data}.index`) }
    const r = await runOurs("ctl_backups", ["-C", server.conf, "-F", "compact", "carol@example.com"])
    expect(r.code).toBe(75)
    expect(r.stdout).toBe("compact carol@example.com: failed (System I/O error)\n")
    expect(r.stderr).toMatch(/^carol@example.com: StagingFailed: .*ENOTDIR/)
    expect(r.stderr).not.toMatch(/internal error|    at /)
    expect(fs.readFileSync(data).equals(before.data)).toBe(true)
    expect(fs.readFileSync(`${data}.index`).equals(before.index)).toBe(true)
    expect(fs.readdirSync(path.dirname(data)).sort()).toEqual(["carol", "carol.index"])
    expect((await Effect.runPromise(verifyFile(data))).problems).toEqual([])
  }, 60_000)

  it("keep previous leaves the originals under timestamped names; a leftover .new is refused", async () => {
    const server = makeServer("compact-keep", ["backup_retention: 7d", "backup_keep_previous: yes"])
    const data = path.join(server.partition, "a", "carol")
    const staging = path.join(server.dir, "stage")
    fs.mkdirSync(staging)
    await Effect.runPromise(buildBackup(data, staging))
    await server.record("carol@example.com", data)
    chownIfRoot(server.dir)
    const original = fs.readFileSync(data)

    fs.writeFileSync(`${data}.new`, "")
    const refused = await runOurs("ctl_backups", ["-C", server.conf, "compact", "carol@example.com"])
    expect(refused.code).toBe(75)
    expect(refused.stdout).toMatch(/^compact carol@example.com: failed \(/)
    expect(fs.readFileSync(data).equals(original)).toBe(true)
    fs.rmSync(`${data}.new`)

    const ours = await runOurs("ctl_backups", ["-C", server.conf, "compact", "carol@example.com"])
    expect(ours).toMatchObject({ code: 0, stdout: "compact carol@example.com: ok\n" })
    const names = fs.readdirSync(path.dirname(data)).sort()
    expect(names).toHaveLength(4)
    const prevData = names.find((n) => /^carol\.\d+$/.test(n))!
    expect(fs.readFileSync(path.join(path.dirname(data), prevData)).equals(original)).toBe(true)
    expect(names).toContain(`carol.index.${prevData.slice("carol.".length)}`)
  }, 60_000)
})
