/**
 * Helpers for the store tests: the golden fixture (parsed back into APPLY items with staged
 * message files), index rows, a checksum check, and an imapd.conf for the real Cyrus tools
 * (test/support/cyrus.ts runs them).
 */
import { createRequire } from "node:module"
import { createHash } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import zlib from "node:zlib"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect } from "effect"
import { ByteReader, byteClass } from "../../src/protocol/ByteReader.js"
import { parseItem } from "../../src/protocol/dlist/parse.js"
import type { Item } from "../../src/protocol/dlist/value.js"
import { chownForCyrus } from "../support/cyrus.js"

/** better-sqlite3 ships no types; the tests only need these calls to read index rows. */
interface ReadOnlyDb {
  prepare(sql: string): { all(): Array<unknown> }
  close(): void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new (path: string, opts?: { readonly?: boolean }) => ReadOnlyDb

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "golden")
export const GOLDEN_DATA = path.join(FIXTURES, "alice.backup.gz")
export const GOLDEN_INDEX = path.join(FIXTURES, "alice.backup.index.sqlite")

/** Copies the golden data file and index into `dir`; returns the data file path. */
export const copyGolden = (dir: string, name = "alice_golden"): string => {
  const data = path.join(dir, name)
  fs.copyFileSync(GOLDEN_DATA, data)
  fs.copyFileSync(GOLDEN_INDEX, `${data}.index`)
  fs.chmodSync(data, 0o600)
  fs.chmodSync(`${data}.index`, 0o600)
  return data
}

export interface GoldenLine {
  readonly chunk: number
  readonly ts: number
  readonly item: Item
}

export const goldenChunks = (): Array<{ id: number; offset: number; length: number; data_sha1: string; file_sha1: string }> => {
  const db = new Database(GOLDEN_INDEX, { readonly: true })
  try {
    return db.prepare("SELECT id, offset, length, data_sha1, file_sha1 FROM chunk ORDER BY id").all() as never
  } finally {
    db.close()
  }
}

/** Reads a whole table of the golden (or any) index, rows as plain objects. */
export const tableRows = (indexPath: string, sql: string): Array<Record<string, unknown>> => {
  const db = new Database(indexPath, { readonly: true })
  try {
    return db.prepare(sql).all() as Array<Record<string, unknown>>
  } finally {
    db.close()
  }
}

/**
 * The literals of a chunk's lines (uncompressed text, latin1): where each `{n}` or `{n+}`
 * header starts, its length and which form it has. Message bodies (`%{part guid size}`) and
 * literal contents are skipped, so a header-like text inside them is not counted. (Outside
 * literals, `{n+}` CRLF can only be a header: atoms exclude `{`, quoted strings exclude CR LF.)
 */
export const lineLiterals = (text: string): Array<{ readonly at: number; readonly size: number; readonly plus: boolean }> => {
  const header = /%\{[^ ]+ [0-9a-fA-F]{40} (\d+)\}\r\n|\{(\d+)(\+?)\}\r\n/g
  const out: Array<{ at: number; size: number; plus: boolean }> = []
  for (let m = header.exec(text); m !== null; m = header.exec(text)) {
    const size = Number(m[1] ?? m[2])
    if (m[2] !== undefined) out.push({ at: m.index, size, plus: m[3] === "+" })
    header.lastIndex = m.index + m[0].length + size
  }
  return out
}

/**
 * The golden chunks' uncompressed bytes as we write them: the C backupd's bytes with every
 * `{n+}` literal header of a line turned into `{n}` (our one deliberate difference, see
 * docs/storage.md) and nothing else changed. `offset` maps a golden in-chunk offset to ours.
 */
export const goldenChunksAsWritten = (): Array<{ id: number; bytes: Buffer; literals: number; offset: (golden: number) => number }> => {
  const file = fs.readFileSync(GOLDEN_DATA)
  const chunks = goldenChunks()
  return chunks.map((c, i) => {
    const s = zlib.gunzipSync(file.subarray(c.offset, chunks[i + 1]?.offset ?? file.length)).toString("latin1")
    const plus = lineLiterals(s).filter((l) => l.plus)
    const out: Array<string> = []
    let copied = 0
    for (const l of plus) {
      const digits = String(l.size)
      out.push(s.slice(copied, l.at), `{${digits}}`)
      copied = l.at + digits.length + 3 // `{`, the digits, `+}`
    }
    out.push(s.slice(copied))
    return {
      id: c.id,
      bytes: Buffer.from(out.join(""), "latin1"),
      literals: plus.length,
      offset: (golden: number) => golden - plus.filter((l) => l.at < golden).length
    }
  })
}

/** The golden file's APPLY lines, parsed, with messages staged under `stagingDir`. */
export const goldenLines = (stagingDir: string): Effect.Effect<Array<GoldenLine>, unknown> =>
  Effect.gen(function*() {
    const file = fs.readFileSync(GOLDEN_DATA)
    const chunks = goldenChunks()
    const out: Array<GoldenLine> = []
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!
      const end = chunks[i + 1]?.offset ?? file.length
      const data = zlib.gunzipSync(file.subarray(c.offset, end))
      const reader = ByteReader.fromBytes(data.subarray(29))
      while (yield* reader.ensure(1)) {
        const ts = yield* reader.readToken(byteClass(" "), 32)
        yield* reader.readExactly(6)
        const parsed = yield* parseItem(reader, { files: { _tag: "Stage", stagingDir } })
        if (parsed.terminator === 0x0d) yield* reader.readByte
        out.push({ chunk: c.id, ts: Number(ts.token), item: parsed.item })
      }
    }
    return out
  }).pipe(Effect.provide(NodeFileSystem.layer))

/** A minimal imapd.conf for the backup tools, under `dir`. */
export const cyrusConf = (dir: string): string => {
  for (const d of ["conf", "backups", "tmp"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${dir}/conf`,
      `backuppartition-default: ${dir}/backups`,
      `backup_db_path: ${dir}/conf/backups.db`,
      `temp_path: ${dir}/tmp`,
      "syslog_prefix: store-test",
      ""
    ].join("\n")
  )
  chownForCyrus(dir)
  return conf
}

/** Full checksum check of every chunk row against the file (what `ctl_backups verify` does first). */
export const checkChunks = (data: string): Array<string> => {
  const file = fs.readFileSync(data)
  const chunks = tableRows(`${data}.index`, "SELECT id, offset, length, file_sha1, data_sha1 FROM chunk ORDER BY id") as Array<{
    id: number
    offset: number
    length: number
    file_sha1: string
    data_sha1: string
  }>
  const problems: Array<string> = []
  const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex")
  let end = 0
  chunks.forEach((c, i) => {
    if (sha1(file.subarray(0, c.offset)) !== c.file_sha1) problems.push(`chunk ${c.id}: file_sha1`)
    const next = chunks[i + 1]?.offset ?? file.length
    let raw: Buffer
    try {
      raw = zlib.gunzipSync(file.subarray(c.offset, next))
    } catch (e) {
      problems.push(`chunk ${c.id}: ${(e as Error).message}`)
      return
    }
    if (raw.length !== c.length) problems.push(`chunk ${c.id}: length ${raw.length} != ${c.length}`)
    if (sha1(raw) !== c.data_sha1) problems.push(`chunk ${c.id}: data_sha1`)
    end = next
  })
  if (end !== file.length) problems.push(`file has ${file.length - end} bytes after the last chunk`)
  return problems
}
