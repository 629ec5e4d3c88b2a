/**
 * How Cyrus 3.6.1 chooses between atom, quoted string and literal when it prints a
 * string (`prot_printastring`), and its atom test (`imparse_isatom`). The session prints
 * its responses with these too.
 */

/** Bytes that may never appear in an atom, besides the ranges tested in `isAtom`. */
const ATOM_SPECIALS = new Uint8Array(256)
for (const c of " {()\"%*\\") ATOM_SPECIALS[c.charCodeAt(0)] = 1

/** Bytes that may not appear in a quoted string as printed (no escaping is ever done). */
const NOT_QCHAR = new Uint8Array(256)
for (const c of "\r\n\"%\\") NOT_QCHAR[c.charCodeAt(0)] = 1
for (let i = 0x80; i < 0x100; i++) NOT_QCHAR[i] = 1

/** Strings of this length or more are never atoms nor quoted strings. */
export const MAX_QSTRING = 1024

/**
 * The atom test: non-empty, shorter than 1024 bytes, no 8-bit byte, no control byte
 * below 0x1F (0x1F itself passes: Cyrus's off-by-one, kept for identical output), no DEL,
 * no SP `{` `(` `)` `"` `%` `*` `\`.
 */
export const isAtom = (s: string): boolean => {
  const n = s.length
  if (n === 0 || n >= MAX_QSTRING) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x7f || c < 0x1f || ATOM_SPECIALS[c] === 1) return false
  }
  return true
}

/** Whether `s` can be printed between double quotes as is (shorter than 1024, QCHARs only). */
export const isQuotable = (s: string): boolean => {
  const n = s.length
  if (n >= MAX_QSTRING) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 0xff || NOT_QCHAR[c] === 1) return false
  }
  return true
}

/**
 * How a literal announces its length. `{n+}` (non-synchronising) is what Cyrus prints on its
 * client-mode streams: every csync answer, and the lines of its own data files. `{n}` is what
 * we write into data files instead, because Cyrus 3.6.1's backup readers only parse that form
 * (docs/storage.md, "Literals in data-file lines").
 */
export type LiteralForm = "{n+}" | "{n}"

/** A literal in the given form (default `{n+}`, as backupd's client-mode streams print). */
export const literal = (s: string, form: LiteralForm = "{n+}"): string => `{${s.length}${form === "{n+}" ? "+" : ""}}\r\n${s}`

/** C-string view: everything before the first NUL (Cyrus prints strings as C strings). */
export const cString = (s: string): string => {
  const z = s.indexOf("\0")
  return z < 0 ? s : s.slice(0, z)
}

/** A string as a quoted string if possible, else a literal (`prot_printstring`). */
export const quotedOrLiteral = (s: string, form: LiteralForm = "{n+}"): string => {
  const c = cString(s)
  return isQuotable(c) ? `"${c}"` : literal(c, form)
}

/**
 * An astring as Cyrus prints it: `""` when empty, raw when an atom other than `NIL`,
 * else quoted or literal. Like Cyrus, a NUL ends the string.
 */
export const astring = (s: string, form: LiteralForm = "{n+}"): string => {
  const c = cString(s)
  if (c.length === 0) return "\"\""
  if (c !== "NIL" && isAtom(c)) return c
  return isQuotable(c) ? `"${c}"` : literal(c, form)
}
