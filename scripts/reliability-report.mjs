#!/usr/bin/env node
/**
 * Writes the figures of a conformance run into docs/reliability.md.
 *
 *   node scripts/reliability-report.mjs <report-dir> [doc]
 *
 * <report-dir> holds one JSON row per passed test (test/conformance/support/report.ts, written
 * when CYB_REPORT_DIR is set). The rows of a long run (CYB_LONG=1) replace the block between the
 * `figures:long` markers of the document, those of a CI-sized run the `figures:ci` block. Every
 * expected row must be there: a skipped or failed test leaves a hole, and then nothing is written.
 */
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"

/** The rows a complete run leaves, in the order of the table. */
export const EXPECTED = [
  "model",
  "restore",
  "differential",
  "fault-kill",
  "fault-fsize",
  "fault-enospc",
  "fault-index-unreadable",
  "fault-index-corrupt",
  "fault-lock",
  "fault-disconnect",
  "fault-cut",
  "fuzz",
  "load"
]

export class ReportError extends Error {}

/** Reads every row of a report directory. */
export const readRows = (dir) => {
  if (!fs.existsSync(dir)) throw new ReportError(`no report directory ${dir}: run the conformance tests with CYB_REPORT_DIR=${dir}`)
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")))
}

const num = (n) => (n === undefined ? "–" : n.toLocaleString("en-US"))

/** The markdown block for one run (without its markers). */
export const renderFigures = (rows, meta) => {
  const long = rows.every((r) => r.long === true)
  if (!long && rows.some((r) => r.long === true)) throw new ReportError("the report directory mixes long and CI-sized rows: empty it and run again")
  const byId = new Map(rows.map((r) => [r.id, r]))
  const missing = EXPECTED.filter((id) => !byId.has(id))
  if (missing.length > 0)
    throw new ReportError(`rows missing from the report: ${missing.join(", ")} (a test failed or was skipped; the Cyrus ones need root and the Cyrus 3.6.1 packages)`)
  const ordered = EXPECTED.map((id) => byId.get(id))
  const starts = rows.map((r) => Date.parse(r.at) - r.seconds * 1000)
  const wall = Math.round((Math.max(...rows.map((r) => Date.parse(r.at))) - Math.min(...starts)) / 1000)
  const lines = [
    `${long ? "Long run (`npm run test:long`)" : "CI-sized run (`npm run test:conformance`)"} of ${meta.date}, commit \`${meta.commit}\`, ` +
      `${meta.cpus} CPUs, Node ${meta.node}; ${wall} s from the first test's start to the last one's end.`,
    "",
    "| test | what | trials | faults injected | committed records lost | figures | time |",
    "|---|---|---|---|---|---|---|"
  ]
  for (const r of ordered) {
    const lost = r.committedLost === undefined ? "–" : `${num(r.committedLost)} of ${num(r.committedChecked)} checked`
    lines.push(`| \`${r.file}\` ${r.id} | ${r.what} | ${num(r.trials)} ${r.unit} | ${num(r.faults)} | ${lost} | ${r.details ?? ""} | ${r.seconds} s |`)
  }
  const faults = ordered.filter((r) => r.committedLost !== undefined)
  lines.push("", "Per fault kind:", "")
  for (const r of faults)
    lines.push(`* **${r.what}**: ${num(r.trials)} ${r.unit}, ${num(r.faults)} ${r.faults === 1 ? "fault" : "faults"} injected, ${r.committedLost === 0 ? "0 committed records lost" : `${r.committedLost} COMMITTED RECORDS LOST`}.`)
  return lines.join("\n")
}

/** Replaces the block between `<!-- figures:<kind>:begin -->` and `<!-- figures:<kind>:end -->`. */
export const spliceFigures = (doc, kind, block) => {
  const begin = `<!-- figures:${kind}:begin (written by scripts/reliability-report.mjs; edits here are overwritten) -->`
  const end = `<!-- figures:${kind}:end -->`
  const re = new RegExp(`<!-- figures:${kind}:begin[^>]*-->[\\s\\S]*?<!-- figures:${kind}:end -->`)
  const whole = `${begin}\n${block}\n${end}`
  return re.test(doc) ? doc.replace(re, () => whole) : `${doc.replace(/\n*$/, "\n")}\n${whole}\n`
}

/** The checkout's commit, and whether anything but the document itself differs from it. */
const gitCommit = (cwd, docPath) => {
  try {
    const git = (args) => execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
    const sha = git(["rev-parse", "--short=12", "HEAD"]).trim()
    const top = git(["rev-parse", "--show-toplevel"]).trim()
    const doc = path.relative(top, fs.realpathSync(docPath))
    const dirty = git(["status", "--porcelain", "--untracked-files=no"])
      .split("\n")
      .some((l) => l.trim() !== "" && l.slice(3) !== doc)
    return dirty ? `${sha} + uncommitted changes` : sha
  } catch {
    return "unknown (not a git checkout)"
  }
}

export const writeReport = (dir, docPath, now = new Date()) => {
  const rows = readRows(dir)
  if (rows.length === 0) throw new ReportError(`${dir} holds no rows`)
  const meta = { date: now.toISOString().slice(0, 10), commit: gitCommit(path.dirname(docPath), docPath), cpus: os.cpus().length, node: process.version }
  const block = renderFigures(rows, meta)
  const kind = rows[0].long === true ? "long" : "ci"
  fs.writeFileSync(docPath, spliceFigures(fs.readFileSync(docPath, "utf8"), kind, block))
  return { kind, rows: rows.length }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, doc = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "docs", "reliability.md")] = process.argv.slice(2)
  if (dir === undefined) {
    console.error("usage: reliability-report.mjs <report-dir> [doc]")
    process.exit(64)
  }
  try {
    const { kind, rows } = writeReport(dir, doc)
    console.log(`reliability-report: ${rows} rows written to the ${kind} figures of ${doc}`)
  } catch (e) {
    if (!(e instanceof ReportError)) throw e
    console.error(`reliability-report: ${e.message}; ${doc} left as it was`)
    process.exit(65)
  }
}
