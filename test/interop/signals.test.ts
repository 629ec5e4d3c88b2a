/**
 * SIGTERM to our backupd (under the real master) while it receives the APPLY MESSAGE of a
 * 20 MB message from the real sync_client. A throttling proxy between the two stretches the
 * transfer over a few seconds so the signal lands mid-message. Afterwards every backup must
 * verify with the real `ctl_backups verify`, and the next sync must complete.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import {
  deliver,
  haveCyrus,
  liveSleep,
  populate,
  recipientFor,
  requireSuccess,
  runCtlBackups,
  runSyncClient,
  startBackupServer,
  startSource,
  warnIfNoCyrus
} from "../harness/index.js"
import { ensureBuilt } from "../service/support/fakeMaster.js"
import { MASTER_COMPLAINTS } from "../service/support/masterLog.js"

const cyrusPresent = haveCyrus()
warnIfNoCyrus("signals (SIGTERM during a 20 MB APPLY MESSAGE)")

const BACKUPD = path.resolve("bin/backupd")

/** A loopback TCP proxy that forwards client→server at about `bytesPerSecond`. */
const throttlingProxy = (target: number, bytesPerSecond: number) =>
  Effect.acquireRelease(
    Effect.async<{ port: number; forwarded: () => number; server: net.Server }>((resume) => {
      let forwarded = 0
      const server = net.createServer((client) => {
        const upstream = net.connect({ host: "127.0.0.1", port: target })
        client.on("data", (chunk: Buffer) => {
          forwarded += chunk.length
          upstream.write(chunk)
          client.pause()
          setTimeout(() => client.resume(), Math.ceil((chunk.length / bytesPerSecond) * 1000))
        })
        upstream.pipe(client)
        const close = () => {
          client.destroy()
          upstream.destroy()
        }
        client.on("close", close)
        upstream.on("close", close)
        client.on("error", close)
        upstream.on("error", close)
      })
      server.listen({ host: "127.0.0.1", port: 0 }, () =>
        resume(Effect.succeed({ port: (server.address() as net.AddressInfo).port, forwarded: () => forwarded, server }))
      )
    }),
    (p) => Effect.sync(() => p.server.close())
  )

const backupdChildren = (masterPid: number): ReadonlyArray<number> =>
  fs.readdirSync("/proc").flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return []
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      return ppid === masterPid && fs.readFileSync(`/proc/${entry}/cmdline`, "latin1").includes(BACKUPD) ? [Number(entry)] : []
    } catch {
      return []
    }
  })

/** A 20 MB message: a base64 body of random bytes (compresses only to ~75 %). */
const bigMessage = (): string => {
  const body = randomBytes(15 * 1024 * 1024).toString("base64").replace(/.{76}/g, "$&\r\n")
  return [
    "Return-Path: <big@example.org>",
    "From: big@example.org",
    "To: alice@example.com",
    "Subject: twenty megabytes",
    "Message-ID: <big-20mb@example.org>",
    "Date: Tue, 14 Nov 2023 22:13:20 +0000",
    "MIME-Version: 1.0",
    "Content-Type: application/octet-stream",
    "Content-Transfer-Encoding: base64",
    "",
    body,
    ""
  ].join("\r\n")
}

describe.skipIf(!cyrusPresent)("signals: SIGTERM during a 20 MB APPLY MESSAGE", () => {
  it.live(
    "leaves every backup verifying, and the next sync completes",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          ensureBuilt()
          const backup = yield* startBackupServer({
            backupdCmd: BACKUPD,
            extraConf: ["backupd_sasl_pwcheck_method: alwaystrue"]
          })
          const proxy = yield* throttlingProxy(backup.port, 4 * 1024 * 1024)
          const source = yield* startSource({ backupPort: proxy.port })
          yield* populate(source, { messages: 6, seed: 5 })
          const big = bigMessage()
          expect(big.length).toBeGreaterThan(20_000_000)
          const delivered = yield* deliver(source.lmtpPort, [{ recipient: recipientFor("alice", "INBOX"), message: big }])
          expect(delivered.refused).toEqual([])

          const sync = yield* Effect.fork(runSyncClient(source, ["-A"], { timeout: "120 seconds" }))
          // Wait until a good part of the big message went through, then signal the backupd.
          let victim: number | undefined
          for (let i = 0; i < 1200 && victim === undefined; i++) {
            if (proxy.forwarded() > 6 * 1024 * 1024) victim = backupdChildren(backup.masterPid)[0]
            if (victim === undefined) yield* liveSleep("50 millis")
          }
          expect(victim, "the big APPLY MESSAGE never got going").toBeDefined()
          const forwardedAtSignal = proxy.forwarded()
          process.kill(victim!, "SIGTERM")
          const first = yield* sync.await.pipe(Effect.flatten)
          // The message was still streaming when the signal came.
          expect(proxy.forwarded()).toBeGreaterThan(forwardedAtSignal)
          // The process ended (exit 75) once the command in progress was done.
          for (let i = 0; i < 200 && fs.existsSync(`/proc/${victim}`); i++) yield* liveSleep("50 millis")
          expect(fs.existsSync(`/proc/${victim}`)).toBe(false)

          yield* backup.awaitBackupsClosed()
          const afterSignal = yield* runCtlBackups(backup, ["verify", "-A"])
          expect(afterSignal.exitCode, `${afterSignal.stdout}${afterSignal.stderr}\nsync: ${first.stderr}`).toBe(0)

          // The next sync, straight to the server, completes and everything still verifies.
          yield* source.retarget(backup.port)
          yield* runSyncClient(source, ["-A"], { timeout: "120 seconds" }).pipe(Effect.flatMap(requireSuccess))
          yield* backup.awaitBackupsClosed()
          const verify = yield* runCtlBackups(backup, ["verify", "-A"])
          expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
          const list = yield* runCtlBackups(backup, ["list"])
          expect(list.stdout).toContain("alice")
          const aliceData = list.stdout
            .split("\n")
            .find((l) => /\balice\b/.test(l))
            ?.trim()
            .split(/\s+/)
            .at(-1)
          expect(aliceData).toBeDefined()
          expect(fs.statSync(aliceData!).size).toBeGreaterThan(10_000_000)

          const masterLog = yield* backup.masterLog
          expect(masterLog).not.toMatch(MASTER_COMPLAINTS)
          if (backup.syslogCapture.available) {
            const lines = yield* backup.syslog
            expect(lines.some((l) => l.includes(`backupd[${victim}]: graceful shutdown`)), lines.join("\n")).toBe(true)
          }
        })
      ),
    300_000
  )
})
