/**
 * Under `-X`, stdout is the csync stream: a log line written there would be read by the
 * client as an answer. Every `Effect.log*` goes through the service log (syslog, or stderr
 * without one), never to stdout. Runs the built program (npm test builds first).
 *
 * Two warnings, each produced for real:
 * - over a TCP connection on stdin/stdout (stdout is the socket): a login whose saslauthd
 *   cannot be reached (the password check logs why);
 * - on pipes: once an APPLY is acknowledged the file size limit of the running backupd is
 *   lowered to the data file's size (prlimit), so sealing the chunk at EXIT cannot write and
 *   the writer logs `chunk not sealed at close`. Stdout is a file here, so that a line written
 *   after the session closed its output would still be seen.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { verifyFile } from "../../src/store/index.js"

const backupd = path.resolve(__dirname, "../../bin/backupd")
const havePrlimit = spawnSync("prlimit", ["--version"]).status === 0
if (!havePrlimit) console.warn("!!! SKIPPING the -X seal-failure log test: prlimit (util-linux) is not installed")

const env = { ...process.env, CYRUS_SERVICE: "backupd", CYRUS_ID: "0", BACKUPD_LOG_STDERR: "1" }
const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

const serverDir = (extra = "") => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "logchan-"))
  dirs.push(dir)
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(conf, `configdirectory: ${dir}/conf\nbackuppartition-default: ${dir}/part\ntemp_path: ${dir}/tmp\nservername: logtest\n${extra}`)
  return { dir, conf }
}

const until = async (what: () => boolean) => {
  for (let i = 0; i < 600 && !what(); i++) await new Promise((r) => setTimeout(r, 50))
}

const findDataFile = (dir: string): string => {
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && /^anne_\w+$/.test(entry.name)) return path.join(entry.parentPath, entry.name)
  }
  throw new Error(`no data file for anne under ${dir}`)
}

describe("log lines under -X", () => {
  it("over a socket on stdin/stdout: a failed password check is logged on stderr, the client reads only answers", async () => {
    const { dir, conf } = serverDir(`sasl_pwcheck_method: saslauthd\nsasl_saslauthd_path: ${"/nonexistent-saslauthd/mux"}\nallowplaintext: yes\nadmins: cyrus\n`)
    const server = net.createServer({ pauseOnConnect: true })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    const accepted = new Promise<net.Socket>((r) => server.once("connection", r))
    const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
    const serverSide = await accepted
    server.close()
    const child = spawn(process.execPath, [backupd, "-C", conf, "-X"], { stdio: [serverSide, serverSide, "pipe"], env })
    serverSide.destroy()
    let answers = ""
    let stderr = ""
    client.setEncoding("latin1").on("data", (s: string) => (answers += s))
    child.stderr!.setEncoding("latin1").on("data", (s: string) => (stderr += s))
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve))

    await until(() => answers.includes("* OK logtest"))
    client.write(`AUTHENTICATE PLAIN ${Buffer.from("\0cyrus\0secret").toString("base64")}\r\n`)
    await until(() => /(^|\n)NO [^\r]*\r\n$/.test(answers))
    client.end("EXIT\r\n")
    expect(await exited).toBe(0)
    client.destroy()

    const lines = answers.split("\r\n")
    expect(lines.at(-1)).toBe("")
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^(\* (SASL|STARTTLS|COMPRESS|OK) |NO |OK Finished$)/)
    expect(stderr).toMatch(/^backupd\[\d+\]: .*nonexistent-saslauthd/m)
    expect(dir).toBeTruthy()
  })

  it.skipIf(!havePrlimit)("on pipes: a seal failure at close is logged on stderr, and stdout carries only the protocol", async () => {
    const { dir, conf } = serverDir()
    const outPath = path.join(dir, "stdout")
    const out = fs.openSync(outPath, "w")
    const child = spawn(process.execPath, [backupd, "-C", conf, "-X"], { stdio: ["pipe", out, "pipe"], env })
    fs.closeSync(out)
    let stderr = ""
    child.stderr!.setEncoding("latin1").on("data", (s: string) => (stderr += s))
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve))
    const stdout = () => fs.readFileSync(outPath, "latin1")

    child.stdin!.write("APPLY SUB %(USERID anne MBOXNAME user.anne.x)\r\n")
    await until(() => stdout().includes("OK Success"))
    const dataFile = findDataFile(path.join(dir, "part"))
    const size = fs.statSync(dataFile).size
    const limit = spawnSync("prlimit", ["--pid", String(child.pid), `--fsize=${size}:${size}`], { encoding: "utf8" })
    expect(limit.status, limit.stderr).toBe(0)
    child.stdin!.end("EXIT\r\n")
    expect(await exited).toBe(0)

    expect(fs.statSync(dataFile).size).toBe(size) // the seal really failed
    expect(stdout().split("\r\n")).toEqual([expect.stringMatching(/^\* OK logtest Cyrus backup server /), "OK Success", "OK Finished", ""])
    expect(stderr).toMatch(/^backupd\[\d+\]: .*chunk not sealed at close/m)
    // The chunk is sealed at the next open, and the backup verifies.
    const verdict = await Effect.runPromise(verifyFile(dataFile))
    expect(verdict.ok).toBe(true)
  })
})
