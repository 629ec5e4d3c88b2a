/**
 * A JSON value model dumped the way jansson's `json_dumps(JSON_INDENT(2) | JSON_PRESERVE_ORDER)`
 * does it, so our JSON output is byte-identical to the C tools': reals with "%.17g",
 * `\u00XX` escapes in upper case, '/' and non-ASCII left alone. As with `json_string()`,
 * a byte string that is not valid UTF-8 gives no value (the key or element is left out).
 */
import { janssonReal } from "./cFormat.js"

export class JReal {
  constructor(readonly value: number) {}
}

export type JValue = string | number | bigint | boolean | JReal | ReadonlyArray<JValue> | JObject

/** An object with keys in insertion order. */
export class JObject {
  readonly entries: Array<readonly [string, JValue]> = []
  /** Sets `key` unless the value is undefined (what jansson does with a NULL value). */
  set(key: string, value: JValue | undefined): this {
    if (value === undefined) return this
    const i = this.entries.findIndex(([k]) => k === key)
    if (i >= 0) this.entries[i] = [key, value]
    else this.entries.push([key, value])
    return this
  }
  get(key: string): JValue | undefined {
    return this.entries.find(([k]) => k === key)?.[1]
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** json_string() of a byte string (latin1 chars): the decoded text, or undefined if not UTF-8. */
export const jstring = (bytes: string | null | undefined): string | undefined => {
  if (bytes === null || bytes === undefined) return undefined
  try {
    return utf8.decode(Buffer.from(bytes, "latin1"))
  } catch {
    return undefined
  }
}

/** json_real(): non-finite values are refused. */
export const jreal = (x: number): JReal | undefined => (Number.isFinite(x) ? new JReal(x) : undefined)

const escapeString = (s: string): string => {
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (ch === '"') out += '\\"'
    else if (ch === "\\") out += "\\\\"
    else if (c === 0x08) out += "\\b"
    else if (c === 0x0c) out += "\\f"
    else if (c === 0x0a) out += "\\n"
    else if (c === 0x0d) out += "\\r"
    else if (c === 0x09) out += "\\t"
    else if (c < 0x20) out += `\\u${c.toString(16).toUpperCase().padStart(4, "0")}`
    else out += ch
  }
  return out + '"'
}

const dumpAt = (v: JValue, depth: number): string => {
  if (typeof v === "string") return escapeString(v)
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : janssonReal(v)
  if (typeof v === "bigint" || typeof v === "boolean") return v.toString()
  if (v instanceof JReal) return janssonReal(v.value)
  const inner = "\n" + "  ".repeat(depth + 1)
  const close = "\n" + "  ".repeat(depth)
  if (v instanceof JObject) {
    if (v.entries.length === 0) return "{}"
    return "{" + v.entries.map(([k, x]) => inner + escapeString(k) + ": " + dumpAt(x, depth + 1)).join(",") + close + "}"
  }
  const arr = v as ReadonlyArray<JValue>
  if (arr.length === 0) return "[]"
  return "[" + arr.map((x) => inner + dumpAt(x, depth + 1)).join(",") + close + "]"
}

/** The dump as a JS string (write it out as UTF-8), without a trailing newline. */
export const jsonDump = (v: JValue): string => dumpAt(v, 0)
