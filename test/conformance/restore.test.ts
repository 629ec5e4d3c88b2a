/**
 * Restore reproduces the model: after a model-generated sync into an in-process backupd, our
 * `restore -U -D -a` sends the backup to a recorder of our own (a tiny fake sync_server on a
 * UNIX socket: no authentication, `OK success` to everything, every GUID of a RESERVE
 * reported MISSING) and the recorded RESTORE MAILBOX commands must carry exactly the model's
  * mailboxes (live ones and those removed by UNMAILBOX, which `-a` restores too) and records, and every message the records need must have been uploaded.
 * Runs: CYB_RESTORE_RUNS (default 5; CYB_LONG=1 → 30). No Cyrus needed.
 */
import { spawn } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { makeInProcessServer, makeServerRoot, type InProcessServer } from "./support/inProcess.js"
import { applyOp, mailboxLine, newModel, opArb, type ModelMailbox } from "./support/model.js"
import { REPO } from "./support/processes.js"
import { report, since } from "./support/report.js"
import { recorder } from "../support/syncRecorder.js"

const LONG = process.env["CYB_LONG"] === "1"
const RUNS = Number(process.env["CYB_RESTORE_RUNS"] ?? (LONG ? 30 : 5))

const runRestore = (conf: string, socketPath: string, userid: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, "bin", "restore"), "-C", conf, "-U", "-D", "-a", socketPath, userid], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("latin1")))
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("latin1")))
    const t = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("close", (code) => (clearTimeout(t), resolve({ code, stdout, stderr })))
  })

let server: InProcessServer
beforeAll(async () => {
  server = await makeInProcessServer(makeServerRoot("restore"))
})
afterAll(async () => {
  await server?.dispose()
  if (server && process.env["CYB_KEEP"] !== "1") fs.rmSync(server.root.root, { recursive: true, force: true })
})

describe("restore of the model's final state to a recording sync server", () => {
  it(`restore -U -D -a sends back exactly the model's mailboxes, records and messages (${RUNS} runs)`, async () => {
    const started = Date.now()
    let namesReused = 0
    let mailboxesChecked = 0
    let recordsChecked = 0
    const plans = fc.sample(fc.array(opArb, { minLength: 12, maxLength: 30 }), { numRuns: RUNS, seed: 1 })
    for (const [i, ops] of plans.entries()) {
      const userid = `r${i}`
      const model = newModel(userid)
      const session = server.open()
      // Names that ever belonged to two mailboxes (delete then re-create): restore, like Cyrus's
      // (my_mailbox_list_add), merges such rows into one entry; compared separately below.
      const owners = new Map<string, Set<string>>()
      const lastSeen = new Map<string, ModelMailbox>()
      for (const op of ops) {
        for (const step of applyOp(model, op)) expect(await session.command(step.command)).toEqual(step.expect)
        for (const m of model.mailboxes) {
          owners.set(m.name, (owners.get(m.name) ?? new Set()).add(m.uniqueid))
          lastSeen.set(m.uniqueid, structuredClone(m))
        }
      }
      // -a restores mailboxes removed by UNMAILBOX too (their index rows stay, marked deleted).
      const everything = [...lastSeen.values()]
      const reused = new Set([...owners].filter(([, ids]) => ids.size > 1).map(([n]) => n))
      namesReused += reused.size
      await session.close()
      if (everything.length === 0) continue
      const socketPath = path.join(server.root.root, `recorder-${i}.sock`)
      const rec = await recorder(socketPath)
      try {
        const r = await runRestore(server.root.conf, socketPath, userid)
        expect(r.code, `restore: ${r.stderr}${r.stdout}`).toBe(0)
      } finally {
        await rec.close()
      }
      const nameOf = (dl: string) => /MBOXNAME (".*?"|\S+)/.exec(dl)![1]!.replace(/^"(.*)"$/, "$1")
      const restoredAll = rec.commands.filter((c) => c.startsWith("RESTORE MAILBOX ")).map((c) => c.slice("RESTORE MAILBOX ".length))
      const restored = restoredAll.filter((dl) => !reused.has(nameOf(dl))).sort()
      const expected = everything.filter((m) => !reused.has(m.name)).map((m) => mailboxLine(m, userid, true).slice("* MAILBOX ".length)).sort()
      // A reused name is still restored once, holding the live mailbox's records among others.
      for (const m of model.mailboxes.filter((x) => reused.has(x.name))) {
        const entry = restoredAll.filter((dl) => nameOf(dl) === m.name)
        expect(entry.length, `run ${i}: ${m.name} restored once`).toBe(1)
        for (const r of m.records) expect(entry[0]).toContain(`GUID ${r.guid}`)
      }
      expect(restored, `run ${i}: restored mailboxes`).toEqual(expected)
      mailboxesChecked += expected.length
      recordsChecked += model.mailboxes.reduce((n, m) => n + m.records.length, 0)
      // Every GUID a restored record names was uploaded (or announced present, never here).
      const uploaded = new Set(rec.commands.flatMap((c) => [...c.matchAll(/%\{\S+ ([0-9a-f]{40}) \d+\}/g)].map((m) => m[1]!)))
      const needed = new Set(model.mailboxes.flatMap((m) => m.records.map((r) => r.guid)))
      expect([...needed].filter((g) => !uploaded.has(g)), `run ${i}: messages never uploaded`).toEqual([])
    }
    console.info(`restore: ${mailboxesChecked} mailboxes, ${recordsChecked} records restored as the model says; ${namesReused} reused names`)
    report({
      id: "restore",
      file: "restore.test.ts",
      what: "restore -U -D -a of model states to a recording sync server",
      trials: RUNS,
      unit: "runs",
      details: `${mailboxesChecked} mailboxes and ${recordsChecked} records restored as the model says; ${namesReused} reused names merged as Cyrus does`,
      seconds: since(started)
    })
    expect(mailboxesChecked).toBeGreaterThan(0)
  }, 300_000)
})
