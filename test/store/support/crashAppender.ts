/**
 * Child process of the crash trials (test/store/crash.test.ts): opens the backup named in
 * argv, then appends forever — a MESSAGE, a SUB, a MAILBOX with a record of the latest
 * message, in turn — printing `ACK <n>` after each append has returned. The parent kills it
 * with SIGKILL at a random moment.
 *
 *   crashAppender <data> <stagingDir> <first n>
 */
import { createHash } from "node:crypto"
import { crashBody, crashGuid } from "./crashSteps.js"
import fs from "node:fs"
import path from "node:path"
import { Effect } from "effect"
import { atom, flag, item, kvlist, list, type File, type Item } from "../../../src/protocol/dlist/value.js"
import { openForAppend } from "../../../src/store/write/BackupWriter.js"

const [data, stagingDir, startText] = process.argv.slice(2) as [string, string, string]
const start = Number(startText)

const stepItem = (n: number): Item => {
  switch (n % 3) {
    case 0: {
      const body = crashBody(n)
      const guid = createHash("sha1").update(body).digest("hex")
      const p = path.join(stagingDir, guid)
      fs.writeFileSync(p, body)
      const f: File = { _tag: "File", partition: "default", guid, size: body.length, path: p, sha1: guid }
      return item("MESSAGE", list([f]))
    }
    case 1:
      return item("SUB", kvlist([["USERID", atom("crash")], ["MBOXNAME", atom(`user.crash.F${n}`)]]))
    default: {
      const m = n - 2 // the MESSAGE of this round
      const body = crashBody(m)
      const record = kvlist([
        ["UID", atom(String(m + 1))],
        ["MODSEQ", atom(String(n))],
        ["LAST_UPDATED", atom("1700000000")],
        ["FLAGS", list([flag("\\Seen")])],
        ["INTERNALDATE", atom("1700000000")],
        ["SIZE", atom(String(body.length))],
        ["GUID", atom(crashGuid(m))]
      ])
      return item(
        "MAILBOX",
        kvlist([
          ["UNIQUEID", atom("crashbox0001")],
          ["MBOXNAME", atom("user.crash")],
          ["LAST_UID", atom(String(m + 1))],
          ["HIGHESTMODSEQ", atom(String(n))],
          ["RECENTUID", atom("0")],
          ["RECENTTIME", atom("0")],
          ["LAST_APPENDDATE", atom("1700000000")],
          ["POP3_LAST_LOGIN", atom("0")],
          ["UIDVALIDITY", atom("1700000000")],
          ["PARTITION", atom("default")],
          ["ACL", atom("crash\tlrswipkxtecdan\t")],
          ["OPTIONS", atom("P")],
          ["RECORD", list([record])]
        ])
      )
    }
  }
}

const program = Effect.scoped(
  Effect.gen(function*() {
    const w = yield* openForAppend(data, { create: true })
    process.stdout.write("READY\n")
    for (let n = start; ; n++) {
      yield* w.append(stepItem(n))
      process.stdout.write(`ACK ${n}\n`)
    }
  })
)

Effect.runPromise(program).catch((e) => {
  process.stderr.write(`crash child failed: ${String((e as { _tag?: string })._tag ?? e)}\n`)
  process.exit(1)
})
