/**
 * Bad input: random and grammar-aware mutations of real conversations (the recorded C backupd
 * transcripts, plus commands generated from the model) fed to an authenticated in-process
 * session. Every input must end (no hang), every answer line must be well formed
 * (`* ` data, `+ ` continuation, or a final OK/NO/BAD), memory must stay bounded, and hostile
 * user ids and mailbox names (`/`, `..`, NUL, 8-bit, very long) must never create or touch a
 * file outside the backup partition, backups.db and staging.
 *
 * Inputs: CYB_FUZZ_INPUTS (default 5000; CYB_LONG=1 → 100000), CYB_FUZZ_BATCH per session
 * (default 10: later inputs of a batch run after whatever state the earlier ones left). Seed: CYB_FUZZ_SEED.
 */
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { seedCommands } from "./support/corpus.js"
import { listFiles, makeInProcessServer, makeServerRoot, type InProcessServer } from "./support/inProcess.js"
import { applyOp, newModel, opArb } from "./support/model.js"
import { report } from "./support/report.js"

const LONG = process.env["CYB_LONG"] === "1"
const INPUTS = Number(process.env["CYB_FUZZ_INPUTS"] ?? (LONG ? 100_000 : 5000))
/** Inputs per session: a session costs a backup open and chunk seal (fsyncs), an input does not. */
const BATCH = Number(process.env["CYB_FUZZ_BATCH"] ?? 10)
const SEED = Number(process.env["CYB_FUZZ_SEED"] ?? 0x5eed)
const MARK = "cybpwn"

const prng = (seed: number) => () => {
  seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
  seed ^= seed >>> 12
  return (seed >>> 0) / 0x100000000
}

const HOSTILE = [
  `${MARK}/../../${MARK}`,
  `../${MARK}`,
  `/${MARK}`,
  `${MARK}..`,
  "..",
  ".",
  `${MARK}\0x`,
  `${MARK}\xff\xfe\x80`,
  MARK + "y".repeat(5000),
  `${MARK}/x`,
  `${MARK}%00`,
  `${MARK}@../../x`,
  `${MARK}@example.com/..`,
  "%SHARED",
  `${MARK}\r\nGET USER x`
]

/** An astring as a client could send it (always a literal when in doubt). */
const lit = (s: string) => `{${s.length}+}\r\n${s}`

const TOKENS = [
  "(", ")", "%(", "%{", "{", "}", "{5+}\r\n", "{99999999999}\r\n", "{3}\r\n", "{0+}\r\n", "NIL", '"', "\\", " ", "\r\n", "\n", "\r", "\0",
  "\x80\xff", "%{default 0000000000000000000000000000000000000000 5}\r\nabcde", "APPLY ", "GET ", "RESTART\r\n", "EXIT\r\n", "NOOP\r\n",
  "COMPRESS DEFLATE\r\n", "STARTTLS\r\n", "AUTHENTICATE PLAIN\r\n", "RECORD (", "GUID ", "UID 4294967296 ", "-1", "18446744073709551616"
]

/** Commands generated from the model (grammar-correct conversations), to mutate as well. */
const modelSeeds = (n: number): Array<string> => {
  const out: Array<string> = []
  for (const ops of fc.sample(fc.array(opArb, { minLength: 3, maxLength: 12 }), { numRuns: n, seed: SEED })) {
    const s = newModel(`fz${out.length % 7}`)
    for (const op of ops) for (const step of applyOp(s, op)) out.push(step.command + "\r\n")
  }
  return out
}

const hostileCommands = (name: string): Array<string> => [
  `GET USER ${lit(name)}\r\n`,
  `GET META ${lit(name)}\r\n`,
  `GET FULLMAILBOX ${lit(`user.${name}`)}\r\n`,
  `GET MAILBOXES (${lit(`user.${name}`)} ${lit(`user.${name}.x`)})\r\n`,
  `APPLY SUB %(USERID ${lit(name)} MBOXNAME ${lit(`user.${name}`)})\r\n`,
  `APPLY UNMAILBOX ${lit(`user.${name}`)}\r\n`,
  `APPLY UNMAILBOX ${lit(name)}\r\n`,
  `APPLY SIEVE %(USERID ${lit(name)} FILENAME ${lit(name)} LAST_UPDATE 1 CONTENT {3+}\r\nabc)\r\n`,
  `APPLY SEEN %(USERID ${lit(name)} UNIQUEID x LASTREAD 1 LASTUID 1 LASTCHANGE 1 SEENUIDS 1)\r\n`,
  `APPLY RENAME %(OLDMBOXNAME ${lit(`user.${name}`)} NEWMBOXNAME ${lit(`user.${name}.b`)} PARTITION default UIDVALIDITY 1)\r\n`,
  `APPLY MAILBOX %(UNIQUEID ${lit(name)} MBOXNAME ${lit(`user.${name}`)} LAST_UID 0 HIGHESTMODSEQ 1 RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 UIDVALIDITY 1 PARTITION ${lit(name)} ACL "" OPTIONS P RECORD ())\r\n`,
  `APPLY RESERVE %(PARTITION ${lit(name)} MBOXNAME (${lit(`user.${name}`)}) GUID (0000000000000000000000000000000000000000))\r\n`,
  `APPLY MESSAGE (%{${name.replace(/[\s{}]/g, "_")} 03cfd743661f07975fa2f1220c5194cbaff48451 4}\r\nabc\n)\r\n`
]

/** One mutated conversation. */
const makeInput = (rand: () => number, seeds: ReadonlyArray<string>): string => {
  const int = (n: number) => Math.floor(rand() * n)
  const one = <A>(xs: ReadonlyArray<A>) => xs[int(xs.length)]!
  if (rand() < 0.15) return hostileCommands(one(HOSTILE)).slice(0, 1 + int(13)).join("")
  let s = ""
  for (let k = 1 + int(4); k > 0; k--) s += one(seeds)
  for (let m = int(5); m > 0; m--) {
    const at = int(s.length + 1)
    switch (int(9)) {
      case 0: // flip a byte
        if (s.length > 0) s = s.slice(0, at) + String.fromCharCode(int(256)) + s.slice(at + 1)
        break
      case 1: // random bytes
        s = s.slice(0, at) + Array.from({ length: 1 + int(8) }, () => String.fromCharCode(int(256))).join("") + s.slice(at)
        break
      case 2: // delete a range
        s = s.slice(0, at) + s.slice(at + 1 + int(64))
        break
      case 3: // duplicate a range
        s = s.slice(0, at) + s.slice(at, at + 1 + int(200)) + s.slice(at)
        break
      case 4: // a grammar token
        s = s.slice(0, at) + one(TOKENS) + s.slice(at)
        break
      case 5: // a hostile user / mailbox name
        s = s.replace(/user\.([A-Za-z0-9]+)|USERID ([A-Za-z0-9]+)/, (w) => (w.startsWith("user.") ? `user.${lit(one(HOSTILE))}` : `USERID ${lit(one(HOSTILE))}`))
        break
      case 6: // a number out of range
        s = s.replace(/\b\d+\b/, () => one(["0", "-1", "4294967296", "99999999999999999999", "00000000001"]))
        break
      case 7: // a literal length that lies
        s = s.replace(/\{(\d+)(\+?)\}/, (_w, n: string, p: string) => `{${Math.max(0, Number(n) + int(11) - 5)}${p}}`)
        break
      default: // truncate
        s = s.slice(0, at)
    }
  }
  return s
}

/** Checks one session's output: banner, then only data, continuation and final lines. */
const malformed = (out: string): string | undefined => {
  if (!out.startsWith("* OK ")) return "no banner"
  let i = 0
  while (i < out.length) {
    const end = out.indexOf("\r\n", i)
    if (end < 0) return `unterminated line: ${JSON.stringify(out.slice(i, i + 200))}`
    let line = out.slice(i, end)
    i = end + 2
    if (line.startsWith("* ")) {
      // A data line may carry literals: `{n}` CRLF n bytes, then the line goes on.
      for (let m = /\{(\d+)\+?\}$/.exec(line); m !== null; m = /\{(\d+)\+?\}$/.exec(line)) {
        const n = Number(m[1])
        const next = out.indexOf("\r\n", i + n)
        if (next < 0) return "literal runs past the end"
        line = out.slice(i + n, next)
        i = next + 2
      }
      continue
    }
    if (/^(OK|NO|BAD)( [\x20-\x7e\x80-\xff]*)?$/.test(line) || line.startsWith("+ ")) continue
    return `bad line: ${JSON.stringify(line.slice(0, 200))}`
  }
  return undefined
}

/** Paths containing the hostile marker anywhere we could reach from a bad name. */
const escapedPaths = (roots: ReadonlyArray<string>): Array<string> => {
  const hits: Array<string> = []
  for (const r of roots) {
    try {
      for (const e of fs.readdirSync(r)) if (e.includes(MARK)) hits.push(path.join(r, e))
    } catch {
      /* unreadable: nothing there for us */
    }
  }
  return hits
}

let server: InProcessServer
beforeAll(async () => {
  server = await makeInProcessServer(makeServerRoot("fuzz"))
})
afterAll(async () => {
  await server?.dispose()
  if (server && process.env["CYB_KEEP"] !== "1") fs.rmSync(server.root.root, { recursive: true, force: true })
})

const withTimeout = <A>(p: Promise<A>, ms: number, what: () => string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no end after ${ms} ms: ${what()}`)), ms)
    p.then((a) => (clearTimeout(t), resolve(a)), (e) => (clearTimeout(t), reject(e)))
  })

describe("bad input (in-process session)", () => {
  it(`${INPUTS} mutated conversations: no crash, no hang, well-formed answers, nothing outside the partition`, async () => {
    const seeds = [...seedCommands(), ...modelSeeds(60)]
    const rand = prng(SEED)
    const heapBefore = process.memoryUsage().heapUsed
    const outside = [os.tmpdir(), "/", process.cwd(), path.dirname(server.root.root), path.join(server.root.backups, "..", "..")]
    const escapedBefore = new Set(escapedPaths(outside))
    const finals = { OK: 0, NO: 0, BAD: 0 }
    const started = Date.now()
    for (let n = 0; n < INPUTS; n += BATCH) {
      const input = Array.from({ length: Math.min(BATCH, INPUTS - n) }, () => makeInput(rand, seeds)).join("")
      const t0 = Date.now()
      const out = await withTimeout(server.converse(input), 20_000, () => `inputs #${n}..: ${JSON.stringify(input.slice(0, 300))}`)
      if (process.env["CYB_FUZZ_SLOW"] && Date.now() - t0 > 500) console.info(`slow (${Date.now() - t0} ms): ${JSON.stringify(input.slice(0, 400))}`)
      if (n > 0 && n % (process.env["CYB_FUZZ_PROGRESS"] ? 1000 : LONG ? 10_000 : Infinity) === 0) console.info(`fuzz progress: ${n} inputs, ${((Date.now() - started) / 1000).toFixed(1)} s, heap ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB`)
      const problem = malformed(out)
      if (problem !== undefined) throw new Error(`inputs #${n}.. (seed ${SEED}): ${problem}\ninput: ${JSON.stringify(input.slice(0, 500))}`)
      for (const l of out.split("\r\n")) {
        const k = l.split(" ")[0] as keyof typeof finals
        if (k in finals) finals[k] += 1
      }
    }
    const secs = (Date.now() - started) / 1000
    const heapGrowth = (process.memoryUsage().heapUsed - heapBefore) / 1e6
    console.info(`fuzz: ${INPUTS} inputs (${Math.ceil(INPUTS / BATCH)} sessions) in ${secs.toFixed(1)} s; answers ${JSON.stringify(finals)}; heap growth ${heapGrowth.toFixed(1)} MB`)
    expect(heapGrowth).toBeLessThan(256)
    expect(finals.OK + finals.NO + finals.BAD).toBeGreaterThan(INPUTS)

    // Nothing escaped: no marker-named entry appeared outside, and every file is where it belongs.
    expect(escapedPaths(outside).filter((p) => !escapedBefore.has(p))).toEqual([])
    const files = listFiles(server.root.root)
    const misplaced = files.filter(
      (f) => !(f === "imapd.conf" || f.startsWith("conf/") || /^backups\/[^/]+\/[^/]+$/.test(f))
    )
    expect(misplaced).toEqual([])
    expect(listFiles(server.root.staging)).toEqual([])
    for (const f of files) expect(path.resolve(server.root.root, f).startsWith(server.root.root + path.sep)).toBe(true)
    report({
      id: "fuzz",
      file: "fuzz.test.ts",
      what: "mutated and hostile input to an authenticated session",
      trials: INPUTS,
      unit: `inputs in ${Math.ceil(INPUTS / BATCH)} sessions`,
      details: `answers: ${finals.OK} OK, ${finals.NO} NO, ${finals.BAD} BAD, all well formed; heap growth ${heapGrowth.toFixed(1)} MB; no file outside the partition`,
      seconds: Math.round(secs * 10) / 10
    })
  }, Math.max(900_000, INPUTS * 60))
})
