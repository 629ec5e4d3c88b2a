/**
 * An authenticated backupd session run in this process: the real session, handlers, backups.db
 * and store, assembled the way `serveConnection` does it, over an in-memory Connection.
 * Used by the model-based and fuzz tests, where a process per conversation would be too slow.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Deferred, Effect, Either, Layer, ManagedRuntime, Option } from "effect"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { makeAuthenticatorWith, saslFailure } from "../../../src/auth/index.js"
import { Config } from "../../../src/config/index.js"
import type { Connection } from "../../../src/transport/Connection.js"
import { authSettingsFrom, serveConnection, type SessionEnv } from "../../../src/service/backupd.js"
import { parseServiceArgs } from "../../../src/service/ServiceArgs.js"
import type { StopReason } from "../../../src/session/StopReason.js"
import { UserBackups } from "../../../src/store/locate/UserBackups.js"
import { userBackupsLayer } from "../../../src/store/locate/userBackupsLive.js"
import { priorityName, serviceLogFrom, withServiceLog } from "../../../src/telemetry/ServiceLog.js"

/** A backup server's directories and its imapd.conf. */
export interface ServerRoot {
  readonly root: string
  readonly conf: string
  readonly backups: string
  readonly staging: string
  readonly configDir: string
}

export const makeServerRoot = (prefix: string, extra = "", base = os.tmpdir()): ServerRoot => {
  const root = fs.mkdtempSync(path.join(base, `cybconf-${prefix}-`))
  fs.chmodSync(root, 0o755)
  const configDir = path.join(root, "conf")
  const backups = path.join(root, "backups")
  const staging = path.join(root, "staging")
  for (const d of [configDir, backups, staging]) fs.mkdirSync(d, { recursive: true })
  const conf = path.join(root, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${configDir}`,
      `backuppartition-default: ${backups}`,
      `backup_db_path: ${configDir}/backups.db`,
      `backup_staging_path: ${staging}`,
      "servername: cyb-conformance",
      "admins: admin",
      "sync_timeout: 30",
      extra
    ].join("\n") + "\n"
  )
  return { root, conf, backups, staging, configDir }
}

/** Every file under `dir` (relative paths). */
export const listFiles = (dir: string): Array<string> => {
  const out: Array<string> = []
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.push(path.relative(dir, p))
    }
  }
  if (fs.existsSync(dir)) walk(dir)
  return out.sort()
}

/** The data files (not .index) of a backup partition. */
export const dataFiles = (backups: string): Array<string> =>
  listFiles(backups).filter((f) => !f.endsWith(".index") && !f.includes(".old")).map((f) => path.join(backups, f))

/** A connection whose input is pushed by the test and whose output is collected. */
class MemoryConnection {
  private readonly queue: Array<Uint8Array | null> = []
  private waiter: ((c: Uint8Array | null) => void) | undefined
  private pending: Array<Buffer> = []
  output = ""
  closed = false
  onOutput: (() => void) | undefined

  push(bytes: string | null): void {
    const chunk = bytes === null ? null : Buffer.from(bytes, "latin1")
    if (this.waiter !== undefined) {
      const w = this.waiter
      this.waiter = undefined
      w(chunk)
    } else this.queue.push(chunk)
  }

  readonly connection: Connection = {
    peer: { clientHost: "[unix socket]", isLocal: true, remoteAddress: undefined, remotePort: undefined, localAddress: undefined, localPort: undefined },
    read: Effect.async<Option.Option<Uint8Array>>((resume) => {
      const give = (c: Uint8Array | null) => resume(Effect.succeed(c === null ? Option.none() : Option.some(c)))
      if (this.queue.length > 0) {
        const c = this.queue.shift()!
        if (c === null) this.queue.unshift(null)
        give(c)
        return
      }
      this.waiter = give
      return Effect.sync(() => void (this.waiter = undefined))
    }),
    write: (bytes) => Effect.sync(() => void this.pending.push(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Buffer.from(bytes))),
    flush: Effect.sync(() => {
      this.output += Buffer.concat(this.pending).toString("latin1")
      this.pending = []
      this.onOutput?.()
    }),
    startCompression: () => Effect.void,
    startTls: () => Effect.void,
    compressed: false,
    tlsActive: false,
    peerCertificateName: undefined,
    stats: { protocolIn: 0, protocolOut: 0, transportIn: 0, transportOut: 0 },
    close: Effect.sync(() => {
      this.closed = true
      this.onOutput?.()
    })
  }
}

export interface LogLine {
  readonly level: string
  readonly line: string
}

/** A server (config + backups.db + partitions) that sessions can be opened against, in-process. */
export interface InProcessServer {
  readonly root: ServerRoot
  readonly log: Array<LogLine>
  /** Runs one whole conversation (input then end of input); resolves with everything sent back. */
  readonly converse: (input: string) => Promise<string>
  /** Opens an interactive session. */
  readonly open: () => InteractiveSession
  readonly dispose: () => Promise<void>
}

export interface InteractiveSession {
  /** Sends a command and resolves with the answer lines up to and including the final one. */
  readonly command: (text: string) => Promise<Array<string>>
  readonly close: () => Promise<string>
}

/** True when `line` ends an answer (not a `* ` data line). */
export const isFinal = (line: string) => /^(OK|NO|BAD)( |$)/.test(line)

export const makeInProcessServer = async (root: ServerRoot): Promise<InProcessServer> => {
  const args = parseServiceArgs(["-C", root.conf, "-X"])
  if (Either.isLeft(args)) throw new Error(args.left.message)
  const configLayer = Config.layer({ path: root.conf, service: "backupd", env: { CYRUS_SERVICE: "backupd" } })
  const layer = Layer.mergeAll(configLayer, userBackupsLayer().pipe(Layer.provide(configLayer))).pipe(Layer.provideMerge(NodeFileSystem.layer))
  const runtime = ManagedRuntime.make(layer)
  const logLines: Array<LogLine> = []
  const log = serviceLogFrom((priority, line) => void logLines.push({ level: priorityName(priority), line }), false)
  const env: SessionEnv = await runtime.runPromise(
    Effect.gen(function* () {
      const config = yield* Config
      const backups = yield* UserBackups
      const auth = makeAuthenticatorWith(authSettingsFrom(config, args.right), {
        check: () => Effect.succeed(saslFailure("NOUSER", "no password check configured"))
      })
      const stop = yield* Deferred.make<StopReason>()
      return { config, auth, backups, log, stop }
    })
  )

  const start = () => {
    const mem = new MemoryConnection()
    const done = runtime.runPromise(serveConnection(mem.connection, env).pipe(withServiceLog(log)))
    return { mem, done }
  }

  return {
    root,
    log: logLines,
    converse: async (input) => {
      const { mem, done } = start()
      mem.push(input)
      mem.push(null)
      await done
      return mem.output
    },
    open: () => {
      const { mem, done } = start()
      let consumed = 0
      const nextAnswer = (firstLineOnly = false) =>
        new Promise<Array<string>>((resolve, reject) => {
          const check = () => {
            const text = mem.output.slice(consumed)
            const lines = text.split("\r\n")
            let used = 0
            for (let i = 0; i < lines.length - 1; i++) {
              used += lines[i]!.length + 2
              if (firstLineOnly || isFinal(lines[i]!)) {
                consumed += used
                mem.onOutput = undefined
                resolve(lines.slice(0, i + 1))
                return true
              }
            }
            if (mem.closed) {
              mem.onOutput = undefined
              reject(new Error(`session closed; unanswered output: ${JSON.stringify(text)}`))
              return true
            }
            return false
          }
          if (!check()) mem.onOutput = () => void check()
        })
      let banner: Promise<Array<string>> | undefined = nextAnswer(true)
      return {
        command: async (text) => {
          if (banner !== undefined) {
            await banner
            banner = undefined
          }
          const answer = nextAnswer()
          mem.push(text.endsWith("\r\n") ? text : text + "\r\n")
          return answer
        },
        close: async () => {
          mem.push(null)
          await done
          return mem.output
        }
      }
    },
    dispose: () => runtime.dispose()
  }
}
