/** Shared helpers for the dlist codec tests (not a test file itself). */
import type { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { ByteReader, type ByteSource } from "../../src/protocol/ByteReader.js"
import { parseItem, type ParseOptions } from "../../src/protocol/dlist/parse.js"
import { printItemParts } from "../../src/protocol/dlist/print.js"
import { filesOf, type Item } from "../../src/protocol/dlist/value.js"

export const fixturesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "transcripts")
export const fixture = (name: string): Buffer => readFileSync(path.join(fixturesDir, name))

export const FsLive = NodeFileSystem.layer
/** The file system service built once (building the layer per parse dominates small tests). */
const fsContext = Effect.runSync(Effect.context<FileSystem.FileSystem>().pipe(Effect.provide(FsLive)))
export const provideFs = <A, E>(e: Effect.Effect<A, E, FileSystem.FileSystem>): Effect.Effect<A, E> =>
  Effect.provide(e, fsContext)

/** A source handing out `bytes` in pieces of the given sizes (cycled), to cut tokens anywhere. */
export const chunkedSource = (bytes: Uint8Array, sizes: ReadonlyArray<number>): ByteSource => {
  let at = 0
  let k = 0
  return Effect.sync(() => {
    if (at >= bytes.length) return null
    const n = Math.max(1, sizes.length === 0 ? bytes.length : sizes[k++ % sizes.length]!)
    const out = bytes.subarray(at, Math.min(bytes.length, at + n))
    at += out.length
    return out
  })
}

export const readerOf = (bytes: Uint8Array, sizes: ReadonlyArray<number> = []): ByteReader =>
  ByteReader.make(chunkedSource(bytes, sizes))

/** Parse one item from bytes (Discard mode unless told), with the file system provided. */
export const parseBytes = (bytes: Uint8Array, options?: ParseOptions, sizes: ReadonlyArray<number> = []) =>
  provideFs(parseItem(readerOf(bytes, sizes), options))

/**
 * Re-print an item parsed from `input` in Discard mode: file bodies are taken from `input`
 * at the offsets the parser recorded (and must hash to their GUID).
 */
export const reprintFromInput = (it: Item, input: Uint8Array, base = 0): Buffer => {
  const files = filesOf(it.value)
  let k = 0
  const out: Array<Uint8Array> = []
  for (const p of printItemParts(it)) {
    if (p instanceof Uint8Array) {
      out.push(p)
    } else {
      const f = files[k++]!
      if (f.sha1 !== f.guid) throw new Error(`file ${f.guid} hashed to ${f.sha1}`)
      out.push(input.subarray(f.offset! - base, f.offset! - base + f.size))
    }
  }
  return Buffer.concat(out)
}

/**
 * The two directions of a Cyrus telemetry log: a `---------- user date` header line (and
 * a blank line), then runs of bytes each prefixed `<epoch<` (client to server) or
 * `>epoch>` (server to client). The markers are inserted at every read/flush, so they
 * also fall in the middle of lines.
 */
export const splitTelemetry = (log: Buffer): { client: Buffer; server: Buffer } => {
  const text = log.toString("latin1")
  const body = text.slice(text.indexOf("\n\n") + 2)
  const parts = body.split(/([<>])(\d{10})\1/)
  if (parts[0] !== "") throw new Error("telemetry log does not start with a marker")
  const client: Array<string> = []
  const server: Array<string> = []
  for (let i = 1; i < parts.length; i += 3) (parts[i] === "<" ? client : server).push(parts[i + 2]!)
  return { client: Buffer.from(client.join(""), "latin1"), server: Buffer.from(server.join(""), "latin1") }
}
