/**
 * Running backupd sessions as processes (`backupd -C conf -X` on pipes: pre-authenticated), the
 * C one or ours, and the real Cyrus tools, as user cyrus. Everything here needs root and the
 * Cyrus 3.6.1 packages; `cyrusSkipReason` says why not when they are missing.
 */
import { spawn, type ChildProcess } from "node:child_process"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { asCyrusArgv, chownForCyrus, cyrusProgram, cyrusToolsSkipReason, warnSkipping } from "../../support/cyrus.js"
import type { ServerRoot } from "./inProcess.js"

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

export const cyrusSkipReason = (): string | undefined => cyrusToolsSkipReason(["backupd", "ctl_backups", "cyr_backup"])

export const warnSkip = (suite: string): void => warnSkipping(suite, cyrusSkipReason())

/** Hands a server root to cyrus:mail (Cyrus refuses to run as root). */
export const chownToCyrus = (root: ServerRoot): void => chownForCyrus(root.root)

export type Impl = "c" | "ours"

/** argv of `backupd -C conf -X` for either implementation, run as cyrus. */
export const backupdArgv = (impl: Impl, conf: string, script = path.join(REPO, "bin", "backupd")): Array<string> =>
  [...asCyrusArgv(impl === "c" ? [cyrusProgram("backupd"), "-C", conf, "-X"] : [process.execPath, script, "-C", conf, "-X"])]

export interface Session {
  readonly child: ChildProcess
  /** All stdout so far (latin1). */
  readonly out: () => string
  readonly done: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly stdout: string; readonly stderr: string }>
}

/** Starts one `-X` session; stdin stays open until the caller ends it. */
export const startSession = (impl: Impl, conf: string, script?: string, wrap: ReadonlyArray<string> = []): Session => {
  const [cmd, ...args] = [...wrap, ...backupdArgv(impl, conf, script)]
  const child = spawn(cmd!, args, {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, CYRUS_SERVICE: "backupd", CYRUS_ID: "0", BACKUPD_LOG_STDERR: "1" }
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (b: Buffer) => (stdout += b.toString("latin1")))
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString("latin1")))
  child.stdin!.on("error", () => undefined) // the server may go away first (kill, EXIT)
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
  )
  return { child, out: () => stdout, done }
}

/** One whole conversation: writes `input`, closes stdin, waits for the end. */
export const converse = async (impl: Impl, conf: string, input: string, timeoutMs = 120_000, script?: string) => {
  const s = startSession(impl, conf, script)
  s.child.stdin!.end(Buffer.from(input, "latin1"))
  const timer = setTimeout(() => s.child.kill("SIGKILL"), timeoutMs)
  const r = await s.done
  clearTimeout(timer)
  return r
}

/** Runs a Cyrus tool as cyrus; resolves with its output and exit code. */
export const runTool = (tool: string, args: ReadonlyArray<string>, timeoutMs = 60_000) =>
  new Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resolve) => {
    const [cmd, ...rest] = asCyrusArgv([cyrusProgram(tool), ...args])
    const child = spawn(cmd!, rest, { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("latin1")))
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("latin1")))
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** A session's output cut into answers: each is its data lines plus the final line (banner dropped). */
export const splitAnswers = (out: string): Array<Array<string>> => {
  const lines = out.split("\r\n")
  const answers: Array<Array<string>> = []
  let current: Array<string> = []
  for (const l of lines.slice(1)) {
    if (l === "") continue
    current.push(l)
    if (/^(OK|NO|BAD)( |$)/.test(l)) {
      answers.push(current)
      current = []
    }
  }
  return answers
}
