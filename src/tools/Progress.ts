/**
 * A one-line progress bar on stderr for runs over many backups, drawn only when stderr is a
 * terminal (never in pipes, logs or tests), and erased before anything else is printed.
 */
import type { ToolIo } from "./ToolIo.js"

export interface Progress {
  /** Shows `done` of `total` and what is being worked on. */
  readonly step: (done: number, total: number, label: string) => void
  /** Erases the bar (call before writing other output). */
  readonly clear: () => void
}

const WIDTH = 24

export const progressBar = (io: ToolIo): Progress => {
  if (!io.stderrIsTty) return { step: () => {}, clear: () => {} }
  let shown = false
  return {
    step: (done, total, label) => {
      const filled = total > 0 ? Math.round((WIDTH * done) / total) : WIDTH
      const bar = "#".repeat(filled) + "-".repeat(WIDTH - filled)
      io.stderr.write(`\r\x1b[K[${bar}] ${done}/${total} ${label.slice(0, 40)}`)
      shown = true
    },
    clear: () => {
      if (shown) io.stderr.write("\r\x1b[K")
      shown = false
    }
  }
}
