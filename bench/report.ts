/** What the benchmarks share: the machine line of their tables, and rewriting one section of docs/benchmarks.md. */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"

export const machineLine = (): string => {
  const cpu = cpus()
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}`
}

/** Replaces the `## <title>` section of the document (up to the next `## `), or appends it. */
export const writeSection = (doc: string, title: string, text: string) => {
  const current = existsSync(doc) ? readFileSync(doc, "utf8") : "# Benchmarks\n"
  const start = current.search(new RegExp(`^## ${title}\\s*$`, "m"))
  let next: string
  if (start < 0) {
    next = `${current.trimEnd()}\n\n${text}`
  } else {
    const after = current.slice(start + 1).search(/^## /m)
    const end = after < 0 ? current.length : start + 1 + after
    next = `${current.slice(0, start)}${text}${after < 0 ? "" : `\n${current.slice(end)}`}`
  }
  writeFileSync(doc, next.endsWith("\n") ? next : `${next}\n`)
}
