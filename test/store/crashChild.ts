/**
 * Child process for the kill -9 test: appends SUB lines (and a message every few) to the
 * backup named in argv, printing "ACK <n>" after each acknowledged append, until killed.
 */
import fs from "node:fs"
import path from "node:path"
import { createHash } from "node:crypto"
import { Effect } from "effect"
import { atom, item, kvlist, list, type File } from "../../src/protocol/dlist/value.js"
import { openForAppend } from "../../src/store/write/BackupWriter.js"

const [data, stagingDir, startText] = process.argv.slice(2) as [string, string, string]
const start = Number(startText)

const program = Effect.scoped(
  Effect.gen(function*() {
    const w = yield* openForAppend(data, { create: true })
    for (let n = start; ; n++) {
      if (n % 4 === 0) {
        const body = Buffer.from(`Subject: crash ${n}\r\n\r\n${"x".repeat(200_000 + n)}\r\n`, "latin1")
        const guid = createHash("sha1").update(body).digest("hex")
        const p = path.join(stagingDir, guid)
        fs.writeFileSync(p, body)
        yield* w.append(item("MESSAGE", list([{ _tag: "File", partition: "default", guid, size: body.length, path: p, sha1: guid } satisfies File])))
      }
      yield* w.append(item("SUB", kvlist([["USERID", atom("crash")], ["MBOXNAME", atom(`user.crash.F${n}`)]])))
      process.stdout.write(`ACK ${n}\n`)
    }
  })
)

Effect.runPromise(program).catch((e) => {
  process.stderr.write(`child failed: ${String(e)}\n`)
  process.exit(1)
})
