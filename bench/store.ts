/**
 * Store benchmark: the cost of appending a 1-message chunk (open the backup, append one
 * MESSAGE, close) to a small backup and to a large one. Appending must not depend on the
 * size of what is already there (no re-hash of the file on open or on close), so the two
 * costs must differ by less than 2x.
 *
 *   npm run build && node dist/bench/store.js [--small-mb 10] [--large-mb 1024] [--samples 20] [--dir /tmp]
 *
 * The backups are filled with incompressible messages (random bytes) so that their size on
 * disk is what was asked for; everything is deleted at the end. Exit code 1 if the ratio is
 * 2 or more.
 */
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { Effect } from "effect"
import { item, list, type File } from "../src/protocol/dlist/value.js"
import { openForAppend } from "../src/store/index.js"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback
}
const argText = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const MiB = 1024 * 1024
const FILL_MESSAGE = 4 * MiB

/** Stages a message made of a unique header and `payload`; returns its File node. */
const stage = (dir: string, tag: string, payload: Buffer): File => {
  const body = Buffer.concat([Buffer.from(`Message-ID: <${tag}@bench>\r\nSubject: ${tag}\r\n\r\n`, "latin1"), payload])
  const guid = createHash("sha1").update(body).digest("hex")
  const p = path.join(dir, guid)
  fs.writeFileSync(p, body)
  return { _tag: "File", partition: "default", guid, size: body.length, path: p, sha1: guid }
}

/** Appends incompressible messages until the data file reaches `bytes` (one chunk per 32). */
const fill = (data: string, staging: string, bytes: number, label: string) =>
  Effect.gen(function*() {
    const payload = randomBytes(Math.min(FILL_MESSAGE, Math.max(64 * 1024, Math.floor(bytes / 16))))
    let n = 0
    while ((fs.existsSync(data) ? fs.statSync(data).size : 0) < bytes) {
      yield* Effect.scoped(
        Effect.gen(function*() {
          const w = yield* openForAppend(data, { create: true, durable: false })
          for (let k = 0; k < 32 && (fs.existsSync(data) ? fs.statSync(data).size : 0) < bytes; k++) {
            // A fresh random prefix per message keeps every message distinct and incompressible.
            randomBytes(4096).copy(payload, 0)
            const f = stage(staging, `${label}-${n++}`, payload)
            yield* w.append(item("MESSAGE", list([f])))
            fs.rmSync(f.path)
          }
        })
      )
    }
    return n
  })

/** Wall time (ms) of opening `data`, appending one small message, closing. */
const timeOneAppend = (data: string, staging: string, tag: string, payload: Buffer) =>
  Effect.gen(function*() {
    const f = stage(staging, tag, payload)
    const t0 = process.hrtime.bigint()
    yield* Effect.scoped(
      Effect.gen(function*() {
        const w = yield* openForAppend(data)
        yield* w.append(item("MESSAGE", list([f])))
      })
    )
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    fs.rmSync(f.path)
    return ms
  })

interface Timing {
  readonly median: number
  readonly min: number
  readonly max: number
}

const summarise = (times: Array<number>): Timing => {
  const t = [...times].sort((a, b) => a - b)
  return { median: t[Math.floor(t.length / 2)]!, min: t[0]!, max: t[t.length - 1]! }
}

/**
 * Times 1-message appends to both backups, alternating between them so that background
 * noise (the kernel still writing back the freshly built gigabyte) hits both alike.
 */
const timeAppends = (small: string, large: string, staging: string, samples: number) =>
  Effect.gen(function*() {
    const payload = randomBytes(16 * 1024)
    const s: Array<number> = []
    const l: Array<number> = []
    for (let i = 0; i < samples + 2; i++) {
      const a = yield* timeOneAppend(small, staging, `small-probe-${i}`, payload)
      const b = yield* timeOneAppend(large, staging, `large-probe-${i}`, payload)
      if (i >= 2) { // the first two warm caches up
        s.push(a)
        l.push(b)
      }
    }
    return { small: summarise(s), large: summarise(l) }
  })

const run = (base: string) =>
  Effect.gen(function*() {
    const smallMb = arg("small-mb", 10)
    const largeMb = arg("large-mb", 1024)
    const samples = arg("samples", 20)
    const staging = path.join(base, "staging")
    fs.mkdirSync(staging)
    const small = path.join(base, "small")
    const large = path.join(base, "large")
    const t0 = Date.now()
    yield* fill(small, staging, smallMb * MiB, "small")
    const t1 = Date.now()
    const count = yield* fill(large, staging, largeMb * MiB, "large")
    const t2 = Date.now()
    const sizeOf = (p: string) => (fs.statSync(p).size / MiB).toFixed(1)
    console.log(`built small backup: ${sizeOf(small)} MiB in ${((t1 - t0) / 1000).toFixed(1)} s`)
    console.log(`built large backup: ${sizeOf(large)} MiB (${count} messages) in ${((t2 - t1) / 1000).toFixed(1)} s`)

    // Let the kernel write the built files back before timing (fdatasync would wait for it).
    yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 2000)))
    const { small: s, large: l } = yield* timeAppends(small, large, staging, samples)
    const ratio = l.median / s.median
    const fmt = (x: Timing) => `median ${x.median.toFixed(2)} ms (min ${x.min.toFixed(2)}, max ${x.max.toFixed(2)})`
    console.log(`1-message chunk append, ${sizeOf(small)} MiB backup: ${fmt(s)}`)
    console.log(`1-message chunk append, ${sizeOf(large)} MiB backup: ${fmt(l)}`)
    console.log(`ratio large/small: ${ratio.toFixed(2)} (must be < 2)`)
    console.log(`total: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return ratio
  })

const main = Effect.acquireUseRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(argText("dir", os.tmpdir()), "store-bench-"))),
  run,
  (base) => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true }))
)

Effect.runPromise(main).then(
  (ratio) => process.exit(ratio < 2 ? 0 : 1),
  (e) => {
    console.error(`bench failed: ${String((e as { _tag?: string; message?: string })._tag ?? (e as Error).message ?? e)}`)
    process.exit(2)
  }
)
