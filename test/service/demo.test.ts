/** `npm start`'s demo (dist/demo/main.js) runs to exit 0 and prints the backups it made. */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { clientStream } from "../../src/demo/replay.js"
import { ensureBuilt, ROOT } from "./support/fakeMaster.js"

describe("demo", () => {
  it("extracts the client side of a telemetry log, without COMPRESS", () => {
    const log = "---------- admin Sat Nov 28 17:05:44 2026\n\n<1795885544<COMPRESS DEFLATE\r\n>1795885544>OK DEFLATE active\r\n" +
      "<1795885544<GET USER alice\r\n>1795885544>OK Success\r\n<1795885545<EXIT\r\n>1795885545>OK Finished\r\n"
    expect(clientStream(log)).toBe("GET USER alice\r\nEXIT\r\n")
  })

  it("replays a recorded sync into a fresh server on loopback and lists the backups (exit 0)", () => {
    ensureBuilt()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-demo-"))
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, "dist", "demo", "main.js")], {
        env: { ...process.env, CYB_DEMO_DIR: dir },
        encoding: "latin1",
        timeout: 100_000
      })
      expect(r.status, r.stdout + r.stderr).toBe(0)
      expect(r.stdout).toMatch(/answers: \d+ OK, 0 NO\/BAD/)
      const rows = r.stdout.split("\n").filter((l) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\t *\d+\t\w+\t/.test(l))
      expect(rows.map((l) => l.split("\t")[2])).toEqual(["alice", "bob", "carol"])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
