/**
 * Crash trials: a child appends to one backup and is killed with SIGKILL at a random moment
 * (often in the middle of an append: between the data write, fdatasync and COMMIT), again
 * and again. After every kill the backup opens (our recovery), still holds every append the
 * child acknowledged, and passes our full verify and the real `ctl_backups verify`.
 *
 * The child is bundled once with esbuild (the bundler vitest itself runs on) so each trial
 * costs one plain `node` start. Trials: CRASH_TRIALS (default 50).
 */
import { spawn } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { openForAppend } from "../../src/store/write/BackupWriter.js"
import { verifyFile } from "../../src/store/maintain/verify.js"
import { bundleEntry, lcg as prng } from "../support/bundle.js"
import { crashGuid } from "./support/crashSteps.js"
import { cyrusConf } from "./support.js"
import { chownForCyrus, haveCyrusTools, runCyrusTool, tempDir, warnNoCyrusTools } from "../support/cyrus.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.join(here, "..", "..")
const TRIALS = Number(process.env["CRASH_TRIALS"] ?? 50)

warnNoCyrusTools("the ctl_backups verify step of the crash trials (our own recovery and verify still run)")

/** The child script bundled (test/support/bundle.ts): it reaches its first append about 3x sooner. */
const buildChild = (): Promise<string> => bundleEntry(path.join("test", "store", "support", "crashAppender.ts"), "crashAppender")

interface TrialResult {
  readonly acked: ReadonlyArray<number>
  readonly stderr: string
}

/** Runs the child until `killAfter` acks (+ a random delay), then SIGKILLs it. */
const trial = (child: string, data: string, staging: string, start: number, killAfter: number, delayMs: number) =>
  Effect.async<TrialResult>((resume) => {
    const p = spawn(process.execPath, [child, data, staging, String(start)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    const acked: Array<number> = []
    let stderr = ""
    let pending = ""
    let armed = false
    const arm = () => {
      if (armed) return
      armed = true
      setTimeout(() => p.kill("SIGKILL"), delayMs)
    }
    p.stdout.on("data", (b: Buffer) => {
      pending += b.toString("latin1")
      const lines = pending.split("\n")
      pending = lines.pop() ?? ""
      for (const l of lines) {
        const m = /^ACK (\d+)$/.exec(l)
        if (m) acked.push(Number(m[1]))
        if ((l === "READY" && killAfter === 0) || acked.length >= killAfter) arm()
      }
    })
    p.stderr.on("data", (b: Buffer) => { stderr += b.toString("latin1") })
    const guard = setTimeout(() => p.kill("SIGKILL"), 20_000)
    p.on("exit", () => {
      clearTimeout(guard)
      resume(Effect.succeed({ acked, stderr }))
    })
  })

describe("crash trials", () => {
  it.effect(`SIGKILL at random points, ${TRIALS} times: recovery keeps every acknowledged append and verifies`, () =>
    Effect.acquireUseRelease(Effect.promise(buildChild), (child) => runTrials(child), (child) => Effect.sync(() => fs.rmSync(child, { force: true }))), 300_000)
})

const runTrials = (child: string) =>
    Effect.gen(function*() {
      const dir = tempDir("crash")
      const conf = haveCyrusTools ? cyrusConf(dir) : undefined
      const staging = path.join(dir, "staging")
      fs.mkdirSync(staging, { recursive: true })
      const data = path.join(dir, "backups", "crash")
      fs.mkdirSync(path.dirname(data), { recursive: true })
      const seed = Number(process.env["CRASH_SEED"] ?? Date.now() % 1_000_000)
      const rand = prng(seed)
      const acked: Array<number> = []
      let next = 0
      let midAppendKills = 0
      const started = Date.now()
      for (let t = 0; t < TRIALS; t++) {
        const killAfter = Math.floor(rand() * 6)
        const delayMs = Math.floor(rand() * 25)
        const r = yield* trial(child, data, staging, next, killAfter, delayMs)
        const where = `trial ${t} (seed ${seed}, kill after ${killAfter} acks + ${delayMs} ms)`
        expect(r.stderr, where).toBe("")
        acked.push(...r.acked)
        // The append in flight at the kill may or may not have committed: skip its number.
        next = (r.acked[r.acked.length - 1] ?? next - 1) + 2
        if (!fs.existsSync(`${data}.index`)) continue

        // Our recovery, then everything acknowledged so far must be there.
        const state = yield* Effect.scoped(
          Effect.gen(function*() {
            const w = yield* openForAppend(data)
            if (w.recovery.actions.includes("truncated")) midAppendKills++
            const subs = new Set((yield* w.reader.subscriptions()).map((s) => s.mboxname))
            const guids = new Set((yield* w.reader.messages()).map((m) => m.guid))
            const box = yield* w.reader.mailboxByUniqueid("crashbox0001", { withRecords: true })
            return { subs, guids, box }
          })
        )
        const ackedSet = new Set(acked)
        for (const n of acked) {
          if (n % 3 === 0) expect(state.guids.has(crashGuid(n)), `${where}: message of step ${n}`).toBe(true)
          if (n % 3 === 1) expect(state.subs.has(`user.crash.F${n}`), `${where}: SUB of step ${n}`).toBe(true)
          if (n % 3 === 2) {
            expect(state.box._tag, `${where}: mailbox of step ${n}`).toBe("Some")
            if (state.box._tag === "Some") {
              expect(Number(state.box.value.highestmodseq) >= n, `${where}: MAILBOX of step ${n}`).toBe(true)
              // (its message, step n - 2, may have been skipped after a kill: then Cyrus drops the record)
              if (ackedSet.has(n - 2)) expect(state.box.value.records.some((x) => x.uid === n - 1), `${where}: record of step ${n}`).toBe(true)
            }
          }
        }
        const v = yield* verifyFile(data)
        expect(v.problems, where).toEqual([])
        if (conf !== undefined) {
          chownForCyrus(dir)
          const c = yield* Effect.promise(() => runCyrusTool("ctl_backups", ["-C", conf, "-F", "-f", "verify", data]))
          expect(c.code, `${where}: ${c.stdout}${c.stderr}`).toBe(0)
        }
      }
      console.log(
        `crash trials: ${TRIALS} kills in ${((Date.now() - started) / 1000).toFixed(1)} s, ${acked.length} acknowledged appends, ` +
          `${midAppendKills} kills left an unacknowledged partial append (seed ${seed})`
      )
      expect(acked.length).toBeGreaterThan(0)
    })
