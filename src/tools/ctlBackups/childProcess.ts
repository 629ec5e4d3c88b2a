/**
 * What `ctl_backups lock` needs of processes: waiting for the end of stdin (`-p`), and running
 * a child (`-s`: sqlite3 on the index; `-x`: a shell command) on our standard streams.
 */
import { spawn } from "node:child_process"
import { Effect } from "effect"
import { EX_SOFTWARE } from "../../util/sysexits.js"
import type { ToolIo } from "../ToolIo.js"

/** Waits for end of input on stdin (lock -p). */
export const untilStdinEnds = (io: ToolIo) =>
  Effect.async<void>((resume) => {
    const s = io.stdin
    const done = () => {
      s.removeListener("end", done)
      s.removeListener("close", done)
      s.removeListener("error", done)
      s.removeListener("data", ignore)
      if ("pause" in s) s.pause()
      resume(Effect.void)
    }
    const ignore = () => {}
    s.on("data", ignore)
    s.once("end", done)
    s.once("close", done)
    s.once("error", done)
    s.resume()
  })

/** Runs a child with our standard streams and returns its exit status (EX_SOFTWARE on signal or spawn failure). */
export const runChild = (io: ToolIo, file: string, argv: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
  Effect.async<number>((resume) => {
    const inherit = io.stdout === process.stdout && io.stderr === process.stderr
    const child = spawn(file, argv, { stdio: inherit ? "inherit" : ["pipe", "pipe", "pipe"], env })
    if (!inherit) {
      child.stdout?.pipe(io.stdout, { end: false })
      child.stderr?.pipe(io.stderr, { end: false })
      io.stdin.pipe(child.stdin!)
    }
    child.once("error", (e) => {
      io.stderr.write(`${file}: ${e.message}\n`)
      resume(Effect.succeed(EX_SOFTWARE))
    })
    child.once("close", (code) => {
      if (!inherit) io.stdin.unpipe(child.stdin!)
      resume(Effect.succeed(code === null ? EX_SOFTWARE : code))
    })
  })
