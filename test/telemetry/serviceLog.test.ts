/**
 * The service log as the Effect Logger: every level lands at its syslog priority, nothing
 * else is printed, forked fibers inherit it, and the tools' runner installs it (a tool's log
 * line goes to its stderr, never to its stdout).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Fiber } from "effect"
import { PassThrough } from "node:stream"
import { logNotice, memoryLog, withServiceLog } from "../../src/telemetry/ServiceLog.js"
import { runTool } from "../../src/tools/toolRuntime.js"
import type { ToolIo } from "../../src/tools/ToolIo.js"

describe("the service log as Effect Logger", () => {
  it.effect("maps Effect levels to syslog priorities, one line per entry", () =>
    Effect.gen(function* () {
      const log = memoryLog()
      yield* Effect.gen(function* () {
        yield* Effect.logFatal("f")
        yield* Effect.logError("e")
        yield* Effect.logWarning("w", 42)
        yield* logNotice("n")
        yield* Effect.log("i")
        yield* Effect.logInfo("i2").pipe(Effect.annotateLogs("user", "anne"))
        yield* Effect.logDebug("dropped: minimum level is Info")
        yield* Effect.logError("with cause", Cause.fail("boom\nsecond line"))
      }).pipe(withServiceLog(log))
      expect(log.lines).toEqual([
        "crit: f",
        "error: e",
        "warning: w 42",
        "notice: n",
        "info: i",
        "info: i2 user=anne",
        expect.stringMatching(/^error: with cause Error: boom second line/)
      ])
    }))

  it.effect("an inner service log (backupd's configured one inside its boot log) replaces the outer one: each line once", () =>
    Effect.gen(function* () {
      const boot = memoryLog()
      const configured = memoryLog()
      yield* Effect.gen(function* () {
        yield* Effect.log("before the configuration")
        yield* Effect.gen(function* () {
          yield* logNotice("graceful shutdown")
          const f = yield* Effect.forkDaemon(Effect.logWarning("from a daemon fiber"))
          yield* Fiber.join(f)
        }).pipe(withServiceLog(configured))
      }).pipe(withServiceLog(boot))
      expect(boot.lines).toEqual(["info: before the configuration"])
      expect(configured.lines).toEqual(["notice: graceful shutdown", "warning: from a daemon fiber"])
    }))

  it.effect("with debug, Debug lines reach LOG_DEBUG; forked fibers log through it too", () =>
    Effect.gen(function* () {
      const log = memoryLog()
      yield* Effect.gen(function* () {
        yield* Effect.logDebug("d")
        const f = yield* Effect.fork(Effect.logWarning("from a fiber"))
        yield* Fiber.join(f)
      }).pipe(withServiceLog(log, { debug: true }))
      expect(log.lines).toEqual(["debug: d", "warning: from a fiber"])
    }))

  it("a tool's Effect.log line goes to the tool's stderr, not to its output", async () => {
    const stdout = new PassThrough()
    const stderr = new PassThrough()
    let out = ""
    let err = ""
    stdout.setEncoding("latin1").on("data", (s: string) => (out += s))
    stderr.setEncoding("latin1").on("data", (s: string) => (err += s))
    const io: ToolIo = { stdout, stderr, stdin: new PassThrough(), stderrIsTty: false, env: { BACKUPD_LOG_STDERR: "1" } }
    const code = await runTool("ctl_backups", io, Effect.logWarning("chunk not sealed").pipe(Effect.as(0)), () => ({ exitCode: 70, line: "" }))
    expect(code).toBe(0)
    expect(out).toBe("")
    expect(err).toBe(`ctl_backups[${process.pid}]: chunk not sealed\n`)
  })
})
