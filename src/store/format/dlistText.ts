/**
 * The store's use of the dlist printer: the bytes of a data-file line, and the keyless text of
 * a list that the index keeps (flags, annotations).
 *
 * Data-file lines are Cyrus's canonical printing with one deliberate difference: literals are
 * written `{n}`, not `{n+}`, because Cyrus 3.6.1's backup line readers (verify, reindex,
 * compact) stop at a `{n+}` (docs/storage.md, "Literals in data-file lines"). Both forms are
 * read everywhere. Index texts keep Cyrus's `{n+}`, as its reindex stores them.
 */
import { printItemParts, printValueString, type PrintPart } from "../../protocol/dlist/print.js"
import { bytesOf, item as mkItem, type Dlist, type Item } from "../../protocol/dlist/value.js"

/** A piece of a printed line: literal bytes, or a staged message file to stream. */
export type LinePart = PrintPart

/** A value printed without its key, e.g. `(\Seen $Label)`, as a byte string. */
export const printValueText = (value: Dlist): string => printValueString(value)

export const upperAscii = (s: string): string => s.replace(/[a-z]/g, (c) => c.toUpperCase())

/** `<KEY> SP <value>` parts of a data-file line: keys upper-cased as reindex would re-print them, literals `{n}`. */
export const itemParts = (it: Item): ReadonlyArray<LinePart> => {
  const key = upperAscii(it.key)
  return printItemParts(key === it.key ? it : mkItem(key, it.value), "{n}")
}

const CRLF = bytesOf("\r\n")

/** The parts of the data-file line `<ts> APPLY <item>\r\n`. */
export const lineParts = (it: Item, ts: number): ReadonlyArray<LinePart> => [bytesOf(`${ts} APPLY `), ...itemParts(it), CRLF]

/** Uncompressed length of printed parts (staged files by their size). */
export const partsLength = (parts: ReadonlyArray<LinePart>): number => {
  let n = 0
  for (const p of parts) n += p instanceof Uint8Array ? p.length : p.size
  return n
}

/** Uncompressed length of the data-file line `<ts> APPLY <item>\r\n`. */
export const lineLength = (it: Item, ts: number): number => partsLength(lineParts(it, ts))
