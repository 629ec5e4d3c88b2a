/**
 * Interrupted syncs: the three recorded sync_client sessions (test/fixtures/transcripts: the
 * initial sync of three users; a rolling incremental with renames, a delayed delete and new
 * mail; a last incremental) are replayed into our backupd `-X` one after the other, and the
 * session under test is cut short: at a command boundary, inside a message or sieve literal, or
 * inside a command line, then `\r\nEXIT\r\n` (what a dropped connection, a killed sync_client or
 * a failed APPLY leaves). Every backup the cut session leaves must pass our full verify and the
 * real `ctl_backups verify`, wherever the cut fell.
 *
 * CI: every command boundary of the incremental session, one point inside each literal of the
 * first two sessions plus 14 more, 10 points inside command lines, and 8 of the incremental
 * session's cuts again with that session joined to the initial one (one session, so one chunk
 * holds both). CYB_LONG=1: every command boundary of all three, 300 literal points, 60 points
 * inside command lines, every incremental cut joined too. CYB_CUT_SEED picks the points. Plus
 * the reproduction of docs/reliability.md's finding: the first two sessions joined into one,
 * cut at byte 985,501 (inside carol's APPLY MESSAGE, after her renames).
 */
import fs from "node:fs"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { verifyFile } from "../../src/store/index.js"
import { lcg } from "../support/bundle.js"
import { bundledBackupd } from "./support/bundle.js"
import { clientStream } from "./support/corpus.js"
import { dataFiles, makeServerRoot, type ServerRoot } from "./support/inProcess.js"
import { chownToCyrus, converse, cyrusSkipReason, runTool, warnSkip } from "./support/processes.js"
import { LONG_RUN, report, since } from "./support/report.js"

const SEED = Number(process.env["CYB_CUT_SEED"] ?? 0xc07)
const skip = cyrusSkipReason() !== undefined
warnSkip("interrupted syncs (needs root and ctl_backups; ours runs as cyrus)")

const FILES = ["01_initial_allusers.backupd.log", "02_incremental_rolling.backupd.log", "03_incremental_allusers.backupd.log"]
/** A recorded session as sent after COMPRESS (the pipe is plaintext), without its EXIT. */
const sessions = FILES.map((f) => clientStream(f).replace(/^COMPRESS DEFLATE\r\n/, "").replace(/EXIT\r\n$/, ""))
const END = "\r\nEXIT\r\n"

interface Cut {
  /** The session cut (0, 1, 2); the ones before it ran whole. */
  readonly session: number
  readonly at: number
  readonly kind: "boundary" | "literal" | "line"
  /** The incremental session cut as a continuation of the initial one, in one session. */
  readonly joined?: true
}

/** Where each command starts (and the end), where each literal's bytes are, in one session. */
const shape = (s: string) => {
  const boundaries = [0, ...[...s.matchAll(/\r\n(?=(?:APPLY|GET|RESTART|NOOP) )/g)].map((m) => m.index + 2), s.length]
  const literals = [...s.matchAll(/%\{\S+ [0-9a-f]{40} (\d+)\}\r\n|\{(\d+)\+?\}\r\n/g)].map((m) => ({
    from: m.index + m[0].length,
    size: Number(m[1] ?? m[2])
  }))
  const inLiteral = (i: number) => literals.some((l) => i >= l.from && i < l.from + l.size)
  return { boundaries, literals, inLiteral }
}

const cutPoints = (): Array<Cut> => {
  const rand = lcg(SEED)
  const pick = (n: number) => Math.floor(rand() * n)
  const cuts: Array<Cut> = []
  const shapes = sessions.map(shape)
  shapes.forEach((sh, session) => {
    if (LONG_RUN || session === 1) for (const at of sh.boundaries) cuts.push({ session, at, kind: "boundary" })
  })
  // one point inside every literal of the first two sessions, then more at random
  const literals = shapes.flatMap((sh, session) => (session < 2 ? sh.literals.map((l) => ({ session, ...l })) : []))
  const literalPoints = LONG_RUN ? 300 : literals.length + 14
  for (let i = 0; i < literalPoints; i++) {
    const l = i < literals.length ? literals[i]! : literals[pick(literals.length)]!
    cuts.push({ session: l.session, at: l.from + 1 + pick(l.size - 1), kind: "literal" })
  }
  // inside command lines (not in a literal, not at a boundary), in the first two sessions
  for (let n = 0; n < (LONG_RUN ? 60 : 10); ) {
    const session = pick(2)
    const sh = shapes[session]!
    const at = 1 + pick(sessions[session]!.length - 1)
    if (sh.inLiteral(at) || sh.boundaries.includes(at)) continue
    cuts.push({ session, at, kind: "line" })
    n++
  }
  // the same cuts of the incremental session once more, in one session with the initial one
  const incremental = cuts.filter((c) => c.session === 1)
  const joined = LONG_RUN ? incremental : Array.from({ length: 8 }, () => incremental[pick(incremental.length)]!)
  return [...cuts, ...joined.map((c): Cut => ({ ...c, joined: true }))]
}

/** One backup server root that replays sessions; the state after each whole session is kept to start cuts from. */
interface Worker {
  readonly root: ServerRoot
  readonly snapshots: Array<string>
}

const roots: Array<ServerRoot> = []
let script: string
afterAll(() => {
  if (process.env["CYB_KEEP"] !== "1") for (const r of roots) fs.rmSync(r.root, { recursive: true, force: true })
})

const run = async (root: ServerRoot, input: string) => {
  const r = await converse("ours", root.conf, input, 120_000, script)
  expect(r.signal, `backupd on ${input.length} bytes: ${r.stderr}`).toBeNull()
  expect(r.code, r.stderr).toBe(0)
  return r
}

const STATE = ["backups", "conf"] as const

const restoreState = (w: Worker, snapshot: string | undefined) => {
  for (const d of STATE) {
    fs.rmSync(path.join(w.root.root, d), { recursive: true, force: true })
    if (snapshot === undefined) fs.mkdirSync(path.join(w.root.root, d))
    else fs.cpSync(path.join(snapshot, d), path.join(w.root.root, d), { recursive: true })
  }
  chownToCyrus(w.root)
}

const makeWorker = async (n: number): Promise<Worker> => {
  const root = makeServerRoot(`cuts${n}`)
  roots.push(root)
  chownToCyrus(root)
  const snapshots: Array<string> = []
  for (let s = 0; s < 2; s++) {
    await run(root, sessions[s]! + "EXIT\r\n")
    const snap = path.join(root.root, `after-${s + 1}`)
    for (const d of STATE) fs.cpSync(path.join(root.root, d), path.join(snap, d), { recursive: true })
    snapshots.push(snap)
  }
  return { root, snapshots }
}

interface Verdict {
  readonly user: string
  readonly ours: ReadonlyArray<string>
  /** The real ctl_backups verify's lines, empty when it passed. */
  readonly cyrus: ReadonlyArray<string>
}

/** Both verifies of every backup in the root. */
const verifyAll = async (root: ServerRoot): Promise<Array<Verdict>> => {
  const c = await runTool("ctl_backups", ["-C", root.conf, "verify", "-A"])
  const out = `${c.stdout}${c.stderr}`
  return Promise.all(
    dataFiles(root.backups).map(async (data) => {
      const user = path.basename(data).replace(/_[^_]+$/, "")
      const ours = await Effect.runPromise(verifyFile(data, { level: "full" }))
      const passed = new RegExp(`^verify ${user}: ok$`, "m").test(out)
      return { user, ours: ours.problems.map((p) => p.message), cyrus: passed ? [] : out.split("\n").filter((l) => l !== "") }
    })
  )
}

describe.skipIf(skip)("interrupted syncs: both verifies pass wherever the session stops", () => {
  beforeAll(async () => {
    script = await bundledBackupd()
  }, 120_000)

  it("the first two recorded sessions joined into one, cut inside carol's APPLY MESSAGE after her renames", async () => {
    const root = makeServerRoot("cuts-joined")
    roots.push(root)
    chownToCyrus(root)
    const joined = sessions[0]! + sessions[1]!
    expect(joined.slice(0, 985_501)).toContain("APPLY RENAME %(OLDMBOXNAME user.carol.Trash NEWMBOXNAME DELETED.user.carol.Trash.6B0B09EA")
    await run(root, joined.slice(0, 985_501) + END)
    const verdicts = await verifyAll(root)
    expect(verdicts.map((v) => v.user).sort()).toEqual(["alice", "bob", "carol"])
    for (const v of verdicts) expect(v, v.user).toEqual({ user: v.user, ours: [], cyrus: [] })
  }, 120_000)

  it(`cut at command boundaries, inside literals and inside command lines (${LONG_RUN ? "long" : "CI"} sampling)`, async () => {
    const started = Date.now()
    const cuts = cutPoints()
    const workers = await Promise.all([0, 1].map(makeWorker))
    const failures: Array<{ cut: Cut; verdict: Verdict }> = []
    let backups = 0
    let oursPassed = 0
    let cyrusPassed = 0
    let cutsPassed = 0
    const one = async (w: Worker, cut: Cut) => {
      restoreState(w, cut.session === 0 || cut.joined ? undefined : w.snapshots[cut.session - 1])
      await run(w.root, (cut.joined ? sessions[0]! : "") + sessions[cut.session]!.slice(0, cut.at) + END)
      const verdicts = await verifyAll(w.root)
      let clean = true
      for (const v of verdicts) {
        backups += 1
        if (v.ours.length === 0) oursPassed += 1
        if (v.cyrus.length === 0) cyrusPassed += 1
        if (v.ours.length > 0 || v.cyrus.length > 0) {
          clean = false
          failures.push({ cut, verdict: v })
        }
      }
      if (clean) cutsPassed += 1
    }
    await Promise.all(
      workers.map(async (w, i) => {
        for (let k = i; k < cuts.length; k += workers.length) await one(w, cuts[k]!)
      })
    )
    const count = (kind: Cut["kind"]) => cuts.filter((c) => c.kind === kind).length
    const figures =
      `${cuts.length} cut points (${count("boundary")} command boundaries, ${count("literal")} inside literals, ${count("line")} inside command lines, ` +
      `${cuts.filter((c) => c.joined).length} of them in the incremental session joined to the initial one; seed ${SEED}), ` +
      `${backups} backups left: our verify passed ${oursPassed}, ctl_backups verify passed ${cyrusPassed}; ${cutsPassed} cut points with every backup passing both`
    console.info(`interrupted syncs: ${figures}`)
    expect(
      failures.map((f) => `session ${f.cut.session + 1}${f.cut.joined ? " (joined)" : ""} cut at ${f.cut.at} (${f.cut.kind}): ${f.verdict.user}: ours ${JSON.stringify(f.verdict.ours)}; ctl_backups ${JSON.stringify(f.verdict.cyrus)}`).slice(0, 20)
    ).toEqual([])
    report({
      id: "fault-cut",
      file: "cuts.test.ts",
      what: "a recorded sync session cut short anywhere (boundary, literal, command line)",
      trials: cuts.length,
      unit: "cut points",
      faults: cuts.length,
      details: `${backups} backups left by the cut sessions, every one passed our full verify and the real ctl_backups verify`,
      seconds: since(started)
    })
  }, LONG_RUN ? 3_600_000 : 900_000)
})
