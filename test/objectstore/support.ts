/**
 * Helpers for the object-store tests: a real backup written by our store (the golden lines),
 * its chunks as the library's ChunkMeta, synthetic large members, and age keys on disk.
 */
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import zlib from "node:zlib"
import { Effect } from "effect"
import { generateIdentity } from "../../src/objectstore/age.js"
import type { ChunkMeta } from "../../src/objectstore/source.js"
import { openForAppend } from "../../src/store/index.js"
import { goldenLines, tableRows } from "../store/support.js"
import { tempDir } from "../support/cyrus.js"

export { tempDir }

/** The sealed chunks of a data file as the index describes them. */
export const chunkMetas = (data: string): Array<ChunkMeta> => {
  const size = fs.statSync(data).size
  const rows = tableRows(`${data}.index`, "SELECT id, offset, length, data_sha1, file_sha1, ts_start, ts_end FROM chunk ORDER BY id") as Array<{
    id: number
    offset: number
    length: number
    data_sha1: string
    file_sha1: string
    ts_start: number
    ts_end: number
  }>
  return rows.map((r, i) => ({
    id: r.id,
    offset: r.offset,
    size: (rows[i + 1]?.offset ?? size) - r.offset,
    length: r.length,
    dataSha1: r.data_sha1,
    fileSha1: r.file_sha1,
    tsStart: r.ts_start,
    tsEnd: r.ts_end
  }))
}

/** A backup of the golden lines written by our store, chunk by chunk (each chunk sealed). */
export const goldenBackup = (dir: string, name = "alice_os"): Effect.Effect<string, unknown> =>
  Effect.gen(function*() {
    const lines = yield* goldenLines(path.join(dir, "staging"))
    const data = path.join(dir, name)
    for (const id of [...new Set(lines.map((l) => l.chunk))]) {
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true, durable: false })
          for (const l of lines.filter((x) => x.chunk === id)) yield* w.append(l.item, l.ts)
        })
      )
    }
    return data
  })

/**
 * A file holding one gzip member of `bytes` incompressible bytes (so the member is about as
 * large), written in 1 MiB blocks; returns its ChunkMeta as if it were chunk 1 of a data file.
 */
export const bigMember = async (file: string, bytes: number): Promise<ChunkMeta> => {
  const sha1 = createHash("sha1")
  const gzip = zlib.createGzip({ level: 1 })
  const out = fs.createWriteStream(file, { mode: 0o600 })
  const done = new Promise<void>((resolve, reject) => {
    out.on("finish", resolve)
    out.on("error", reject)
    gzip.on("error", reject)
  })
  gzip.pipe(out)
  for (let left = bytes; left > 0;) {
    const block = randomBytes(Math.min(left, 1 << 20))
    sha1.update(block)
    left -= block.length
    if (!gzip.write(block)) await new Promise((r) => gzip.once("drain", r))
  }
  gzip.end()
  await done
  return {
    id: 1,
    offset: 0,
    size: fs.statSync(file).size,
    length: bytes,
    dataSha1: sha1.digest("hex"),
    fileSha1: createHash("sha1").digest("hex"),
    tsStart: 1700000000,
    tsEnd: 1700000000
  }
}

export interface AgeKeys {
  readonly identity: string
  readonly recipient: string
  /** Files as the options name them: identity mode 0600. */
  readonly identityFile: string
  readonly recipientsFile: string
}

export const ageKeys = async (dir: string): Promise<AgeKeys> => {
  const { identity, recipient } = await generateIdentity()
  const identityFile = path.join(dir, "backup-identity.txt")
  const recipientsFile = path.join(dir, "backup-recipients.txt")
  fs.writeFileSync(identityFile, `# public key: ${recipient}\n${identity}\n`, { mode: 0o600 })
  fs.writeFileSync(recipientsFile, `${recipient}\n`)
  return { identity, recipient, identityFile, recipientsFile }
}

/** A fast retry policy for tests that expect failures. */
export const QUICK_RETRY = { base: "20 millis", maxDelay: "100 millis", retries: 2 } as const

export const sha1File = (file: string): string => createHash("sha1").update(fs.readFileSync(file)).digest("hex")

export const haveAgeCli = fs.existsSync("/usr/bin/age")
