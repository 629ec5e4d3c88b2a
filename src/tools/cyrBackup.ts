/**
 * `cyr_backup`: inspect one backup — list, show, dump and json views of its chunks,
 * mailboxes and messages — with the output of Cyrus 3.6.1's tool: same columns, local
 * times, section headers on stderr, same error lines and exit codes (64 usage, 75 failure,
 * 78 configuration). Like the original it waits for the backup's lock and checks the last
 * chunk's checksums first.
 *
 * Beyond the original: `show chunks` is implemented (Cyrus says "unimplemented"), and `-o
 * file` sends `dump` output to a file.
 */
import fs from "node:fs"
import { Effect, Either, Option, Stream } from "effect"
import type { ConfigError, CyrusConfig } from "../config/index.js"
import { BackupsDb, dataFileSize, type RecordRow } from "../store/index.js"
import { EX_OK, EX_TEMPFAIL } from "../util/sysexits.js"
import {
  CYRUSDB_NOTFOUND,
  errorMessage,
  fixed6_1,
  IMAP_IOERROR,
  IMAP_NOTFOUND,
  localTime
} from "./cFormat.js"
import { cyrusVerify } from "./cyrusVerify.js"
import { getopt } from "./getopt.js"
import { JObject, jreal, jsonDump, jstring, type JValue } from "./jansson.js"
import { openErrorCode } from "./openErrors.js"
import { lookupNamed, internalMboxname } from "./targets.js"
import { openToolBackup, type ToolBackup } from "./ToolBackup.js"
import { printer, writeBytes, type Printer, type ToolIo } from "./ToolIo.js"
import { atoi, backupsDbLayer, configFailure, loadConfig, runTool, toolMain } from "./toolRuntime.js"
import { cyrBackupUsage } from "./usageTexts.js"

const PROGRAM = "cyr_backup"

type Command =
  | "list all" | "list chunks" | "list mailboxes" | "list messages"
  | "show chunks" | "show mailboxes" | "show messages"
  | "dump chunk" | "dump mailbox" | "dump message"
  | "json chunks" | "json mailboxes" | "json messages" | "json headers"

const COMMANDS: ReadonlySet<string> = new Set<Command>([
  "list all", "list chunks", "list mailboxes", "list messages",
  "show chunks", "show mailboxes", "show messages",
  "dump chunk", "dump mailbox", "dump message",
  "json chunks", "json mailboxes", "json messages", "json headers"
])

/** How many arguments each command takes after the subcommand. */
const arity = (cmd: Command): "none" | "some" | "one" =>
  cmd.startsWith("list") || (cmd.startsWith("json") && cmd !== "json headers")
    ? "none"
    : cmd.startsWith("dump")
      ? "one"
      : "some"

export interface CyrBackupArgs {
  readonly altConfig: string | undefined
  readonly mode: "file" | "mboxname" | "userid"
  readonly verbose: number
  readonly outFile: string | undefined
  readonly backup: string
  readonly command: Command
  readonly args: ReadonlyArray<string>
}

/** Parses the command line as the original does; a string result is the getopt complaint (or "" for plain usage). */
export const parseCyrBackupArgs = (argv: ReadonlyArray<string>): CyrBackupArgs | { readonly usage: string } => {
  const { events, operands } = getopt(argv, "C:fmo:uv")
  let altConfig: string | undefined
  let mode: CyrBackupArgs["mode"] | undefined
  let verbose = 0
  let outFile: string | undefined
  for (const ev of events) {
    if (ev._tag === "Unknown") return { usage: `${PROGRAM}: invalid option -- '${ev.opt}'\n` }
    if (ev._tag === "MissingArgument") return { usage: `${PROGRAM}: option requires an argument -- '${ev.opt}'\n` }
    switch (ev.opt) {
      case "C":
        altConfig = ev.arg
        break
      case "o":
        outFile = ev.arg
        break
      case "v":
        verbose++
        break
      default: {
        if (mode !== undefined) return { usage: "" }
        mode = ev.opt === "f" ? "file" : ev.opt === "m" ? "mboxname" : "userid"
      }
    }
  }
  if (operands.length < 3) return { usage: "" }
  const [backup, command, sub, ...args] = operands as [string, string, string, ...Array<string>]
  const cmd = `${command} ${sub}`
  if (!COMMANDS.has(cmd)) return { usage: "" }
  const want = arity(cmd as Command)
  if ((want === "none" && args.length !== 0) || (want === "some" && args.length === 0) || (want === "one" && args.length !== 1)) {
    return { usage: "" }
  }
  return { altConfig, mode: mode ?? "userid", verbose, outFile, backup, command: cmd as Command, args }
}

/** message_guid_decode: exactly 40 hex digits; the canonical (lower-case) text. */
export const decodeGuid = (text: string): string | undefined => (/^[0-9a-fA-F]{40}$/.test(text) ? text.toLowerCase() : undefined)

// --- message text helpers (what the C code does on a NUL-terminated buffer) ---------------

const cString = (b: Buffer): string => {
  const nul = b.indexOf(0)
  return (nul < 0 ? b : b.subarray(0, nul)).toString("latin1")
}

/** `message_parse_string`: the header value from `at`, leading blanks skipped, unfolded. */
const headerValue = (s: string, at: number): string => {
  let start = at
  while (s[start] === " " || s[start] === "\t") start++
  let end = start
  for (;;) {
    end = s.indexOf("\n", end + 1)
    if (end === -1 || (s[end + 1] !== " " && s[end + 1] !== "\t")) break
  }
  if (end === -1) end = s.length
  else if (end > start && s[end - 1] === "\r") end--
  return s.slice(start, end).replace(/\r?\n/g, "")
}

/** The headers of a message as `json headers` groups them: name → values, in order. */
export const headersJson = (message: Buffer): JObject => {
  const s = cString(message)
  const out = new JObject()
  let next: number | undefined = 0
  while (next !== undefined && next < s.length) {
    const header: number = next
    let n: number = next
    for (;;) {
      n = s.indexOf("\n", n + 1)
      if (n === -1 || (s[n + 1] !== " " && s[n + 1] !== "\t")) break
    }
    if (n === -1 || n + 1 >= s.length || s[n + 1] === "\n" || (s[n + 1] === "\r" && s[n + 2] === "\n")) next = undefined
    else next = n + 1
    const rest = s.slice(header)
    const len = rest.search(/[:\r\n]/)
    if (len < 0 || rest[len] !== ":") continue
    const name = jstring(rest.slice(0, len))
    if (name === undefined) continue
    let values = out.get(name) as Array<JValue> | undefined
    if (values === undefined) {
      values = []
      out.set(name, values)
    }
    const value = jstring(headerValue(s, header + len + 1))
    if (value !== undefined) values.push(value)
  }
  return out
}

// --- the commands --------------------------------------------------------------------

interface Ctx {
  readonly b: ToolBackup
  readonly p: Printer
  readonly config: CyrusConfig
  readonly args: ReadonlyArray<string>
  readonly dumpTo: NodeJS.WritableStream
}

/** A record's UID as the C tool reads it (`sqlite3_column_int`: the low 32 bits, signed). */
const cUid = (r: RecordRow): number => r.uid | 0

const ratioOf = (chunks: ReadonlyArray<{ offset: number; length: number | null }>, i: number, size: number) => {
  const c = chunks[i]!
  const end = i + 1 < chunks.length ? chunks[i + 1]!.offset : size
  return (100.0 * (end - c.offset)) / (c.length ?? 0)
}

const listChunks = ({ b, p }: Ctx) =>
  Effect.gen(function*() {
    const size = yield* dataFileSize(b)
    const chunks = yield* b.queries.chunks
    let text = "     id offset\tlength\tratio%\tstart time           end time\n"
    chunks.forEach((c, i) => {
      text += `${String(c.id).padStart(7)} ${c.offset}\t${c.length ?? 0}\t${fixed6_1(ratioOf(chunks, i, size))}\t${localTime(c.tsStart)}  ${localTime(c.tsEnd ?? 0)}\n`
    })
    yield* p.out(text)
    return 0
  })

const listMailboxes = ({ b, p }: Ctx) =>
  Effect.gen(function*() {
    const mailboxes = yield* b.queries.mailboxes
    let text = `${"uniqueid".padEnd(36)}  ${"last append date".padEnd(19)}  mboxname\n`
    for (const m of mailboxes) text += `${m.uniqueid}  ${localTime(m.lastAppenddate)}  ${m.mboxname}\n`
    yield* p.out(text)
    return 0
  })

const listMessages = ({ b, p }: Ctx) =>
  Effect.gen(function*() {
    const messages = yield* b.queries.messages
    yield* p.out(messages.map((m) => `${m.guid}\n`).join(""))
    return 0
  })

const listAll = (ctx: Ctx) =>
  Effect.gen(function*() {
    yield* ctx.p.err("listing chunks:\n")
    yield* listChunks(ctx)
    yield* ctx.p.err("\nlisting mailboxes:\n")
    yield* listMailboxes(ctx)
    yield* ctx.p.err("\nlisting messages:\n")
    yield* listMessages(ctx)
    return 0
  })

/** Our addition: the index row of each chunk named. */
const showChunks = ({ b, p, args }: Ctx) =>
  Effect.gen(function*() {
    const q = b.queries
    const size = yield* dataFileSize(b)
    const chunks = yield* q.chunks
    for (const arg of args) {
      const i = chunks.findIndex((c) => c.id === atoi(arg))
      if (i < 0) continue
      const c = chunks[i]!
      yield* p.out(
        `id:         ${c.id}\noffset:     ${c.offset}\nlength:     ${c.length ?? 0}\nratio%:     ${fixed6_1(ratioOf(chunks, i, size)).trim()}\n` +
          `start time: ${localTime(c.tsStart)}\nend time:   ${localTime(c.tsEnd ?? 0)}\nfile sha1:  ${c.fileSha1 ?? ""}\ndata sha1:  ${c.dataSha1 ?? ""}\n\n`
      )
    }
    return 0
  })

const showMailboxes = ({ b, p, config, args }: Ctx) =>
  Effect.gen(function*() {
    const q = b.queries
    for (const arg of args) {
      const mailbox = (yield* q.mailboxByUniqueid(arg)) ?? (yield* q.mailboxByName(internalMboxname(config, arg)))
      if (mailbox === undefined) continue
      let text = `mboxname: ${mailbox.mboxname}\nuniqueid: ${mailbox.uniqueid}\n`
      if (mailbox.deleted) text += `deleted:  ${localTime(mailbox.deleted)}\n`
      text += "messages:\n       uid  expunged time        guid\n"
      for (const r of yield* q.recordsInTableOrder(mailbox.id)) {
        text += `${String(cUid(r)).padStart(10)}  ${r.expunged ? localTime(r.expunged) : " ".repeat(19)}  ${r.guid}\n`
      }
      yield* p.out(text + "\n")
    }
    return 0
  })

/** The whole message, as the C code maps its staged copy. */
const messageData = (b: ToolBackup, guid: string) =>
  Stream.runFold(b.reader.messageBytes(guid), [] as Array<Uint8Array>, (acc, x) => (acc.push(x), acc)).pipe(
    Effect.map((parts) => Buffer.concat(parts))
  )

const showMessages = ({ b, p, args }: Ctx) =>
  Effect.gen(function*() {
    const q = b.queries
    for (const arg of args) {
      const guid = decodeGuid(arg)
      if (guid === undefined) continue
      const message = yield* q.messageByGuid(guid)
      if (message === undefined) continue
      let text = `guid:\t${message.guid}\nmailboxes:\n`
      for (const m of yield* q.mailboxesByMessage(message.guid)) text += `\t${m.uniqueid}\t${m.mboxname}\n`
      text += "headers:\n"
      const data = cString(yield* messageData(b, message.guid))
      const end = data.indexOf("\r\n\r\n")
      if (end >= 0) text += data.slice(0, end) + "\r\n"
      yield* p.out(text + "\n")
    }
    return 0
  })

/** fputs() of one buffer: stops at a NUL byte. */
const upToNul = (b: Uint8Array): Uint8Array => {
  const nul = b.indexOf(0)
  return nul < 0 ? b : b.subarray(0, nul)
}

const READ_PIECE = 8192

const dumpChunk = ({ b, args, dumpTo }: Ctx) =>
  Effect.gen(function*() {
    const id = atoi(args[0]!)
    if (id <= 0) return -1
    const chunk = yield* b.queries.chunkById(id)
    if (chunk === undefined) return IMAP_NOTFOUND
    // The C tool writes the data in 8 KiB reads with fputs, so each piece ends at a NUL.
    let carry = Buffer.alloc(0)
    yield* Stream.runForEach(b.reader.chunkData(id), (piece) =>
      Effect.gen(function*() {
        carry = Buffer.concat([carry, piece])
        while (carry.length >= READ_PIECE) {
          yield* writeBytes(dumpTo, upToNul(carry.subarray(0, READ_PIECE)))
          carry = carry.subarray(READ_PIECE)
        }
      })
    )
    yield* writeBytes(dumpTo, upToNul(carry))
    return 0
  })

const dumpMessage = ({ b, args, dumpTo }: Ctx) =>
  Effect.gen(function*() {
    const guid = decodeGuid(args[0]!)
    if (guid === undefined) return IMAP_NOTFOUND
    const message = yield* b.queries.messageByGuid(guid)
    if (message === undefined) return IMAP_NOTFOUND
    let stopped = false
    yield* Stream.runForEach(
      b.reader.messageBytes(message.guid).pipe(Stream.takeWhile(() => !stopped)),
      (piece) => {
        const part = upToNul(piece)
        if (part.length < piece.length) stopped = true
        return writeBytes(dumpTo, part)
      }
    )
    return 0
  })

const unimplemented = (name: string) => ({ p }: Ctx) => Effect.as(p.err(`${name}: unimplemented\n`), -1)

const printJson = (p: Printer, v: JValue) => p.outUtf8(jsonDump(v) + "\n")

const jsonChunks = ({ b, p }: Ctx) =>
  Effect.gen(function*() {
    const size = yield* dataFileSize(b)
    const chunks = yield* b.queries.chunks
    const out = chunks.map((c, i) =>
      new JObject()
        .set("id", c.id)
        .set("offset", c.offset)
        .set("length", c.length ?? 0)
        .set("ratio", jreal(ratioOf(chunks, i, size)))
        .set("start time", localTime(c.tsStart))
        .set("end time", localTime(c.tsEnd ?? 0))
    )
    yield* printJson(p, out)
    return 0
  })

const jsonMailboxes = ({ b, p }: Ctx) =>
  Effect.gen(function*() {
    const q = b.queries
    const out: Array<JValue> = []
    for (const m of yield* q.mailboxes) {
      const o = new JObject()
        .set("uniqueid", jstring(m.uniqueid))
        .set("mboxname", jstring(m.mboxname))
        .set("last_appenddate", localTime(m.lastAppenddate))
      const records = yield* q.recordsInTableOrder(m.id)
      if (records.length > 0) {
        o.set(
          "messages",
          records.map((r) => new JObject().set("uid", cUid(r)).set("guid", r.guid).set("expunged", r.expunged ? localTime(r.expunged) : undefined))
        )
      }
      out.push(o)
    }
    yield* printJson(p, out)
    return 0
  })

const jsonMessages = ({ b, p }: Ctx) =>
  Effect.gen(function*() {
    const q = b.queries
    const out: Array<JValue> = []
    for (const m of yield* q.messages) {
      const o = new JObject().set("guid", m.guid)
      const mailboxes = yield* q.mailboxesByMessage(m.guid)
      if (mailboxes.length > 0) {
        o.set("mailboxes", mailboxes.map((x) => new JObject().set("uniqueid", jstring(x.uniqueid)).set("mboxname", jstring(x.mboxname))))
      }
      out.push(o)
    }
    yield* printJson(p, out)
    return 0
  })

const jsonHeaders = ({ b, p, args }: Ctx) =>
  Effect.gen(function*() {
    const q = b.queries
    const out = new JObject()
    for (const arg of args) {
      const guid = decodeGuid(arg)
      if (guid === undefined) continue
      const message = yield* q.messageByGuid(guid)
      if (message === undefined) continue
      out.set(guid, headersJson(yield* messageData(b, message.guid)))
    }
    yield* printJson(p, out)
    return 0
  })

const HANDLERS: Record<Command, (ctx: Ctx) => Effect.Effect<number, unknown>> = {
  "list all": listAll,
  "list chunks": listChunks,
  "list mailboxes": listMailboxes,
  "list messages": listMessages,
  "show chunks": showChunks,
  "show mailboxes": showMailboxes,
  "show messages": showMessages,
  "dump chunk": dumpChunk,
  "dump mailbox": unimplemented("cmd_dump_mailbox"),
  "dump message": dumpMessage,
  "json chunks": jsonChunks,
  "json mailboxes": jsonMailboxes,
  "json messages": jsonMessages,
  "json headers": jsonHeaders
}

const openOutFile = (path: string) =>
  Effect.acquireRelease(
    Effect.try({ try: () => fs.createWriteStream(path, { flags: "w", mode: 0o600 }), catch: (e) => (e as Error).message }),
    (s) =>
      Effect.async<void>((resume) => {
        s.end(() => resume(Effect.void))
      })
  )

const program = (args: CyrBackupArgs, io: ToolIo): Effect.Effect<number, ConfigError> =>
  Effect.gen(function*() {
    const p = printer(io)
    const config = yield* loadConfig(PROGRAM, args.altConfig, io)

    let dataPath: string | undefined
    let r = 0
    if (args.mode === "file") dataPath = args.backup
    else {
      const mode = args.mode
      const found = yield* Effect.flatMap(BackupsDb, (db) => lookupNamed(db, config, mode, args.backup)).pipe(
        Effect.provide(backupsDbLayer(config)),
        Effect.either
      )
      if (found._tag === "Left") r = IMAP_IOERROR
      else if (Option.isNone(found.right)) r = CYRUSDB_NOTFOUND
      else dataPath = found.right.value.dataPath
    }

    if (dataPath !== undefined) {
      const path = dataPath
      r = yield* Effect.scoped(
        Effect.gen(function*() {
          const opened = yield* Effect.either(openToolBackup(path, { wait: true }))
          if (opened._tag === "Left") return openErrorCode(opened.left)
          const b = opened.right
          const verified = yield* cyrusVerify(b, "quick", args.verbose)
          yield* p.out(verified.output)
          for (const d of verified.diagnostics) yield* p.err(`${d}\n`)
          if (verified.code !== 0) return verified.code
          const dumpTo = args.outFile !== undefined && args.command.startsWith("dump") ? yield* openOutFile(args.outFile) : io.stdout
          return yield* HANDLERS[args.command]({ b, p, config, args: args.args, dumpTo }).pipe(
            Effect.catchAll((e) =>
              Effect.as(p.err(`${PROGRAM}: ${(e as { message?: string }).message ?? String(e)}\n`), IMAP_IOERROR)
            )
          )
        }).pipe(
          Effect.catchAll((e) => Effect.as(p.err(`${PROGRAM}: cannot write ${args.outFile}: ${String(e)}\n`), IMAP_IOERROR))
        )
      )
    }
    if (r !== 0) yield* p.err(`${args.backup}: ${errorMessage(r)}\n`)
    return r !== 0 ? EX_TEMPFAIL : EX_OK
  })

/** Runs `cyr_backup` with `argv` (without the program name); resolves to the exit code. */
export const runCyrBackup = (argv: ReadonlyArray<string>, io: ToolIo): Promise<number> =>
  toolMain(
    PROGRAM,
    argv,
    io,
    (a) => {
      const parsed = parseCyrBackupArgs(a)
      return "usage" in parsed ? Either.left(parsed.usage + cyrBackupUsage(PROGRAM)) : Either.right(parsed)
    },
    (args) => runTool(PROGRAM, io, program(args, io), configFailure)
  )
