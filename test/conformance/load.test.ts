/**
 * Load: 20 concurrent sync sessions (our backupd `-X` processes sharing one backups.db and
 * partition) for 20 users, each a model-generated sync whose every answer is checked, then a
 * final GET per user; and two sessions on the same user: the second gets
 * `NO IMAP_MAILBOX_LOCKED Mailbox locked`, as from the C backupd (checked on it too), and
 * nothing the first stored is lost. Sessions: CYB_LOAD_SESSIONS (default 20).
 */
import fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { bundledBackupd } from "./support/bundle.js"
import { makeServerRoot, type ServerRoot } from "./support/inProcess.js"
import { applyOp, expectedUser, newModel, normaliseLines, opArb } from "./support/model.js"
import { chownToCyrus, cyrusSkipReason, splitAnswers, startSession, warnSkip, type Impl } from "./support/processes.js"
import { report, since } from "./support/report.js"

const SESSIONS = Number(process.env["CYB_LOAD_SESSIONS"] ?? 20)
const skip = cyrusSkipReason() !== undefined
warnSkip("load test (sessions run as cyrus)")

const roots: Array<ServerRoot> = []
const counted = { answers: 0, sameUser: 0, loadSeconds: 0 }
let script: string
beforeAll(async () => {
  if (!skip) script = await bundledBackupd()
})
afterAll(() => {
  if (process.env["CYB_KEEP"] !== "1") for (const r of roots) fs.rmSync(r.root, { recursive: true, force: true })
})
const freshRoot = (label: string) => {
  const r = makeServerRoot(label)
  chownToCyrus(r)
  roots.push(r)
  return r
}

const run = async (impl: Impl, root: ServerRoot, input: string) => {
  const s = startSession(impl, root.conf, impl === "ours" ? script : undefined)
  s.child.stdin!.end(Buffer.from(input, "latin1"))
  const r = await s.done
  return { ...r, answers: splitAnswers(r.stdout) }
}

describe.skipIf(skip)("load", () => {
  it(`${SESSIONS} concurrent syncs of different users: every answer as the model says, nothing lost`, async () => {
    const root = freshRoot("load")
    const plans = fc.sample(fc.array(opArb, { minLength: 5, maxLength: 12 }), { numRuns: SESSIONS, seed: 0x10ad })
    const started = Date.now()
    await Promise.all(
      plans.map(async (ops, i) => {
        const model = newModel(`load${i}`)
        const steps = ops.flatMap((op) => applyOp(model, op))
        const input = steps.map((s) => s.command + "\r\n").join("") + `GET USER load${i}\r\nEXIT\r\n`
        const r = await run("ours", root, input)
        expect(r.code, r.stderr).toBe(0)
        steps.forEach((s, k) => expect(r.answers[k], `session ${i} step ${k}`).toEqual(s.expect))
        counted.answers += steps.length + 1
        expect(normaliseLines(r.answers[steps.length]!)).toEqual(normaliseLines(expectedUser(model)))
        expect(r.answers[steps.length]![r.answers[steps.length]!.length - 1]).toBe("OK Success")
      })
    )
    counted.loadSeconds = since(started)
    console.info(`load: ${SESSIONS} concurrent sessions in ${counted.loadSeconds} s`)
  })

  for (const impl of ["c", "ours"] as const) {
    it(`two sessions on one user (${impl === "c" ? "C backupd" : "ours"}): the second gets NO IMAP_MAILBOX_LOCKED, nothing is lost`, async () => {
      const root = freshRoot(`lock-${impl}`)
      const first = startSession(impl, root.conf, impl === "ours" ? script : undefined)
      const mailbox = `APPLY MAILBOX %(UNIQUEID same1 MBOXNAME user.same LAST_UID 0 HIGHESTMODSEQ 1 RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 UIDVALIDITY 9 PARTITION default ACL "same\tlrs\t" OPTIONS P RECORD ())\r\n`
      first.child.stdin!.write(mailbox)
      // Wait until the first session answered: it now holds the backup open (and locked).
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`first session said: ${first.out()}`)), 30_000)
        const poll = setInterval(() => {
          if (splitAnswers(first.out()).length >= 1) (clearInterval(poll), clearTimeout(t), resolve())
        }, 20)
      })
      expect(splitAnswers(first.out())[0]).toEqual(["OK Success"])
      const second = await run(impl, root, "APPLY SUB %(USERID same MBOXNAME user.same)\r\nGET FULLMAILBOX user.same\r\nEXIT\r\n")
      expect(second.answers).toEqual([["NO IMAP_MAILBOX_LOCKED Mailbox locked"], ["NO IMAP_MAILBOX_LOCKED Mailbox locked"], ["OK Finished"]])
      first.child.stdin!.end("APPLY SUB %(USERID same MBOXNAME user.same)\r\nEXIT\r\n")
      const done = await first.done
      expect(splitAnswers(done.stdout)).toEqual([["OK Success"], ["OK Success"], ["OK Finished"]])
      const after = await run(impl, root, "GET USER same\r\nEXIT\r\n")
      expect(after.answers[0]!.some((l) => l.startsWith("* MAILBOX %(UNIQUEID same1 MBOXNAME user.same "))).toBe(true)
      expect(after.answers[0]).toContain("* LSUB (user.same)")
      counted.sameUser += 1
    })
  }

  it("reports its figures", () => {
    expect(counted.sameUser).toBe(2)
    report({
      id: "load",
      file: "load.test.ts",
      what: "concurrent sessions on different users; two on one user",
      trials: SESSIONS,
      unit: "concurrent sessions + 2 same-user pairs (C and ours)",
      details: `${counted.answers} answers equal to the model; the second same-user session got NO IMAP_MAILBOX_LOCKED from both`,
      seconds: counted.loadSeconds
    })
  })
})
