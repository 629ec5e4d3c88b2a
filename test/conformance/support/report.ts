/**
 * Figures of a conformance run, for docs/reliability.md. When CYB_REPORT_DIR is set, each test
 * that passed leaves one JSON file per row there; `scripts/reliability-report.mjs` turns them
 * into the figures table (`npm run test:long` does both). A test that fails leaves no row, and a
 * failed run writes no document, so every row written says "passed" by being there.
 */
import fs from "node:fs"
import path from "node:path"

export interface FigureRow {
  /** Stable id, also the file name: `fault-kill`, `fuzz`, … */
  readonly id: string
  /** The test file. */
  readonly file: string
  /** What was exercised, in words. */
  readonly what: string
  /** Trials, runs, sessions or inputs, whichever the test counts. */
  readonly trials: number
  readonly unit: string
  /** Faults actually injected (fault kinds only): kills that landed mid-sync, writes refused, … */
  readonly faults?: number
  /** Acknowledged changes checked after the fault (fault kinds only); none may be lost. */
  readonly committedChecked?: number
  readonly committedLost?: number
  /** Anything else worth a figure. */
  readonly details?: string
  readonly seconds: number
}

export const LONG_RUN = process.env["CYB_LONG"] === "1"

export const report = (row: FigureRow): void => {
  const dir = process.env["CYB_REPORT_DIR"]
  if (dir === undefined || dir === "") return
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, `${row.id}.json`), JSON.stringify({ ...row, long: LONG_RUN, at: new Date().toISOString() }, null, 1) + "\n")
}

/** Seconds since `t0` (ms), one decimal. */
export const since = (t0: number): number => Math.round((Date.now() - t0) / 100) / 10
