/**
 * A stand-in for Cyrus's `master`, enough to test the service contract without Cyrus: a
 * listening loopback socket handed to the child as fd 4, a pipe as fd 3 for its status
 * messages, CYRUS_SERVICE / CYRUS_ID in its environment. The child is `bin/backupd` (the
 * compiled program in dist/; built on demand when missing).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { fileURLToPath } from "node:url"

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
export const BACKUPD = path.join(ROOT, "bin", "backupd")

/** `npm test` builds first; a bare `vitest run` on a fresh clone needs dist/ too. */
export const ensureBuilt = (): void => {
  if (!fs.existsSync(path.join(ROOT, "dist", "bin", "backupd.js"))) {
    execFileSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], {
      cwd: ROOT,
      stdio: "inherit"
    })
  }
}

export const haveOpenssl = (): boolean => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

export interface ServerDir {
  readonly dir: string
  readonly conf: string
  readonly configDirectory: string
  readonly partition: string
}

/** A temp root with an imapd.conf for our backupd (`alwaystrue` passwords, admin `admin`). */
export const makeServerDir = (extraConf: ReadonlyArray<string> = []): ServerDir => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-svc-"))
  const configDirectory = path.join(dir, "conf")
  const partition = path.join(dir, "backups")
  for (const d of [configDirectory, path.join(configDirectory, "socket"), partition, path.join(dir, "staging")]) {
    fs.mkdirSync(d, { recursive: true })
  }
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${configDirectory}`,
      `backuppartition-default: ${partition}`,
      `backup_staging_path: ${path.join(dir, "staging")}`,
      "servername: svc-test",
      "admins: admin",
      "allowplaintext: yes",
      "sasl_pwcheck_method: alwaystrue",
      "sasl_mech_list: PLAIN",
      ...extraConf,
      ""
    ].join("\n")
  )
  return { dir, conf, configDirectory, partition }
}

/** A self-signed certificate and key (CN `cn`) made with the openssl command. */
export const makeCertificate = (dir: string, cn: string, name = "server"): { cert: string; key: string } => {
  const cert = path.join(dir, `${name}.crt`)
  const key = path.join(dir, `${name}.key`)
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${cn}`],
    { stdio: "ignore" }
  )
  return { cert, key }
}

export interface StatusMessage {
  readonly message: number
  readonly pid: number
}

export interface FakeMaster {
  readonly port: number
  readonly child: ChildProcess
  readonly pid: number
  /** Status messages received so far, decoded from 8-byte host-order records. */
  readonly statuses: Array<StatusMessage>
  /** Raw status bytes received so far. */
  readonly statusBytes: () => Buffer
  readonly stderr: () => string
  /** Waits (bounded) until the child opened its accept lock: it is about to accept. */
  readonly ready: () => Promise<void>
  /** Resolves with the child's exit code (or 128 + signal number). */
  readonly exited: Promise<number>
  readonly close: () => Promise<void>
}

export interface FakeMasterOptions {
  readonly args?: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string | undefined>>
  /** The script node runs (default bin/backupd): a copy lets a test "upgrade" the program. */
  readonly script?: string
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }

export const startFakeMaster = async (server: ServerDir, options: FakeMasterOptions = {}): Promise<FakeMaster> => {
  ensureBuilt()
  const listener = net.createServer()
  await new Promise<void>((resolve) => listener.listen({ host: "127.0.0.1", port: 0 }, resolve))
  const port = (listener.address() as net.AddressInfo).port
  // The listening socket's descriptor: the child inherits it as fd 4, as from master.
  const listenFd = (listener as unknown as { _handle: { fd: number } })._handle.fd
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries({ ...process.env, CYRUS_SERVICE: "backupd", CYRUS_ID: "7", BACKUPD_LOG_STDERR: "1", ...options.env })) {
    if (v !== undefined) env[k] = v
  }
  const child = spawn(process.execPath, [options.script ?? BACKUPD, "-C", server.conf, ...(options.args ?? [])], {
    stdio: ["ignore", "ignore", "pipe", "pipe", listenFd],
    env
  })
  // Our copy of the listening socket is not needed any more (the child has its own): stop
  // accepting here so every connection goes to the child.
  listener.close()
  let status = Buffer.alloc(0)
  const statuses: Array<StatusMessage> = []
  const le = os.endianness() === "LE"
  ;(child.stdio[3] as NodeJS.ReadableStream).on("data", (b: Buffer) => {
    status = Buffer.concat([status, b])
    while (statuses.length * 8 + 8 <= status.length) {
      const off = statuses.length * 8
      statuses.push({
        message: le ? status.readInt32LE(off) : status.readInt32BE(off),
        pid: le ? status.readInt32LE(off + 4) : status.readInt32BE(off + 4)
      })
    }
  })
  let err = ""
  child.stderr!.on("data", (b: Buffer) => (err += b.toString("latin1")))
  const exited = new Promise<number>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : SIGNALS[signal] ?? 0)))
  )
  return {
    port,
    child,
    pid: child.pid!,
    statuses,
    statusBytes: () => status,
    stderr: () => err,
    ready: async () => {
      const lock = path.join(server.configDirectory, "socket", `${env["CYRUS_SERVICE"]}-${env["CYRUS_ID"]}.lock`)
      await eventually(() => fs.existsSync(lock) || child.exitCode !== null, 60_000, "backupd to start")
      if (!fs.existsSync(lock)) throw new Error(`backupd exited ${child.exitCode} at startup: ${err}`)
    },
    exited,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL")
        await exited
      }
    }
  }
}

/** A line-oriented csync client over TCP or TLS, for talking to the served process. */
export interface LineClient {
  readonly socket: net.Socket
  /** The next CRLF-terminated line (without CRLF); rejects on timeout or close. */
  readonly line: (timeoutMs?: number) => Promise<string>
  /** Lines up to and including the first one starting with `* OK` (the banner). */
  readonly banner: (timeoutMs?: number) => Promise<ReadonlyArray<string>>
  readonly send: (text: string) => void
  /** Upgrades to TLS in place (after STARTTLS's OK). */
  readonly startTls: (options?: tls.ConnectionOptions) => Promise<void>
  readonly closed: Promise<void>
  readonly end: () => void
}

const lineClientOn = (initial: net.Socket): LineClient => {
  let socket: net.Socket = initial
  let buffer = ""
  let waiters: Array<() => void> = []
  let isClosed = false
  const wake = () => {
    const w = waiters
    waiters = []
    w.forEach((f) => f())
  }
  const attach = (s: net.Socket) => {
    s.on("data", (b: Buffer) => {
      buffer += b.toString("latin1")
      wake()
    })
    s.on("close", () => {
      isClosed = true
      wake()
    })
    s.on("error", () => {})
  }
  attach(socket)
  const closed = new Promise<void>((resolve) => initial.on("close", () => resolve()))
  const line = (timeoutMs = 30_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms (have ${JSON.stringify(buffer)})`)), timeoutMs)
      const attempt = () => {
        const i = buffer.indexOf("\r\n")
        if (i >= 0) {
          clearTimeout(timer)
          const l = buffer.slice(0, i)
          buffer = buffer.slice(i + 2)
          resolve(l)
        } else if (isClosed) {
          clearTimeout(timer)
          reject(new Error(`connection closed (have ${JSON.stringify(buffer)})`))
        } else waiters.push(attempt)
      }
      attempt()
    })
  const client: LineClient = {
    get socket() {
      return socket
    },
    line,
    banner: async (timeoutMs) => {
      const lines: Array<string> = []
      for (;;) {
        const l = await line(timeoutMs)
        lines.push(l)
        if (l.startsWith("* OK")) return lines
      }
    },
    send: (text) => void socket.write(Buffer.from(text, "latin1")),
    startTls: (opts = {}) =>
      new Promise((resolve, reject) => {
        const plain = socket
        plain.removeAllListeners("data")
        const t = tls.connect({ socket: plain, rejectUnauthorized: false, ...opts }, () => resolve())
        t.once("error", reject)
        socket = t
        attach(t)
      }),
    closed,
    end: () => socket.end()
  }
  return client
}

export const connectClient = (port: number, useTls?: tls.ConnectionOptions): Promise<LineClient> =>
  new Promise((resolve, reject) => {
    if (useTls !== undefined) {
      const t = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...useTls }, () => resolve(lineClientOn(t)))
      t.once("error", reject)
    } else {
      const s = net.connect({ host: "127.0.0.1", port }, () => resolve(lineClientOn(s)))
      s.once("error", reject)
    }
  })

/** AUTHENTICATE PLAIN as `user` (any password: the test config uses alwaystrue). */
export const plainAuth = (user: string, password = "x"): string =>
  `AUTHENTICATE PLAIN ${Buffer.from(`\0${user}\0${password}`, "latin1").toString("base64")}\r\n`

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `check` every 25 ms until it is true or `timeoutMs` passes. */
export const eventually = async (check: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}
