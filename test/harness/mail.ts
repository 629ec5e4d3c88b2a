/**
 * Deterministic test mail. The random stream is AES-128-CTR keyed from the
 * seed (node:crypto), so the same seed gives the same bytes on every run and
 * machine. Messages are per-message distinct (index, user and a random token
 * in Subject and Message-ID).
 */
import { createCipheriv, createHash } from "node:crypto"

/** A seeded, reproducible byte/number stream. */
export class SeededStream {
  private readonly cipher
  private pool = Buffer.alloc(0)
  private at = 0

  constructor(seed: number | string) {
    const key = createHash("sha256").update(`cyb-interop:${seed}`).digest()
    this.cipher = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32))
  }

  bytes(n: number): Buffer {
    if (this.at + n > this.pool.length) {
      const rest = this.pool.subarray(this.at)
      this.pool = Buffer.concat([rest, this.cipher.update(Buffer.alloc(Math.max(n, 65536)))])
      this.at = 0
    }
    const out = this.pool.subarray(this.at, this.at + n)
    this.at += n
    return out
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.bytes(4).readUInt32BE(0) / 0x1_0000_0000
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  pick<A>(items: ReadonlyArray<A>): A {
    return items[Math.floor(this.next() * items.length)]!
  }

  weighted<A>(items: ReadonlyArray<readonly [A, number]>): A {
    const total = items.reduce((s, [, w]) => s + w, 0)
    let r = this.next() * total
    for (const [item, w] of items) {
      if ((r -= w) < 0) return item
    }
    return items[items.length - 1]![0]
  }

  hex(n: number): string {
    return this.bytes(n).toString("hex")
  }
}

const WORDS = (
  "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore " +
  "et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip " +
  "backup replication mailbox cyrus sync index chunk sha1 guid uid modseq quota sieve seen flags"
).split(" ")

const SENDERS = ["boss@example.com", "bob@example.org", "list@lists.example.net", "noreply@shop.example", "friend@example.com"]

/** Fixed base for Date headers, so message bytes do not depend on the clock. */
const T0 = 1_700_000_000

export interface MessageSpec {
  readonly index: number
  readonly user: string
  /** The folder it is meant for; a `[cyrus-devel]` subject tag is added for *.cyrus-devel. */
  readonly folder: string
  readonly tag?: string
}

export interface MessageOptions {
  /** Share of multipart messages with a base64 attachment (default 0.1). */
  readonly attachmentRate?: number
  /** Largest attachment in bytes before base64 (default 300 000). */
  readonly maxAttachment?: number
  /** Smallest attachment in bytes before base64 (default 20 000; sizes are log-uniform in between). */
  readonly minAttachment?: number
}

const textLines = (rng: SeededStream, size: number): string => {
  const lines: Array<string> = []
  let n = 0
  while (n < size) {
    const words = Array.from({ length: rng.int(6, 14) }, () => rng.pick(WORDS))
    const line = words.join(" ")
    lines.push(line)
    n += line.length + 2
  }
  return `${lines.join("\r\n")}\r\n`
}

const base64Lines = (data: Buffer): string => (data.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n") + "\r\n"

/** One raw RFC 5322 message (latin1, CRLF). ~90% text/plain of 2–20 KB, the rest multipart with an attachment. */
export const makeMessage = (rng: SeededStream, spec: MessageSpec, opts: MessageOptions = {}): string => {
  const tag = spec.tag ?? "m"
  const id = `${tag}${String(spec.index).padStart(6, "0")}`
  const from = rng.pick(SENDERS)
  const date = new Date((T0 + spec.index * 3607 + rng.int(0, 3600)) * 1000).toUTCString().replace("GMT", "+0000")
  const subjectWords = Array.from({ length: rng.int(2, 6) }, () => rng.pick(WORDS)).join(" ")
  const listTag = spec.folder.endsWith("cyrus-devel") ? "[cyrus-devel] " : ""
  const headers = [
    `Return-Path: <${from}>`,
    `From: ${from}`,
    `To: ${spec.user}@example.com`,
    `Subject: ${listTag}${id} ${spec.user} ${subjectWords}`,
    `Date: ${date}`,
    `Message-ID: <${id}.${spec.user}.${rng.hex(6)}@harness.example>`,
    "MIME-Version: 1.0"
  ]
  if (rng.next() < (opts.attachmentRate ?? 0.1)) {
    // log-uniform minAttachment .. maxAttachment of random bytes: barely compressible
    const max = opts.maxAttachment ?? 300_000
    const min = Math.min(max, opts.minAttachment ?? 20_000)
    const size = Math.min(max, Math.floor(min * Math.pow(max / min, rng.next())))
    const boundary = `=_harness_${id}_${rng.hex(4)}`
    headers.push(`Content-Type: multipart/mixed; boundary="${boundary}"`)
    const body = [
      `--${boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`,
      textLines(rng, rng.int(500, 3000)),
      `--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n`,
      `Content-Disposition: attachment; filename="blob-${id}.bin"\r\n\r\n`,
      base64Lines(rng.bytes(size)),
      `--${boundary}--\r\n`
    ].join("")
    return `${headers.join("\r\n")}\r\n\r\n${body}`
  }
  headers.push("Content-Type: text/plain; charset=us-ascii")
  return `${headers.join("\r\n")}\r\n\r\n${textLines(rng, rng.int(2000, 20000))}`
}

/** LMTP recipient for a user's folder: `user@example.com` for INBOX, `user+Sub.Folder@…` otherwise. */
export const recipientFor = (user: string, folder: string): string =>
  folder === "INBOX" ? `${user}@example.com` : `${user}+${folder.replace(/^INBOX\./, "")}@example.com`
