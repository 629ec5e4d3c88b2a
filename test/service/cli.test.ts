/**
 * The backupd command line as a process: exit codes and messages for usage and configuration
 * errors, and the options it accepts. Runs the built program (npm test builds first).
 */
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { parseServiceArgs } from "../../src/service/ServiceArgs.js"

const backupd = path.resolve(__dirname, "../../bin/backupd")
const run = (args: ReadonlyArray<string>, input?: string) =>
  spawnSync(process.execPath, [backupd, ...args], {
    input: input ?? "",
    encoding: "latin1",
    timeout: 30_000,
    // master always sets these; backupd, like Cyrus's services, refuses to run without them
    env: { ...process.env, CYRUS_SERVICE: "backupd", CYRUS_ID: "0" }
  })

/** A fresh directory with an imapd.conf that a `-X` session can store backups under. */
const sessionConf = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cli-"))
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(conf, `configdirectory: ${dir}/conf\nbackuppartition-default: ${dir}/part\ntemp_path: ${dir}/tmp\nservername: clitest\n`)
  return { dir, conf }
}

describe("backupd command line", () => {
  it("exits 78 with one line naming an unreadable configuration file", () => {
    const r = run(["-C", "/nonexistent", "-X"])
    expect(r.status).toBe(78)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain("/nonexistent")
  })

  it("exits 64 with usage for an unknown option", () => {
    const r = run(["-Q"])
    expect(r.status).toBe(64)
    expect(r.stderr).toMatch(/usage: backupd/)
  })

  it("requires options and their arguments as separate words, as Cyrus services do", () => {
    const r = run(["-C/etc/imapd.conf", "-X"])
    expect(r.status).toBe(64)
    expect(r.stderr).toContain("MUST be separated by whitespace")
  })

  it("prints help and version and exits 0", () => {
    expect(run(["--help"]).status).toBe(0)
    const v = run(["--version"])
    expect(v.status).toBe(0)
    expect(v.stdout).toMatch(/^backupd \(cyrus-backupd\) \d+\.\d+\.\d+/)
  })

  it("names the file, line and option of a bad value", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cli-"))
    const conf = path.join(dir, "imapd.conf")
    fs.writeFileSync(conf, `configdirectory: ${dir}\nsync_timeout: 3x\n`)
    const r = run(["-C", conf, "-X"])
    expect(r.status).toBe(78)
    expect(r.stderr).toContain(conf)
    expect(r.stderr).toContain("line 2")
    expect(r.stderr).toContain("sync_timeout")
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("exits 78 naming the option and file when a TLS file cannot be read at start", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cli-"))
    const conf = path.join(dir, "imapd.conf")
    fs.writeFileSync(conf, `configdirectory: ${dir}/conf\ntls_server_cert: ${dir}/missing.pem\ntls_server_key: ${dir}/missing.key\n`)
    const r = run(["-C", conf, "-X"])
    expect(r.status).toBe(78)
    expect(r.stderr).toBe(`backupd: TLS setup failed: tls_server_cert: cannot read ${dir}/missing.pem: no such file or directory (ENOENT)\n`)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("serves one pre-authenticated session on a pipe with -X", () => {
    const { dir, conf } = sessionConf()
    const r = run(["-C", conf, "-X"], "NOOP\r\nAPPLY SUB %(USERID anne MBOXNAME user.anne.x)\r\nGET META anne\r\nEXIT\r\n")
    expect(r.status).toBe(0)
    expect(r.stdout.split("\r\n")).toEqual([
      expect.stringMatching(/^\* OK clitest Cyrus backup server /),
      "OK Noop completed",
      "OK Success",
      "* LSUB (user.anne.x)",
      "OK Success",
      "OK Finished",
      ""
    ])
    fs.rmSync(dir, { recursive: true, force: true })
  })
  it("messages nobody reserved wait, staged, and go to the backup whose APPLY MAILBOX references them", () => {
    const { dir, conf } = sessionConf()
    // three messages in one APPLY MESSAGE, none reserved: they wait past the end of that
    // command, and two of them are then referenced by mailboxes of anne
    const bodies = ["first", "second message", "third, the one nobody wants"].map((t) => `Subject: ${t}\r\n\r\n${t.repeat(50)}\r\n`)
    const guids = bodies.map((m) => createHash("sha1").update(m, "latin1").digest("hex"))
    const literal = (i: number) => `%{default ${guids[i]} ${bodies[i]!.length}}\r\n${bodies[i]}`
    const mailbox = (name: string, uniqueid: string, i: number) =>
      `APPLY MAILBOX %(UNIQUEID ${uniqueid} MBOXNAME ${name} SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID 1 HIGHESTMODSEQ 1 RECENTUID 1 ` +
      `RECENTTIME 1 LAST_APPENDDATE 1 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 7 PARTITION default ACL "anne\tlrswipkxtecdan\t" ` +
      `OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1 RECORD (%(UID 1 MODSEQ 1 LAST_UPDATED 1 FLAGS () INTERNALDATE 1 SIZE ${bodies[i]!.length} GUID ${guids[i]})))\r\n`
    const input =
      `APPLY MESSAGE (${literal(0)} ${literal(1)} ${literal(2)})\r\n` +
      mailbox("user.anne", "u1", 1) +
      mailbox("user.anne.later", "u2", 0) +
      "EXIT\r\n"
    const r = run(["-C", conf, "-X"], input)
    expect(r.status).toBe(0)
    expect(r.stdout.split("\r\n").slice(1)).toEqual(["OK Success", "OK Success", "OK Success", "OK Finished", ""])
    const cyrBackup = path.resolve(__dirname, "../../bin/cyr_backup")
    const dump = (i: number) => spawnSync(process.execPath, [cyrBackup, "-C", conf, "-u", "anne", "dump", "message", guids[i]!], { encoding: "latin1" })
    for (const i of [0, 1]) {
      const shown = dump(i)
      expect(shown.status).toBe(0)
      expect(shown.stdout).toBe(bodies[i])
    }
    expect(dump(2).stdout).toBe("")
    // nothing is left in the staging area once the session ended
    const staging = path.join(dir, "tmp", "sync.")
    expect(fs.existsSync(staging) ? fs.readdirSync(staging) : []).toEqual([])
    fs.rmSync(dir, { recursive: true, force: true })
  })
})

describe("option parsing", () => {
  it("applies Cyrus's defaults and reads every option", () => {
    const a = parseServiceArgs([])
    expect(Either.getOrThrow(a)).toMatchObject({ maxUses: 250, reuseTimeout: 60, externalSsf: 0, stdio: false })
    expect(Either.getOrThrow(parseServiceArgs(["-U", "0", "-T", "0", "-p", "2", "-s", "-N", "-D", "-f"]))).toMatchObject({
      maxUses: 0,
      reuseTimeout: 0,
      externalSsf: 2,
      tlsWrapped: true,
      noPassword: true,
      debugCommand: true
    })
    expect(Either.isLeft(parseServiceArgs(["-U", "many"]))).toBe(true)
    expect(Either.isLeft(parseServiceArgs(["extra"]))).toBe(true)
  })
})
