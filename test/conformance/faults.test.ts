/**
 * Fault injection against our backupd as a process (`-X` on pipes, as user cyrus):
 *  - SIGKILL at random points of model-generated syncs (CYB_KILL_TRIALS, default 20; CYB_LONG=1 → 100);
 *  - a full disk during APPLY MESSAGE (RLIMIT_FSIZE via prlimit: the write fails with EFBIG or
 *    the process gets SIGXFSZ);
 *  - an unreadable and a corrupted index;
 *  - a backup held by the real `ctl_backups lock`;
 *  - a client that disconnects in the middle of a literal.
 * Every case: the client gets a NO or the connection drops; every acknowledged change is still
 * there; the backup passes our full verify and the real `ctl_backups verify`; the next sync completes.
 */
import { spawn, spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { reindexFile } from "../../src/store/maintain/reindex.js"
import { verifyFile } from "../../src/store/maintain/verify.js"
import { lcg as prng } from "../support/bundle.js"
import { bundledBackupd } from "./support/bundle.js"
import { dataFiles, listFiles, makeServerRoot, type ServerRoot } from "./support/inProcess.js"
import { applyOp, expectedUser, mailboxLine, newModel, normaliseLines, opArb, type ModelState, type Step } from "./support/model.js"
import { chownToCyrus, cyrusSkipReason, runTool, splitAnswers, startSession, warnSkip } from "./support/processes.js"
import { report, since } from "./support/report.js"

const LONG = process.env["CYB_LONG"] === "1"
const TRIALS = Number(process.env["CYB_KILL_TRIALS"] ?? (LONG ? 100 : 20))
const SEED = Number(process.env["CYB_KILL_SEED"] ?? 0xdead)
/** Full-disk trials on a small tmpfs, each filling it at a different point of the upload. */
const ENOSPC_TRIALS = Number(process.env["CYB_ENOSPC_TRIALS"] ?? (LONG ? 40 : 9))
const LOCK_TRIALS = LONG ? 5 : 1
const CUT_TRIALS = LONG ? 30 : 4
const skip = cyrusSkipReason() !== undefined
warnSkip("fault injection (needs root and ctl_backups; ours runs as cyrus)")

/** A tmpfs of `bytes` (rounded up to pages) at `dir`; throws with mount's words when refused. */
const mountTmpfs = (dir: string, bytes: number) => {
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "cyb-enospc", dir], { encoding: "utf8" })
  if (r.status !== 0) throw new Error(`mount -t tmpfs ${dir}: ${r.stderr || r.error?.message}`)
}
const remountTmpfs = (dir: string, bytes: number) => {
  const r = spawnSync("mount", ["-o", `remount,size=${Math.ceil(bytes / 4096) * 4096}`, dir], { encoding: "utf8" })
  if (r.status !== 0) throw new Error(`remount ${dir} to ${bytes} bytes: ${r.stderr}`)
}
/** Why the real-filesystem full-disk case cannot run here (mounting needs CAP_SYS_ADMIN). */
const tmpfsSkip = ((): string | undefined => {
  if (skip) return cyrusSkipReason()
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), "cybconf-mountprobe-"))
  try {
    mountTmpfs(probe, 1 << 20)
    spawnSync("umount", [probe])
    return undefined
  } catch (e) {
    return (e as Error).message.trim()
  } finally {
    fs.rmdirSync(probe)
  }
})()
if (!skip && tmpfsSkip !== undefined)
  console.warn(`!!! SKIPPING the full-disk case on a real small filesystem: ${tmpfsSkip}. The RLIMIT_FSIZE case still runs.`)

let root: ServerRoot
let script: string
beforeAll(async () => {
  if (skip) return
  root = makeServerRoot("faults")
  chownToCyrus(root)
  script = await bundledBackupd()
})
afterAll(() => {
  if (root && process.env["CYB_KEEP"] !== "1") fs.rmSync(root.root, { recursive: true, force: true })
})


/** Runs a whole conversation with our backupd; resolves with its answers. */
const session = async (input: string, wrap: ReadonlyArray<string> = [], on: ServerRoot = root) => {
  const s = startSession("ours", on.conf, script, wrap)
  s.child.stdin!.end(Buffer.from(input, "latin1"))
  const r = await s.done
  return { ...r, answers: splitAnswers(r.stdout) }
}

const dataFileOf = (userid: string, on: ServerRoot = root) => dataFiles(on.backups).find((f) => path.basename(f).startsWith(`${userid}_`))

/** Our full verify and the real ctl_backups verify of one user's backup. */
const verifyBoth = async (userid: string, on: ServerRoot = root) => {
  const data = dataFileOf(userid, on)
  if (data === undefined) return
  const ours = await Effect.runPromise(verifyFile(data, { level: "full", wait: true }))
  expect(ours.problems, `our verify of ${userid}`).toEqual([])
  const c = await runTool("ctl_backups", ["-C", on.conf, "-w", "verify", "-u", userid])
  expect(c.code, `ctl_backups verify -u ${userid}: ${c.stdout}${c.stderr}`).toBe(0)
  cVerifyPasses += 1
}
let cVerifyPasses = 0

/** What the queries of `querySteps` answer when the backup holds `model`'s state. */
const queries = (m: ModelState) => {
  const names = m.mailboxes.map((x) => mailboxLine(x, m.userid, false).match(/MBOXNAME (".*?"|\S+)/)![1]!)
  return {
    input: `GET USER ${m.userid}\r\n` + names.map((n) => `GET FULLMAILBOX ${n}\r\n`).join(""),
    expected: [normaliseLines(expectedUser(m)), ...m.mailboxes.map((x) => [mailboxLine(x, m.userid, true)])]
  }
}

const snapshot = (m: ModelState): ModelState => structuredClone(m)

describe.skipIf(skip)("fault injection", () => {
  it(`SIGKILL at random points of a sync (${TRIALS} trials): acknowledged changes survive, verify passes, the next sync completes`, async () => {
    const rand = prng(SEED)
    const plans = fc.sample(fc.array(opArb, { minLength: 6, maxLength: 14 }), { numRuns: TRIALS, seed: SEED })
    let killsMidSync = 0
    let acknowledged = 0
    const started = Date.now()
    const trial = async (n: number) => {
      const userid = `k${n}`
      const model = newModel(userid)
      // States after each op, and the steps of each op.
      const states: Array<ModelState> = [snapshot(model)]
      const opSteps: Array<Array<Step>> = []
      for (const op of plans[n]!) {
        opSteps.push(applyOp(model, op))
        states.push(snapshot(model))
      }
      const all = opSteps.flat()
      const killAfter = Math.floor(rand() * (all.length + 1))
      const delay = Math.floor(rand() * 40)
      const s = startSession("ours", root.conf, script)
      let armed = false
      const acked = () => splitAnswers(s.out()).length
      s.child.stdout!.on("data", () => {
        if (!armed && acked() >= killAfter) {
          armed = true
          setTimeout(() => s.child.kill("SIGKILL"), delay)
        }
      })
      s.child.stdin!.end(Buffer.from(all.map((x) => x.command + "\r\n").join(""), "latin1"))
      const done = await s.done
      const answers = splitAnswers(done.stdout)
      if (done.signal === "SIGKILL" && answers.length < all.length) killsMidSync += 1
      // Every answer the client saw is the one the model predicts.
      answers.forEach((a, i) => expect(a, `trial ${n} step ${i}`).toEqual(all[i]!.expect))
      // j = ops fully acknowledged; the backup holds the state after op j or op j+1 (in flight).
      let j = 0
      for (let seen = 0; j < opSteps.length && seen + opSteps[j]!.length <= answers.length; j++) seen += opSteps[j]!.length
      // (No verify here: a kill mid-append leaves an uncommitted tail that the next open cuts off.)
      if (answers.length === 0 && dataFileOf(userid) === undefined) return
      const candidates = [states[j]!, ...(j + 1 < states.length ? [states[j + 1]!] : [])]
      // One session: the queries for each candidate, the rest of the sync (from op j+1), the final queries.
      const qs = candidates.map(queries)
      const resume = opSteps.slice(j)
      const final = queries(states[states.length - 1]!)
      const r = await session(qs.map((q) => q.input).join("") + resume.flat().map((x) => x.command + "\r\n").join("") + final.input + "EXIT\r\n")
      expect(r.code, r.stderr).toBe(0)
      let at = 0
      const take = (k: number) => r.answers.slice(at, (at += k))
      const seenStates = qs.map((q) =>
        take(q.expected.length).map((a, i) => (i === 0 ? normaliseLines(a) : a.filter((l) => l.startsWith("* "))))
      )
      acknowledged += answers.length
      expect(
        seenStates.some((got, i) => JSON.stringify(got) === JSON.stringify(qs[i]!.expected)),
        `trial ${n}: after the kill the backup holds neither the state after op ${j} nor after op ${j + 1}:\n${JSON.stringify(seenStates, null, 1).slice(0, 3000)}`
      ).toBe(true)
      // Re-sending the op that was in flight may meet its effect already stored; after it, all OK.
      const resumed = take(resume.flat().length)
      const firstOp = resume[0]?.length ?? 0
      resumed.slice(firstOp).forEach((a) => expect(a[a.length - 1], `trial ${n} resumed`).toBe("OK Success"))
      const got = take(final.expected.length).map((a, i) => (i === 0 ? normaliseLines(a) : a.filter((l) => l.startsWith("* "))))
      expect(got, `trial ${n}: final state after the resumed sync`).toEqual(final.expected)
      await verifyBoth(userid)
    }
    // Two trials at a time (distinct users, one shared backups.db).
    for (let n = 0; n < TRIALS; n += 2) await Promise.all([trial(n), ...(n + 1 < TRIALS ? [trial(n + 1)] : [])])
    console.info(`kill trials: ${TRIALS}, killed mid-sync: ${killsMidSync}; ctl_backups verify passed ${cVerifyPasses}`)
    expect(killsMidSync).toBeGreaterThan(TRIALS / 4)
    report({
      id: "fault-kill",
      file: "faults.test.ts",
      what: "SIGKILL at a random point of a sync",
      trials: TRIALS,
      unit: "trials",
      faults: killsMidSync,
      committedChecked: acknowledged,
      committedLost: 0,
      details: `after each: the state after the last acknowledged change (or the one in flight), the resumed sync completes; real ctl_backups verify passed ${cVerifyPasses}`,
      seconds: since(started)
    })
  }, 900_000)

  const message = (bytes: number) => {
    // Incompressible, so the data file really grows by about its size.
    const body = `From: fault@example.com\r\nSubject: big\r\n\r\n${randomBytes(bytes).toString("base64")}\r\n`
    return { body, guid: createHash("sha1").update(body, "latin1").digest("hex") }
  }
  const mailboxWith = (userid: string, records: ReadonlyArray<{ uid: number; guid: string; size: number }>) =>
    `APPLY MAILBOX %(UNIQUEID f${userid} MBOXNAME user.${userid} LAST_UID ${records.length} HIGHESTMODSEQ ${records.length + 1} RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 UIDVALIDITY 7 PARTITION default ACL "${userid}\tlrs\t" OPTIONS P RECORD (${records
      .map((r) => `%(UID ${r.uid} MODSEQ ${r.uid + 1} LAST_UPDATED 1 FLAGS () INTERNALDATE 1 SIZE ${r.size} GUID ${r.guid})`)
      .join(" ")}))\r\n`
  const upload = (userid: string, m: { body: string; guid: string }) =>
    `APPLY RESERVE %(PARTITION default MBOXNAME (user.${userid}) GUID (${m.guid}))\r\nAPPLY MESSAGE (%{default ${m.guid} ${m.body.length}}\r\n${m.body})\r\n`
  const fullMailbox = (userid: string) => `GET FULLMAILBOX user.${userid}\r\n`

  it("a full disk (RLIMIT_FSIZE) during APPLY MESSAGE: NO or a dropped connection, nothing lost, the next sync completes", async () => {
    const started = Date.now()
    const userid = "fsz"
    const first = message(2000)
    const r1 = await session(upload(userid, first) + mailboxWith(userid, [{ uid: 1, guid: first.guid, size: first.body.length }]) + "EXIT\r\n")
    expect(r1.answers.map((a) => a[a.length - 1])).toEqual(["OK Success", "OK Success", "OK Success", "OK Finished"])
    const size = fs.statSync(dataFileOf(userid)!).size
    const big = message(200_000)
    const r2 = await session(upload(userid, big) + mailboxWith(userid, [{ uid: 1, guid: first.guid, size: first.body.length }, { uid: 2, guid: big.guid, size: big.body.length }]), [
      "prlimit",
      `--fsize=${size + 4096}`,
      "--"
    ])
    const finals = r2.answers.map((a) => a[a.length - 1]!)
    // The upload must not be acknowledged: a NO, or the connection dropped before its answer.
    expect(finals[1] === undefined || finals[1].startsWith("NO"), `answers under the limit: ${JSON.stringify(finals)} ${r2.stderr.slice(0, 500)}`).toBe(true)
    await verifyBoth(userid)
    const r3 = await session(fullMailbox(userid))
    expect(r3.answers[0]!.join("\n")).toContain(first.guid)
    const r4 = await session(upload(userid, big) + mailboxWith(userid, [{ uid: 1, guid: first.guid, size: first.body.length }, { uid: 2, guid: big.guid, size: big.body.length }]) + fullMailbox(userid))
    expect(r4.answers.slice(-4).map((a) => a[a.length - 1])).toEqual(["OK Success", "OK Success", "OK Success", "OK Success"])
    expect(r4.answers[r4.answers.length - 1]!.join("\n")).toContain(big.guid)
    await verifyBoth(userid)
    report({
      id: "fault-fsize",
      file: "faults.test.ts",
      what: "file size limit (RLIMIT_FSIZE) reached during APPLY MESSAGE",
      trials: 1,
      unit: "trial",
      faults: 1,
      committedChecked: 1,
      committedLost: 0,
      details: `answers under the limit: ${finals.join(", ") || "connection dropped"}; both verifies passed; the same upload completed once the limit was gone`,
      seconds: since(started)
    })
  })

  it.skipIf(tmpfsSkip !== undefined)(
    `a full disk (a small tmpfs holding partition, staging and backups.db; ${ENOSPC_TRIALS} fill points): NO or a dropped connection, nothing lost, the next sync completes`,
    async () => {
      const started = Date.now()
      const mnt = fs.mkdtempSync(path.join(os.tmpdir(), "cybconf-enospc-mnt-"))
      const roomy = 16 << 20
      mountTmpfs(mnt, roomy)
      try {
        const small = makeServerRoot("enospc", "", mnt)
        chownToCyrus(small)
        const used = () => {
          const st = fs.statfsSync(mnt)
          return (st.blocks - st.bfree) * st.bsize
        }
        const rand = prng(SEED ^ 0xf011)
        const big = message(100_000)
        // What one upload of `big` needs at its peak: the staged literal, then the data file's
        // growth and the index pages while the staged file still exists. Sampled on a probe user.
        const staged = big.body.length
        const probe = message(2000)
        await session(upload("fdprobe", probe) + mailboxWith("fdprobe", [{ uid: 1, guid: probe.guid, size: probe.body.length }]) + "EXIT\r\n", [], small)
        const before = used()
        let peak = before
        const sampler = setInterval(() => void (peak = Math.max(peak, used())), 1)
        const p2 = await session(
          upload("fdprobe", big) + mailboxWith("fdprobe", [{ uid: 1, guid: probe.guid, size: probe.body.length }, { uid: 2, guid: big.guid, size: big.body.length }]) + "EXIT\r\n",
          [],
          small
        )
        expect(p2.answers.map((a) => a[a.length - 1]).slice(1)).toEqual(["OK Success", "OK Success", "OK Finished"])
        clearInterval(sampler)
        const need = Math.max(peak, used()) - before
        // Fill points: nothing left; half the literal staged; the data file half written; the
        // last pages (index, journal, the new user's files and backups.db entry); and room.
        const fixed = [0, staged / 2, staged + (need - staged) / 2, need - 12_288, need - 8192, need - 4096, need, need + 16_384, need + 131_072]
        const slacks = Array.from({ length: ENOSPC_TRIALS }, (_, t) =>
          Math.max(0, Math.floor(t < fixed.length ? fixed[t]! : rand() * (need + 65_536)))
        )
        let refused = 0
        let checked = 0
        const outcomes: Record<string, number> = {}
        const phases: Record<string, number> = {}
        for (const [t, slack] of slacks.entries()) {
          const userid = `fd${t}`
          const newcomer = `fdn${t}`
          const first = message(2000)
          const firstRecord = { uid: 1, guid: first.guid, size: first.body.length }
          const bigRecord = { uid: 2, guid: big.guid, size: big.body.length }
          const r1 = await session(upload(userid, first) + mailboxWith(userid, [firstRecord]) + "EXIT\r\n", [], small)
          expect(r1.answers.map((a) => a[a.length - 1]), r1.stderr).toEqual(["OK Success", "OK Success", "OK Success", "OK Finished"])
          // The disk now has `slack` bytes left (rounded up to a page).
          remountTmpfs(mnt, used() + slack)
          const r2 = await session(
            upload(userid, big) + mailboxWith(userid, [firstRecord, bigRecord]) + mailboxWith(newcomer, []) + fullMailbox(userid) + "EXIT\r\n",
            [],
            small
          )
          remountTmpfs(mnt, roomy)
          // Full or not, backupd answers or closes: it never dies of it.
          expect(r2.code, `fill point ${slack}: ${r2.stderr.slice(0, 2000)}`).toBe(0)
          const finals = r2.answers.map((a) => a[a.length - 1]!)
          if (process.env["CYB_DEBUG_ENOSPC"]) console.info(JSON.stringify({ slack, out: r2.stdout.slice(0, 3000), err: r2.stderr.slice(0, 3000) }))
          const key = finals.slice(0, 4).map((f) => (f === undefined ? "dropped" : f.split(" ").slice(0, 2).join(" "))).join(" / ")
          outcomes[key] = (outcomes[key] ?? 0) + 1
          // Where the disk ran out, as backupd logged it.
          for (const l of r2.stderr.split("\n").filter((x) => x.includes("IOERROR"))) {
            const where = /staging/.test(l) ? "staging" : /Index/.test(l) ? "index" : /backups\.db|Locate/.test(l) ? "backups.db" : "data file"
            phases[where] = (phases[where] ?? 0) + 1
          }
          for (const f of finals) expect(f, `fill point ${slack}: ${JSON.stringify(finals)}`).toMatch(/^(OK|NO) /)
          const bigAcked = finals[1] === "OK Success" && finals[2] === "OK Success"
          const newcomerAcked = finals[3] === "OK Success"
          if (!(bigAcked && newcomerAcked)) refused += 1
          // Whatever was acknowledged is there, and nothing else of the failed upload is half-stored.
          const q = await session(fullMailbox(userid) + `GET USER ${newcomer}\r\nEXIT\r\n`, [], small)
          const box = q.answers[0]!.join("\n")
          expect(box, `fill point ${slack}`).toContain(first.guid)
          if (bigAcked) expect(box, `fill point ${slack}`).toContain(big.guid)
          if (newcomerAcked) expect(q.answers[1]!.join("\n"), `fill point ${slack}`).toContain(`MBOXNAME user.${newcomer} `)
          checked += 1 + (bigAcked ? 1 : 0) + (newcomerAcked ? 1 : 0)
          await verifyBoth(userid, small)
          await verifyBoth(newcomer, small)
          expect(listFiles(small.staging), `fill point ${slack}: staged files left`).toEqual([])
          // With room again, the same sync completes.
          const r3 = await session(upload(userid, big) + mailboxWith(userid, [firstRecord, bigRecord]) + mailboxWith(newcomer, []) + fullMailbox(userid) + "EXIT\r\n", [], small)
          expect(r3.answers.slice(1).map((a) => a[a.length - 1]), `fill point ${slack}: ${r3.stderr}`).toEqual(["OK Success", "OK Success", "OK Success", "OK Success", "OK Finished"])
          expect(r3.answers[4]!.join("\n")).toContain(big.guid)
          await verifyBoth(userid, small)
          await verifyBoth(newcomer, small)
        }
        console.info(`full disk: upload needs ${need} bytes; ${slacks.length} fill points, ${refused} refused; outcomes ${JSON.stringify(outcomes)}; failed writes ${JSON.stringify(phases)}`)
        // The fill points must really fill the disk for most of them.
        expect(refused).toBeGreaterThanOrEqual(Math.ceil(slacks.length / 2))
        report({
          id: "fault-enospc",
          file: "faults.test.ts",
          what: "full disk (ENOSPC) on a small tmpfs during APPLY MESSAGE, the index update and a new user's backups.db entry",
          trials: slacks.length,
          unit: "fill points",
          faults: refused,
          committedChecked: checked,
          committedLost: 0,
          details: `answers to RESERVE / MESSAGE / MAILBOX / new user's MAILBOX: ${Object.entries(outcomes)
            .map(([k, n]) => `${k} ×${n}`)
            .join("; ")}; failed writes logged: ${Object.entries(phases)
            .map(([k, n]) => `${k} ×${n}`)
            .join(", ")}; both verifies passed, no staged file left; the same sync completed with room again`,
          seconds: since(started)
        })
      } finally {
        spawnSync("umount", [mnt])
        fs.rmdirSync(mnt)
      }
    },
    600_000
  )

  it("an unreadable and a corrupted index: NO, no crash, other users unaffected; after reindex the next sync completes", async () => {
    const started = Date.now()
    const m = message(500)
    const setup = (u: string) => upload(u, m) + mailboxWith(u, [{ uid: 1, guid: m.guid, size: m.body.length }])
    await session(setup("idxa") + setup("idxb") + "EXIT\r\n")
    const a = dataFileOf("idxa")!
    fs.chmodSync(`${a}.index`, 0o000)
    const r1 = await session("GET FULLMAILBOX user.idxa\r\nAPPLY SUB %(USERID idxa MBOXNAME user.idxa)\r\n" + fullMailbox("idxb"))
    expect(r1.code, r1.stderr).toBe(0)
    expect(r1.answers[0]![r1.answers[0]!.length - 1]).toMatch(/^NO /)
    expect(r1.answers[1]).toEqual(["NO Unknown error"])
    expect(r1.answers[2]!.join("\n")).toContain(m.guid)
    fs.chmodSync(`${a}.index`, 0o600)
    report({
      id: "fault-index-unreadable",
      file: "faults.test.ts",
      what: "unreadable index (mode 000)",
      trials: 1,
      unit: "trial",
      faults: 2,
      committedChecked: 2,
      committedLost: 0,
      details: "a GET and an APPLY got NO; the other user's backup answered in the same session",
      seconds: since(started)
    })
    const corruptStarted = Date.now()
    // Corrupt: garbage over the SQLite header.
    const fd = fs.openSync(`${a}.index`, "r+")
    fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 0)
    fs.closeSync(fd)
    const r2 = await session("APPLY SUB %(USERID idxa MBOXNAME user.idxa)\r\n" + fullMailbox("idxb"))
    expect(r2.code, r2.stderr).toBe(0)
    expect(r2.answers[0]).toEqual(["NO Unknown error"])
    expect(r2.answers[1]!.join("\n")).toContain(m.guid)
    // The data file is intact: a reindex rebuilds the index, and then all is well again.
    await Effect.runPromise(reindexFile(a, { keepPrevious: false }))
    spawnSync("chown", ["cyrus:mail", `${a}.index`])
    await verifyBoth("idxa")
    const r3 = await session("APPLY SUB %(USERID idxa MBOXNAME user.idxa)\r\n" + fullMailbox("idxa"))
    expect(r3.answers[0]).toEqual(["OK Success"])
    expect(r3.answers[1]!.join("\n")).toContain(m.guid)
    await verifyBoth("idxa")
    report({
      id: "fault-index-corrupt",
      file: "faults.test.ts",
      what: "corrupted index (4 KiB of garbage over the SQLite header)",
      trials: 1,
      unit: "trial",
      faults: 1,
      committedChecked: 2,
      committedLost: 0,
      details: "the APPLY got NO, the other user answered; reindex from the data file, then both verifies passed and the next sync completed",
      seconds: since(corruptStarted)
    })
  })

  it(`a backup held by the real ctl_backups lock (${LOCK_TRIALS} trials): NO IMAP_MAILBOX_LOCKED, and the next sync completes once released`, async () => {
    const started = Date.now()
    let refused = 0
    for (let t = 0; t < LOCK_TRIALS; t++) {
      const userid = `lck${t}`
      const m = message(300)
      await session(upload(userid, m) + mailboxWith(userid, [{ uid: 1, guid: m.guid, size: m.body.length }]) + "EXIT\r\n")
      // `lock -p` holds the lock until its stdin closes.
      const holder = spawn("/usr/bin/setpriv", ["--reuid=cyrus", "--regid=mail", "--init-groups", "--", "/usr/lib/cyrus/bin/ctl_backups", "-C", root.conf, "lock", "-p", "-u", userid], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      holder.stdout.resume()
      holder.stderr.resume()
      // Its "OK locked" sits in a pipe buffer until it exits: probe until our backupd sees the lock.
      let probes = 0
      for (;;) {
        const probe = await session(`APPLY SUB %(USERID ${userid} MBOXNAME user.${userid})\r\n`)
        if (probe.answers[0]?.[0] === "NO IMAP_MAILBOX_LOCKED Mailbox locked") break
        expect(probe.answers[0], "while ctl_backups takes the lock").toEqual(["OK Success"])
        expect((probes += 1), "ctl_backups lock never took the lock").toBeLessThan(50)
        await new Promise((r) => setTimeout(r, 100))
      }
      const r1 = await session(`APPLY SUB %(USERID ${userid} MBOXNAME user.${userid})\r\n` + fullMailbox(userid))
      expect(r1.answers[0]).toEqual(["NO IMAP_MAILBOX_LOCKED Mailbox locked"])
      expect(r1.answers[1]).toEqual(["NO IMAP_MAILBOX_LOCKED Mailbox locked"])
      refused += 2
      holder.stdin.end()
      await new Promise((resolve) => holder.on("close", resolve))
      const r2 = await session(`APPLY SUB %(USERID ${userid} MBOXNAME user.${userid})\r\n` + fullMailbox(userid))
      expect(r2.answers[0]).toEqual(["OK Success"])
      expect(r2.answers[1]!.join("\n")).toContain(m.guid)
      await verifyBoth(userid)
    }
    report({
      id: "fault-lock",
      file: "faults.test.ts",
      what: "backup held by the real `ctl_backups lock -p`",
      trials: LOCK_TRIALS,
      unit: LOCK_TRIALS === 1 ? "trial" : "trials",
      faults: refused,
      committedChecked: LOCK_TRIALS,
      committedLost: 0,
      details: "every command while locked: NO IMAP_MAILBOX_LOCKED; after release the sync completed and both verifies passed",
      seconds: since(started)
    })
  })

  it(`a client that disconnects in the middle of a literal (${CUT_TRIALS} cuts): nothing half-stored, the next sync completes`, async () => {
    const started = Date.now()
    const rand = prng(SEED ^ 0xc07)
    const first = message(300)
    await session(upload("cut", first) + mailboxWith("cut", [{ uid: 1, guid: first.guid, size: first.body.length }]) + "EXIT\r\n")
    const big = message(60_000)
    const whole = upload("cut", big)
    // Killed sessions of other tests may have left staged files (their pid's directory); ours must not.
    const stagedBefore = listFiles(root.staging)
    const literalStart = whole.indexOf("}\r\n") + 3
    const literalEnd = literalStart + big.body.length
    // In the message header, near its end, and at random points of the literal.
    const cuts = [literalStart + 10, literalEnd - 40]
    while (cuts.length < CUT_TRIALS) cuts.push(literalStart + Math.floor(rand() * big.body.length))
    for (const cutAt of cuts) {
      const r = await session(whole.slice(0, cutAt))
      expect(r.code, r.stderr).toBe(0)
      // The RESERVE is answered; the cut MESSAGE never gets an OK.
      expect(r.answers[0]).toEqual([`* MISSING (${big.guid})`, "OK Success"])
      expect(r.answers.slice(1).every((a) => !a[a.length - 1]!.startsWith("OK")), JSON.stringify(r.answers.slice(1))).toBe(true)
      await verifyBoth("cut")
      const check = await session(`APPLY RESERVE %(PARTITION default MBOXNAME (user.cut) GUID (${big.guid}))\r\n` + fullMailbox("cut"))
      expect(check.answers[0]).toEqual([`* MISSING (${big.guid})`, "OK Success"])
      expect(check.answers[1]!.join("\n")).toContain(first.guid)
    }
    expect(listFiles(root.staging)).toEqual(stagedBefore)
    const r = await session(whole + mailboxWith("cut", [{ uid: 1, guid: first.guid, size: first.body.length }, { uid: 2, guid: big.guid, size: big.body.length }]) + fullMailbox("cut"))
    expect(r.answers[r.answers.length - 1]!.join("\n")).toContain(big.guid)
    await verifyBoth("cut")
    report({
      id: "fault-disconnect",
      file: "faults.test.ts",
      what: "client disconnects in the middle of an APPLY MESSAGE literal",
      trials: cuts.length,
      unit: "cuts",
      faults: cuts.length,
      committedChecked: cuts.length,
      committedLost: 0,
      details: "no OK for the cut message, its GUID still MISSING, no staged file left, both verifies passed; the next upload completed",
      seconds: since(started)
    })
  })
})
