/**
 * Waiting for a data-file lock held by another process: each attempt opens a descriptor,
 * fails to lock, and must close that descriptor exactly once. A second close of the same
 * number could close a file opened meanwhile and drop its POSIX locks (they belong to the
 * process and file). Counted here with spies on fs.open / fs.close, which the lock code
 * calls through the `fs` module object.
 */
import { spawn } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { Effect, Exit, Fiber, Scope } from "effect"
import { afterEach, describe, expect, it, vi } from "vitest"
import { lockDataFile } from "../../src/store/dataFileLock.js"
import { tempDir } from "../support/cyrus.js"

const ROOT = path.resolve(__dirname, "..", "..")

/** A process holding a whole-file write lock on `file` until it is killed. */
const holdLock = async (file: string) => {
  const script = `
    const fs = require("node:fs"), fsExt = require("fs-ext")
    const fd = fs.openSync(${JSON.stringify(file)}, "r+")
    fsExt.fcntl(fd, "setlk", fsExt.constants.F_WRLCK, (err) => { if (err) throw err; process.stdout.write("locked\\n") })
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ["-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] })
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve())
    child.once("exit", (code) => reject(new Error(`lock holder exited ${code}`)))
  })
  return child
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe("waiting for a data-file lock", () => {
  it("closes each failed attempt's descriptor exactly once, and the held one at scope close", async () => {
    const dir = tempDir("lockwait")
    const file = path.join(dir, "anne_x")
    fs.writeFileSync(file, "")
    const holder = await holdLock(file)
    try {
      const opened: Array<number> = []
      const closed: Array<number> = []
      const realOpen = fs.open
      const realClose = fs.close
      vi.spyOn(fs, "open").mockImplementation(((p: fs.PathLike, flags: number, mode: number, cb: (e: NodeJS.ErrnoException | null, fd: number) => void) =>
        realOpen(p, flags, mode, (e, fd) => {
          if (!e && p === file) opened.push(fd)
          cb(e, fd)
        })) as typeof fs.open)
      vi.spyOn(fs, "close").mockImplementation(((fd: number, cb?: (e: NodeJS.ErrnoException | null) => void) => {
        if (opened.includes(fd)) closed.push(fd)
        realClose(fd, cb)
      }) as typeof fs.close)

      const scope = await Effect.runPromise(Scope.make())
      const fiber = Effect.runFork(Scope.extend(lockDataFile(file, { wait: true }), scope))
      // Let it try (and fail) a few times, 100 ms apart.
      for (let i = 0; i < 200 && opened.length < 4; i++) await new Promise((r) => setTimeout(r, 20))
      expect(opened.length).toBeGreaterThanOrEqual(4)
      holder.kill("SIGKILL")
      const locked = await Effect.runPromise(Fiber.join(fiber))
      expect(opened.at(-1)).toBe(locked.fd)
      // every attempt but the last one closed, once each; the held descriptor still open
      expect(closed.length).toBe(opened.length - 1)
      await Effect.runPromise(Scope.close(scope, Exit.void))
      expect(closed.length).toBe(opened.length)
    } finally {
      holder.kill("SIGKILL")
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
