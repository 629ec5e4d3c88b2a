/**
 * The dlist value model: the tree that Cyrus's sync protocol and backup data files carry.
 *
 * Byte strings: every string in a dlist is a *byte string* held in a JS string whose
 * char codes are all 0..255 (one char per byte, i.e. Node's "latin1" encoding). This keeps
 * every byte exactly as it travelled (8-bit mailbox names, NULs in literals) without
 * guessing at a text encoding. Use `bytesOf` / `fromBytes` to convert at the edges.
 *
 * What the parser produces: Nil, Atom (atoms and quoted strings), Flag, Buf (literals),
 * File (the `%{partition guid size}` message form, staged to disk), List and KvList.
 * Num is only built by code (e.g. when answering GET), never produced by parsing.
 */

export type Dlist = Nil | Atom | Flag | Buf | Num | File | List | KvList

export interface Nil {
  readonly _tag: "Nil"
}
/** An atom or a quoted string: printed as an astring. */
export interface Atom {
  readonly _tag: "Atom"
  readonly value: string
}
/** A `\Flag`: printed raw, never quoted. */
export interface Flag {
  readonly _tag: "Flag"
  readonly value: string
}
/** A literal: printed as an astring when it holds no NUL byte, else as a literal. */
export interface Buf {
  readonly _tag: "Buf"
  readonly value: string
}
/** A number built by code; printed as unsigned decimal. */
export interface Num {
  readonly _tag: "Num"
  readonly value: bigint
}
/**
 * The message form `%{partition guid size}\r\n<size bytes>`. The bytes live in a staged
 * file at `path` (never in memory); `guid` is 40 lower-case hex digits as sent, and
 * `sha1` is the SHA-1 of the bytes actually received (computed while streaming; "" when
 * parsed with `files: { _tag: "Skip" }`, which hashes nothing).
 */
export interface File {
  readonly _tag: "File"
  readonly partition: string
  readonly guid: string
  readonly size: number
  readonly path: string
  readonly sha1: string
  /**
   * Where the first message byte sat in the parsed input (the reader's `position`), when
   * the node came from the parser. Reindex and verify record this instead of staging.
   */
  readonly offset?: number
}
/** `( ... )`: children without keys. */
export interface List {
  readonly _tag: "List"
  readonly items: ReadonlyArray<Dlist>
}
/** `%( key value ... )`: children with keys, in the sender's order. */
export interface KvList {
  readonly _tag: "KvList"
  readonly items: ReadonlyArray<readonly [key: string, value: Dlist]>
}

/** A top-level protocol or data-file item: `<KEY> SP <value>`, e.g. `MAILBOX %(...)`. */
export interface Item {
  readonly key: string
  readonly value: Dlist
}

export const nil: Nil = { _tag: "Nil" }
export const atom = (value: string): Atom => ({ _tag: "Atom", value })
export const flag = (value: string): Flag => ({ _tag: "Flag", value })
export const buf = (value: string): Buf => ({ _tag: "Buf", value })
export const num = (value: bigint | number): Num => ({ _tag: "Num", value: BigInt(value) })
export const list = (items: ReadonlyArray<Dlist>): List => ({ _tag: "List", items })
export const kvlist = (items: ReadonlyArray<readonly [string, Dlist]>): KvList => ({ _tag: "KvList", items })
export const item = (key: string, value: Dlist): Item => ({ key, value })

/** Byte string → bytes. */
export const bytesOf = (s: string): Buffer => Buffer.from(s, "latin1")
/** Bytes → byte string. */
export const fromBytes = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1")

/** Every File node in a value, depth first, in order. */
export const filesOf = (value: Dlist): Array<File> => {
  const out: Array<File> = []
  const walk = (v: Dlist): void => {
    switch (v._tag) {
      case "File":
        out.push(v)
        break
      case "List":
        v.items.forEach(walk)
        break
      case "KvList":
        v.items.forEach(([, c]) => walk(c))
        break
      default:
        break
    }
  }
  walk(value)
  return out
}
