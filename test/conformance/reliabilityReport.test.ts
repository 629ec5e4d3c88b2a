/**
 * scripts/reliability-report.mjs: the rows a conformance run leaves become the figures block
 * of docs/reliability.md; an incomplete run writes nothing.
 */
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { describe, expect, it } from "vitest"
import { EXPECTED, ReportError, spliceFigures, writeReport } from "../../scripts/reliability-report.mjs"

const row = (id: string, long: boolean, extra: Record<string, unknown> = {}) => ({
  id,
  file: `${id.split("-")[0]}.test.ts`,
  what: `what ${id}`,
  trials: 7,
  unit: "trials",
  seconds: 1.5,
  long,
  at: "2026-11-28T21:00:00.000Z",
  ...(id.startsWith("fault-") ? { faults: 5, committedChecked: 12, committedLost: 0 } : {}),
  ...extra
})

const fixture = (rows: ReadonlyArray<Record<string, unknown>>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-report-"))
  const reports = path.join(dir, "rows")
  fs.mkdirSync(reports)
  for (const r of rows) fs.writeFileSync(path.join(reports, `${r["id"]}.json`), JSON.stringify(r))
  const doc = path.join(dir, "reliability.md")
  fs.writeFileSync(doc, "# Reliability\n\nprose stays\n\n<!-- figures:ci:begin (old) -->\nold CI table\n<!-- figures:ci:end -->\n\nmore prose\n")
  return { dir, reports, doc }
}

describe("reliability report", () => {
  it("writes a long run's rows into the long block, leaving prose and the CI block alone", () => {
    const f = fixture(EXPECTED.map((id) => row(id, true)))
    try {
      expect(writeReport(f.reports, f.doc, new Date("2026-11-28T22:00:00Z"))).toEqual({ kind: "long", rows: EXPECTED.length })
      const doc = fs.readFileSync(f.doc, "utf8")
      expect(doc).toContain("prose stays")
      expect(doc).toContain("old CI table")
      expect(doc).toMatch(/<!-- figures:long:begin[^>]*-->\nLong run \(`npm run test:long`\) of 2026-11-28/)
      for (const id of EXPECTED) expect(doc).toContain(` ${id} | what ${id} | 7 trials |`)
      expect(doc).toContain("| 5 | 0 of 12 checked |")
      expect(doc).toContain("* **what fault-kill**: 7 trials, 5 faults injected, 0 committed records lost.")
      // Run again: the block is replaced, not repeated.
      writeReport(f.reports, f.doc)
      expect(fs.readFileSync(f.doc, "utf8").match(/figures:long:begin/g)).toHaveLength(1)
    } finally {
      fs.rmSync(f.dir, { recursive: true, force: true })
    }
  })

  it("refuses a run with a missing row (a skipped or failed test) and leaves the document as it was", () => {
    const f = fixture(EXPECTED.filter((id) => id !== "fault-enospc").map((id) => row(id, false)))
    try {
      const before = fs.readFileSync(f.doc, "utf8")
      expect(() => writeReport(f.reports, f.doc)).toThrow(ReportError)
      expect(() => writeReport(f.reports, f.doc)).toThrow(/fault-enospc/)
      expect(fs.readFileSync(f.doc, "utf8")).toBe(before)
    } finally {
      fs.rmSync(f.dir, { recursive: true, force: true })
    }
  })

  it("shows lost records loudly if a row ever carried any", () => {
    const f = fixture(EXPECTED.map((id) => row(id, false, id === "fault-kill" ? { committedLost: 2 } : {})))
    try {
      writeReport(f.reports, f.doc)
      expect(fs.readFileSync(f.doc, "utf8")).toContain("2 COMMITTED RECORDS LOST")
    } finally {
      fs.rmSync(f.dir, { recursive: true, force: true })
    }
  })

  it("appends the block when the document has no markers yet", () => {
    expect(spliceFigures("# R\n", "ci", "table")).toMatch(/^# R\n\n<!-- figures:ci:begin [^>]*-->\ntable\n<!-- figures:ci:end -->\n$/)
  })
})
