/**
 * Differential: the same conversations go to the C backupd 3.6.1 (`backupd -X`, as cyrus) and
 * to ours (`bin/backupd -X`); every answer line must match, and the real `cyr_backup list all`
 * must list both backups alike. Conversations: the recorded sync_client transcripts (all three,
 * in order, as separate sessions) and model-generated ones (CYB_DIFF_RUNS, default 4;
 * CYB_LONG=1 → 40), with the GETs sync_client uses after every change.
 *
 * Normalised, because they are documented deliberate differences or not ours to match:
 *  - the banner's version text;
 *  - RECORD order in GET FULLMAILBOX (docs/gaps.md G32: C has no ORDER BY, ours answers in UID order);
 *  - G14 (GETs create backups in C): only backups of users that got an APPLY are listed;
 *  - G6 (C ignores UNUSER; ours records the user's mailboxes, subscriptions and sieve scripts
 *    as gone): the generated conversations leave UNUSER out;
 *  - G3 (unreserved messages copied into every open backup) and G12 (non-admin logins) are
 *    not exercised: every APPLY MESSAGE here follows a RESERVE, and `-X` on a pipe is admin;
 *  - `cyr_backup` chunk rows: offsets, lengths, ratios and times depend on the clock and on
 *    compression, so only the number of chunks is compared there.
 */
import fs from "node:fs"
import { afterAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { clientStream } from "./support/corpus.js"
import { makeServerRoot, type ServerRoot } from "./support/inProcess.js"
import { applyOp, mailboxLine, newModel, opArb, type Op } from "./support/model.js"
import { chownToCyrus, converse, cyrusSkipReason, runTool, warnSkip, type Impl } from "./support/processes.js"
import { report, since } from "./support/report.js"

const LONG = process.env["CYB_LONG"] === "1"
const RUNS = Number(process.env["CYB_DIFF_RUNS"] ?? (LONG ? 40 : 4))
const SEED = Number(process.env["CYB_DIFF_SEED"] ?? 0xd1ff)
const skip = cyrusSkipReason() !== undefined
warnSkip("differential test against the C backupd")

const roots: Array<ServerRoot> = []
const started = Date.now()
const counted = { conversations: 0, answerLines: 0, clientBytes: 0, listings: 0 }
afterAll(() => {
  if (process.env["CYB_KEEP"] !== "1") for (const r of roots) fs.rmSync(r.root, { recursive: true, force: true })
})

const freshPair = (label: string): Record<Impl, ServerRoot> => {
  const pair = { c: makeServerRoot(`${label}-c`), ours: makeServerRoot(`${label}-ours`) }
  roots.push(pair.c, pair.ours)
  chownToCyrus(pair.c)
  chownToCyrus(pair.ours)
  return pair
}

/** Splits the body of a `RECORD (...)` list into its `%(...)` entries (quotes and nesting aware). */
const splitEntries = (s: string): Array<string> => {
  const out: Array<string> = []
  let depth = 0
  let start = -1
  let quoted = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (quoted) {
      if (c === "\\") i++
      else if (c === '"') quoted = false
      continue
    }
    if (c === '"') quoted = true
    else if (c === "(") {
      if (depth === 0) start = s.lastIndexOf("%", i) === i - 1 ? i - 1 : i
      depth++
    } else if (c === ")") {
      depth--
      if (depth === 0) out.push(s.slice(start, i + 1))
    }
  }
  return out
}

const normalise = (out: string): Array<string> =>
  out
    .replace(/^\* OK (\S+) Cyrus backup server .*\r\n/, "* OK $1 Cyrus backup server <version>\r\n")
    .split("\r\n")
    .map((line) => {
      const at = line.indexOf(" RECORD (")
      if (!line.startsWith("* MAILBOX ") || at < 0) return line
      const body = line.slice(at + " RECORD (".length, -2)
      return `${line.slice(0, at)} RECORD (${splitEntries(body).sort().join(" ")}))`
    })

const listing = async (root: ServerRoot, user: string) => {
  const r = await runTool("cyr_backup", ["-C", root.conf, "-u", user, "list", "all"])
  const lines = r.stdout.split("\n")
  return {
    code: r.code,
    chunks: lines.filter((l) => /^\s+\d+ \d+\t/.test(l)).length,
    mailboxes: lines.filter((l) => /^\S+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\S/.test(l)),
    messages: lines.filter((l) => /^[0-9a-f]{40}$/.test(l)),
    other: lines.filter((l) => !/^\s+\d+ \d+\t/.test(l) && !/^[0-9a-f]{40}$/.test(l) && !/^\S+\s+\d{4}-/.test(l))
  }
}

/** A model-generated conversation for two users, with the GETs after every change. */
const conversation = (opsA: ReadonlyArray<Op>, opsB: ReadonlyArray<Op>, tag: string) => {
  let input = ""
  const users: Array<string> = []
  for (const [userid, ops] of [[`d${tag}a`, opsA], [`d${tag}b`, opsB]] as const) {
    const model = newModel(userid)
    input += `GET USER ${userid}\r\n`
    // UNUSER is a deliberate difference (G6: C accepts it and keeps everything live).
    for (const op of ops.filter((o) => o.kind !== "unuser")) {
      const steps = applyOp(model, op)
      for (const step of steps) input += step.command + "\r\n"
      if (steps.length === 0) continue
      if (!users.includes(userid)) users.push(userid)
      input += `GET USER ${userid}\r\nGET META ${userid}\r\n`
      const names = model.mailboxes.map((m) => mailboxLine(m, userid, false).match(/MBOXNAME (".*?"|\S+)/)![1]!)
      if (names.length > 0) input += `GET MAILBOXES (${names.join(" ")})\r\n`
      for (const n of names) input += `GET FULLMAILBOX ${n}\r\n`
    }
    input += "RESTART\r\n"
  }
  return { input: input + "EXIT\r\n", users }
}

/**
 * `cyr_backup list all` of each user on both servers. With `g3`, the C backup may hold more:
 * messages of other users' (G3: unreserved uploads copied into every open backup) and more
 * chunks (G15: every open of a backup, even for a GET, writes a chunk); ours must then hold a
 * subset of C's messages, every one of C's extras must belong to another user's backup, and the
 * mailbox lists must be equal.
 */
const compareListings = async (pair: Record<Impl, ServerRoot>, users: ReadonlyArray<string>, g3 = false) => {
  counted.listings += users.length
  const lists = await Promise.all(users.map(async (u) => ({ u, c: await listing(pair.c, u), ours: await listing(pair.ours, u) })))
  const oursAll = new Set(lists.flatMap((l) => l.ours.messages))
  for (const { u, c, ours } of lists) {
    expect(c.code, `cyr_backup list all on the C backup of ${u}`).toBe(0)
    expect(ours.code, `cyr_backup list all of ${u}`).toBe(c.code)
    expect(ours.mailboxes, `mailboxes of ${u}`).toEqual(c.mailboxes)
    expect(ours.other, `cyr_backup list all of ${u}`).toEqual(c.other)
    if (!g3) {
      expect(ours.messages, `messages of ${u}`).toEqual(c.messages)
      expect(ours.chunks, `chunks of ${u}`).toBe(c.chunks)
      continue
    }
    expect(ours.chunks).toBeLessThanOrEqual(c.chunks)
    expect(ours.messages.filter((m) => !c.messages.includes(m)), `messages of ${u} missing from C's`).toEqual([])
    const extra = c.messages.filter((m) => !ours.messages.includes(m))
    expect(extra.filter((m) => !oursAll.has(m)), `C's extra messages of ${u} belong to nobody`).toEqual([])
  }
}

describe.skipIf(skip)("differential against the C backupd 3.6.1", () => {
  it("the recorded sync_client transcripts (3 sessions) answer alike and list alike", async () => {
    const pair = freshPair("diff-transcripts")
    for (const file of ["01_initial_allusers.backupd.log", "02_incremental_rolling.backupd.log", "03_incremental_allusers.backupd.log"]) {
      // COMPRESS would switch the pipe to DEFLATE; the recorded stream is the plaintext after it.
      const input = clientStream(file).replace(/^COMPRESS DEFLATE\r\n/, "")
      const [c, ours] = await Promise.all([converse("c", pair.c.conf, input), converse("ours", pair.ours.conf, input)])
      expect(c.code, `C backupd on ${file}: ${c.stderr}`).toBe(0)
      expect(normalise(ours.stdout), file).toEqual(normalise(c.stdout))
      counted.conversations += 1
      counted.answerLines += normalise(c.stdout).length
      counted.clientBytes += input.length
    }
    await compareListings(pair, ["alice", "bob", "carol"], true)
  }, 300_000)

  it(`model-generated conversations (${RUNS}) answer alike and list alike`, async () => {
    const samples = fc.sample(fc.tuple(fc.array(opArb, { minLength: 1, maxLength: 25 }), fc.array(opArb, { minLength: 1, maxLength: 25 })), {
      numRuns: RUNS,
      seed: SEED
    })
    for (const [i, [a, b]] of samples.entries()) {
      const pair = freshPair(`diff-model${i}`)
      const { input, users } = conversation(a, b, String(i))
      const [c, ours] = await Promise.all([converse("c", pair.c.conf, input), converse("ours", pair.ours.conf, input)])
      expect(c.code, `C backupd: ${c.stderr}`).toBe(0)
      expect(normalise(ours.stdout), `conversation ${i} (seed ${SEED})`).toEqual(normalise(c.stdout))
      counted.conversations += 1
      counted.answerLines += normalise(c.stdout).length
      counted.clientBytes += input.length
      await compareListings(pair, users)
    }
    report({
      id: "differential",
      file: "differential.test.ts",
      what: "the same conversations into the C backupd -X 3.6.1 and ours",
      trials: counted.conversations,
      unit: `conversations (3 recorded transcripts + ${RUNS} generated)`,
      details: `${(counted.clientBytes / 1e6).toFixed(2)} MB of client input; ${counted.answerLines} answer lines equal; ${counted.listings} cyr_backup listings alike`,
      seconds: since(started)
    })
  }, 1_800_000)
})
