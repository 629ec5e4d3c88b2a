/**
 * A one-line progress bar on stderr for long work (ctl_backups over many backups: verify,
 * reindex, compact, reconstruct, and any tool that moves many items or bytes, such as push
 * and pull): `[#####-------] 3/10 backups, 12.3 MB, 4.1 MB/s alice`. Drawn only when both
 * stdout and stderr are terminals and the output is not JSON, so it never reaches a pipe, a
 * log, a test or a `-j` consumer; erased before anything else is printed, and redrawn at most
 * ten times a second.
 *
 * Use: `const bar = progressBar(io, { unit: "chunks", json })`, then `bar.step(done, total,
 * label)` before each item, `bar.addBytes(n)` as bytes are done, `bar.clear()` before printing
 * and at the end.
 */
import type { ToolIo } from "./ToolIo.js"

export interface Progress {
  /** Shows `done` of `total` and what is being worked on. */
  readonly step: (done: number, total: number, label: string) => void
  /** Counts `n` more bytes done (shown with the rate since the bar started). */
  readonly addBytes: (n: number) => void
  /** Erases the bar (call before writing other output). */
  readonly clear: () => void
}

export interface ProgressOptions {
  /** What is counted: "backups" unless told. */
  readonly unit?: string
  /** `-j`: no bar. */
  readonly json?: boolean
  /** The clock (tests). */
  readonly now?: () => number
}

const WIDTH = 24

/** A bar that draws nothing. */
export const noProgress: Progress = { step: () => {}, addBytes: () => {}, clear: () => {} }

/** Whether a bar would be drawn for this run. */
export const progressWanted = (io: Pick<ToolIo, "stderrIsTty" | "stdoutIsTty">, json = false): boolean =>
  io.stderrIsTty && io.stdoutIsTty === true && !json

/** `12.3 MB` and the like. */
export const byteText = (n: number): string => {
  if (n < 1e3) return `${n} B`
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`
  return `${(n / 1e9).toFixed(2)} GB`
}

export const progressBar = (io: ToolIo, options: ProgressOptions = {}): Progress => {
  if (!progressWanted(io, options.json)) return noProgress
  const now = options.now ?? Date.now
  const unit = options.unit ?? "backups"
  const started = now()
  let shown = false
  let bytes = 0
  let last = { done: 0, total: 0, label: "" }
  let drawnAt = 0
  const draw = (force: boolean) => {
    const t = now()
    if (!force && shown && t - drawnAt < 100) return
    drawnAt = t
    const { done, total, label } = last
    const filled = total > 0 ? Math.min(WIDTH, Math.round((WIDTH * done) / total)) : WIDTH
    const bar = "#".repeat(filled) + "-".repeat(WIDTH - filled)
    const secs = (t - started) / 1000
    const rate = bytes > 0 && secs > 0 ? `, ${byteText(Math.round(bytes / secs))}/s` : ""
    const amount = bytes > 0 ? `, ${byteText(bytes)}` : ""
    io.stderr.write(`\r\x1b[K[${bar}] ${done}/${total} ${unit}${amount}${rate} ${label.slice(0, 40)}`)
    shown = true
  }
  return {
    step: (done, total, label) => {
      last = { done, total, label }
      draw(true)
    },
    addBytes: (n) => {
      bytes += n
      draw(false)
    },
    clear: () => {
      if (shown) io.stderr.write("\r\x1b[K")
      shown = false
    }
  }
}
