/**
 * The canonical dlist printer (docs/architecture.md, "dlist"), byte for byte as Cyrus 3.6.1's
 * `dlist_print` with a client-mode stream: literals are `{n+}`. The store asks for `{n}`
 * literals in data-file lines (`printItemParts(item, "{n}")`, docs/storage.md); nothing else differs.
 *
 * File nodes print the staged file's bytes, which are never loaded whole: `printItemParts`
 * gives bytes and `FilePart` references for a consumer to stream, `printItemStream`
 * streams them itself. `printItem` / `printValue` are for values without File nodes
 * (they print a File as `NIL`).
 *
 * Unlike Cyrus, a staged file that no longer matches (missing, other size, SHA-1 not the
 * GUID) is an error, never silently printed as `NIL` (docs/gaps.md G23).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { createHash } from "node:crypto"
import { Effect, Stream } from "effect"
import { astring, cString, literal, type LiteralForm } from "./astring.js"
import { DlistPrintError } from "./errors.js"
import type { Dlist, File, Item } from "./value.js"

/** A staged message to be copied into the output at this point. */
export interface FilePart {
  readonly _tag: "FilePart"
  readonly path: string
  readonly size: number
  /** The message GUID (40 lower-case hex digits): the SHA-1 its bytes must have. */
  readonly guid: string
  /** The SHA-1 recorded when the file was staged. */
  readonly sha1: string
}

export type PrintPart = Uint8Array | FilePart

/** Accumulates printed text (byte strings) and splits it around File nodes. */
class Out {
  private text: Array<string> = []
  readonly parts: Array<PrintPart> = []
  constructor(
    private readonly files: "parts" | "nil",
    readonly form: LiteralForm = "{n+}"
  ) {}

  put(s: string): void {
    this.text.push(s)
  }

  file(f: File): void {
    if (this.files === "nil") {
      this.put("NIL")
      return
    }
    this.put(`%{${astring(f.partition, this.form)} ${astring(f.guid.toLowerCase(), this.form)} ${f.size}}\r\n`)
    this.flush()
    this.parts.push({ _tag: "FilePart", path: f.path, size: f.size, guid: f.guid.toLowerCase(), sha1: f.sha1 })
  }

  flush(): void {
    if (this.text.length > 0) {
      this.parts.push(Buffer.from(this.text.join(""), "latin1"))
      this.text = []
    }
  }
}

const printNode = (v: Dlist, out: Out): void => {
  switch (v._tag) {
    case "Nil":
      out.put("NIL")
      return
    case "Atom":
      out.put(astring(v.value, out.form))
      return
    case "Flag":
      out.put(cString(v.value))
      return
    case "Buf":
      out.put(v.value.includes("\0") ? literal(v.value, out.form) : astring(v.value, out.form))
      return
    case "Num":
      out.put(BigInt.asUintN(64, v.value).toString())
      return
    case "File":
      out.file(v)
      return
    case "List": {
      out.put("(")
      const items = v.items
      for (let i = 0; i < items.length; i++) {
        if (i > 0) out.put(" ")
        printNode(items[i]!, out)
      }
      out.put(")")
      return
    }
    case "KvList": {
      out.put("%(")
      const items = v.items
      for (let i = 0; i < items.length; i++) {
        if (i > 0) out.put(" ")
        const [k, c] = items[i]!
        out.put(astring(k, out.form))
        out.put(" ")
        printNode(c, out)
      }
      out.put(")")
      return
    }
  }
}

/**
 * An item as bytes and file references, in output order (adjacent bytes merged). Literals in
 * `form`: `{n+}` (Cyrus's, the default) or `{n}` (the store's data-file lines).
 */
export const printItemParts = (item: Item, form: LiteralForm = "{n+}"): ReadonlyArray<PrintPart> => {
  const out = new Out("parts", form)
  out.put(astring(item.key, form))
  out.put(" ")
  printNode(item.value, out)
  out.flush()
  return out.parts
}

/** A value (no key) as bytes and file references. */
export const printValueParts = (value: Dlist): ReadonlyArray<PrintPart> => {
  const out = new Out("parts")
  printNode(value, out)
  out.flush()
  return out.parts
}

const printWhole = (emit: (out: Out) => void): Buffer => {
  const out = new Out("nil")
  emit(out)
  out.flush()
  const p = out.parts
  return p.length === 0 ? Buffer.alloc(0) : (p[0] as Buffer)
}

/**
 * `<astring key> SP <value>` as bytes, for items without File nodes (protocol replies,
 * index texts). A File node prints as `NIL`, as Cyrus prints a file it cannot send; use
 * `printItemParts` / `printItemStream` for anything that may hold messages.
 */
export const printItem = (item: Item): Buffer =>
  printWhole((out) => {
    out.put(astring(item.key))
    out.put(" ")
    printNode(item.value, out)
  })

/** A value (no key) as bytes; File nodes print as `NIL` (see `printItem`). */
export const printValue = (value: Dlist): Buffer => printWhole((out) => printNode(value, out))

/** A value (no key) as a byte string (latin1); File nodes print as `NIL`. */
export const printValueString = (value: Dlist): string => printValue(value).toString("latin1")

/** Whether a value holds File nodes (and so needs the parts/stream printers). */
export const hasFiles = (value: Dlist): boolean => {
  switch (value._tag) {
    case "File":
      return true
    case "List":
      return value.items.some(hasFiles)
    case "KvList":
      return value.items.some(([, c]) => hasFiles(c))
    default:
      return false
  }
}

const FILE_CHUNK = 64 * 1024

/**
 * A staged file's bytes, checked against the size and GUID they were announced with:
 * the size before the first byte, the SHA-1 as the stream ends (the stream then fails:
 * its consumer must drop what it wrote).
 */
export const streamFilePart = (
  part: FilePart
): Stream.Stream<Uint8Array, DlistPrintError, FileSystem.FileSystem> => {
  const bad = (reason: string, cause?: unknown) =>
    new DlistPrintError({ reason, path: part.path, ...(cause === undefined ? {} : { cause }) })
  if (part.sha1 !== part.guid) return Stream.fail(bad("staged message does not match its GUID"))
  return Stream.unwrap(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const info = yield* fs.stat(part.path).pipe(Effect.mapError((e) => bad("staged message unreadable", e)))
      if (Number(info.size) !== part.size) return Stream.fail(bad("staged message changed size"))
      const hash = createHash("sha1")
      let seen = 0
      const body = fs.stream(part.path, { chunkSize: FILE_CHUNK }).pipe(
        Stream.mapError((e) => bad("staged message unreadable", e)),
        Stream.tap((chunk) =>
          Effect.sync(() => {
            hash.update(chunk)
            seen += chunk.byteLength
          })
        )
      )
      const check = Stream.fromEffect(
        Effect.suspend(() =>
          seen === part.size && hash.digest("hex") === part.guid
            ? Effect.succeed(new Uint8Array(0))
            : Effect.fail(bad("staged message does not match its GUID"))
        )
      ).pipe(Stream.filter((c) => c.byteLength > 0))
      return Stream.concat(body, check)
    })
  )
}

/** An item's bytes as a stream, message files included. */
export const printItemStream = (
  item: Item
): Stream.Stream<Uint8Array, DlistPrintError, FileSystem.FileSystem> =>
  Stream.flatMap(Stream.fromIterable(printItemParts(item)), (p) =>
    p instanceof Uint8Array ? Stream.succeed(p) : streamFilePart(p)
  )
