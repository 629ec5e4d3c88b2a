/**
 * `backup_verify` as the C tools report it, on top of the store's verifier: the C code
 * checks chunk by chunk (checksums, then messages, then mailbox links), stops at the first
 * failing step, prints mismatch lines to its output and, when verbose, one "checking ..."
 * line per step with "ok"/"error". Its return code is whatever the failing comparison
 * returned (a strncmp difference or -1), which the tools print through error_message().
 * We run our verifier and lay its findings out that way. Findings the C code has no words
 * for are returned as `diagnostics` (the tools put them on stderr).
 */
import { Effect } from "effect"
import { verifyBackup, type VerifyCheck, type VerifyProblem } from "../store/index.js"
import { IMAP_IOERROR, strncmpCode } from "./cFormat.js"
import type { ToolBackup } from "./ToolBackup.js"

export interface CyrusVerifyResult {
  /** 0 when it passed; otherwise a Cyrus-style return code. */
  readonly code: number
  /** What the C code prints to its `out` stream (already newline-terminated). */
  readonly output: string
  /** Our extra findings, one line each. */
  readonly diagnostics: ReadonlyArray<string>
}

type Step = "checksums" | "messages" | "mailbox links"

const stepOf = (check: VerifyCheck): Step =>
  check === "allChecksums" || check === "lastChecksum" ? "checksums" : check === "mailboxLinks" ? "mailbox links" : "messages"

const CHECKSUM = /^(file|data) checksum mismatch for chunk (\d+): ([0-9a-f]*) on disk, (\S*) in index$/
const LENGTH = /^data length mismatch for chunk (\d+): (\d+) on disk, (\S+) in index$/

interface StepOutcome {
  readonly code: number
  readonly lines: ReadonlyArray<string>
  /** verbose > 1 progress lines of the checksum step, up to where it stopped. */
  readonly substeps: number
  readonly diagnostics: ReadonlyArray<string>
}

/** How the C code would have reported this step's problems. */
const judge = (step: Step, problems: ReadonlyArray<VerifyProblem>): StepOutcome => {
  if (step === "checksums") {
    // The C code words only checksum and length mismatches; report the first of those (a
    // member missing at the end of the file reads as 0 bytes there), the rest as ours.
    const worded = (x: VerifyProblem) => CHECKSUM.test(x.message) || LENGTH.test(x.message)
    const p = problems.find(worded) ?? problems[0]!
    // (the C code stops at its first mismatch, so later worded ones are not reported)
    const others = problems.filter((x) => !worded(x)).map((x) => x.message)
    const sum = CHECKSUM.exec(p.message)
    if (sum !== null) {
      const [, kind, chunk, disk, index] = sum
      return {
        code: strncmpCode(index!, disk!) || -1,
        lines: [`${kind} checksum mismatch for chunk ${chunk}: ${disk} on disk, ${index} in index`],
        substeps: kind === "file" ? 1 : 3,
        diagnostics: others
      }
    }
    const len = LENGTH.exec(p.message)
    if (len !== null) {
      // Cyrus's wording has no space after the comma
      return { code: -1, lines: [`data length mismatch for chunk ${len[1]}: ${len[2]} on disk,${len[3]} in index`], substeps: 2, diagnostics: others }
    }
    return { code: -1, lines: [], substeps: 3, diagnostics: problems.map((x) => x.message) }
  }
  if (step === "messages") {
    const guid = problems.find((p) => p.message.startsWith("guid mismatch for message "))
    return {
      code: -1,
      lines: guid === undefined ? [] : [guid.message],
      substeps: 0,
      diagnostics: problems.filter((p) => p !== guid).map((p) => p.message)
    }
  }
  const missing = problems.filter((p) => / missing mailbox(_message)? data for /.test(p.message))
  return {
    code: -1,
    lines: missing.map((p) => p.message),
    substeps: 0,
    diagnostics: problems.filter((p) => !missing.includes(p)).map((p) => p.message)
  }
}

const SUBSTEPS = ["  checking file checksum...", "  checking data length", "  checking data checksum..."]

/** Verifies `b` at the C tools' QUICK (last chunk's checksums) or FULL level. */
export const cyrusVerify = (b: ToolBackup, level: "quick" | "full", verbose: number): Effect.Effect<CyrusVerifyResult> =>
  Effect.gen(function*() {
    const chunks = yield* b.queries.chunks
    if (chunks.length === 0) return { code: 0, output: "", diagnostics: [] }
    const report = yield* verifyBackup(b, level)
    const out: Array<string> = []
    const diagnostics: Array<string> = []
    const steps: ReadonlyArray<Step> = level === "quick" ? ["checksums"] : ["checksums", "messages", "mailbox links"]
    const order = level === "quick" ? [chunks[chunks.length - 1]!] : chunks
    for (const chunk of order) {
      for (const step of steps) {
        if (verbose > 0) out.push(`checking chunk ${chunk.id} ${step}...`)
        const problems = report.problems.filter((p) => p.chunkId === chunk.id && stepOf(p.check) === step)
        if (problems.length === 0) {
          if (verbose > 1 && step === "checksums") out.push(...SUBSTEPS)
          if (verbose > 0) out.push("ok")
          continue
        }
        const verdict = judge(step, problems)
        if (verbose > 1 && step === "checksums") out.push(...SUBSTEPS.slice(0, verdict.substeps))
        out.push(...verdict.lines)
        diagnostics.push(...verdict.diagnostics)
        if (verbose > 0) out.push("error")
        return { code: verdict.code, output: out.map((l) => l + "\n").join(""), diagnostics }
      }
    }
    // problems not tied to a chunk (none expected) still fail the check
    const loose = report.problems.filter((p) => p.chunkId === null)
    if (loose.length > 0) return { code: -1, output: out.map((l) => l + "\n").join(""), diagnostics: loose.map((p) => p.message) }
    return { code: 0, output: out.map((l) => l + "\n").join(""), diagnostics }
  }).pipe(
    Effect.catchAll((e) =>
      Effect.succeed({ code: IMAP_IOERROR, output: "", diagnostics: [`${e._tag}: ${"message" in e ? e.message : ""}`] })
    )
  )
