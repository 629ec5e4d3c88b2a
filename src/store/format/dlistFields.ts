/**
 * Reading typed fields out of a parsed dlist the way Cyrus's `dlist_get*` accessors do:
 * numbers are unsigned decimal text (atoms), looked up by exact key, first match wins.
 */
import type { Dlist } from "../../protocol/dlist/value.js"

/** The first child of a kvlist with this exact key. */
export const child = (d: Dlist, key: string): Dlist | undefined => {
  if (d._tag !== "KvList") return undefined
  for (const [k, v] of d.items) if (k === key) return v
  return undefined
}

/** The string of a scalar node (atom, quoted, literal without NUL, flag, number), else undefined. */
export const scalar = (d: Dlist | undefined): string | undefined => {
  if (d === undefined) return undefined
  switch (d._tag) {
    case "Atom":
    case "Flag":
      return d.value
    case "Buf":
      return d.value.includes("\u0000") ? undefined : d.value
    case "Num":
      return d.value.toString()
    default:
      return undefined
  }
}

const MAX_U64 = (1n << 64n) - 1n

/** An unsigned decimal number (whole string, ≤ 2^64-1), else undefined. */
export const parseUnsigned = (s: string | undefined): bigint | undefined => {
  if (s === undefined || !/^[0-9]+$/.test(s)) return undefined
  const v = BigInt(s)
  return v > MAX_U64 ? undefined : v
}

export const getAtom = (d: Dlist, key: string): string | undefined => scalar(child(d, key))

export const getNum64 = (d: Dlist, key: string): bigint | undefined => parseUnsigned(scalar(child(d, key)))

/** num32: parsed as 64-bit then truncated to 32 bits, as Cyrus does. */
export const getNum32 = (d: Dlist, key: string): number | undefined => {
  const v = getNum64(d, key)
  return v === undefined ? undefined : Number(v & 0xffffffffn)
}

/** A date (time_t): the same text rules; kept as a number (seconds). */
export const getDate = (d: Dlist, key: string): number | undefined => {
  const v = getNum64(d, key)
  return v === undefined ? undefined : Number(BigInt.asIntN(64, v))
}

/** A list (either kind) under this key. */
export const getList = (d: Dlist, key: string): Dlist | undefined => {
  const c = child(d, key)
  return c !== undefined && (c._tag === "List" || c._tag === "KvList") ? c : undefined
}

/** The children of a list node, whatever its kind. */
export const listItems = (d: Dlist): ReadonlyArray<Dlist> =>
  d._tag === "List" ? d.items : d._tag === "KvList" ? d.items.map(([, v]) => v) : []
