/**
 * Cyrus's compaction rules, as pure functions of the index's figures and of the lines read:
 * which output chunks are combined or split by size, whether compacting is worth it
 * (docs/storage.md, Compaction), and what a kept MESSAGE or MAILBOX line still has to hold.
 */
import { kvlist, list, type Dlist } from "../../protocol/dlist/value.js"
import { getAtom, getList, listItems } from "../format/dlistFields.js"

/** A chunk as the size rules see it. */
export interface Chunk {
  readonly id: number
  readonly offset: number
  readonly length: number
}

/** `backup_compact_minsize` / `maxsize` in bytes (0: unset) and `backup_compact_work_threshold`. */
export interface SizeOptions {
  readonly minBytes: number
  readonly maxBytes: number
  /** At least 1. */
  readonly workThreshold: number
}

/** Cyrus's size rules, given the config in bytes. */
export const sizeRules = (minBytes: number, maxBytes: number) => {
  /** A short output chunk is combined with the next kept chunk. */
  const wantCombine = (length: number, next: Chunk | undefined): boolean => {
    if (next === undefined) return false
    if (length >= minBytes && next.length >= minBytes) return false
    if (maxBytes === 0) return true
    return length + next.length <= maxBytes
  }
  /** A long chunk is split; `wrote` is what the open output chunk holds (undefined: not writing). */
  const wantSplit = (chunk: Chunk, wrote: number | undefined): boolean => {
    if (maxBytes === 0) return false
    if (wrote !== undefined && wrote < maxBytes) return false
    if (chunk.length < maxBytes + minBytes) return false
    if (wrote === undefined) return true
    return chunk.length - wrote > minBytes
  }
  return { wantCombine, wantSplit }
}

/** Whether compaction is worth doing (docs/storage.md, Compaction). */
export const compactRequired = (all: ReadonlyArray<Chunk>, keep: ReadonlyArray<Chunk>, o: SizeOptions): boolean => {
  const threshold = Math.max(1, o.workThreshold)
  let work = Math.max(0, all.length - keep.length)
  if (work >= threshold) return true
  if (o.minBytes === 0 && o.maxBytes === 0) return false
  if (o.minBytes !== 0 && o.maxBytes !== 0 && o.minBytes >= o.maxBytes) return false
  const { wantCombine, wantSplit } = sizeRules(o.minBytes, o.maxBytes)
  for (let i = 0; i < keep.length; i++) {
    if (wantCombine(keep[i]!.length, keep[i + 1])) work++
    if (wantSplit(keep[i]!, undefined)) work++
    if (work >= threshold) return true
  }
  return false
}

/** The MESSAGE line without the bodies no live record needs; undefined when none is left. */
export const pruneMessage = (value: Dlist, keep: ReadonlySet<string>): { value: Dlist | undefined; dropped: number } => {
  if (value._tag !== "List" && value._tag !== "KvList") return { value, dropped: 0 }
  const wanted = (d: Dlist) => d._tag !== "File" || keep.has(d.guid.toLowerCase())
  if (value._tag === "List") {
    const items = value.items.filter(wanted)
    return { value: items.length === 0 ? undefined : list(items), dropped: value.items.length - items.length }
  }
  const items = value.items.filter(([, d]) => wanted(d))
  return { value: items.length === 0 ? undefined : kvlist(items), dropped: value.items.length - items.length }
}

/** Cyrus's MAILBOX rule: keep the records last written in this chunk, the line if any remain or it is the mailbox's last. */
export const pruneMailbox = (
  value: Dlist,
  chunkId: number,
  isLastRecord: (uniqueid: string, guid: string) => boolean,
  mailboxLast: ReadonlyMap<string, number>
): Dlist | undefined => {
  const uniqueid = getAtom(value, "UNIQUEID")
  if (uniqueid === undefined || value._tag !== "KvList") return value
  let out: Dlist = value
  const record = getList(value, "RECORD")
  if (record !== undefined && listItems(record).length > 0) {
    let keep = false
    const kept = listItems(record).filter((rec) => {
      const guid = getAtom(rec, "GUID")
      if (guid === undefined || isLastRecord(uniqueid, guid)) {
        keep = true
        return true
      }
      return false
    })
    out = kvlist(value.items.map(([k, v]) => [k, k === "RECORD" && v === record ? list(kept) : v] as const))
    if (keep) return out
  }
  const last = mailboxLast.get(uniqueid)
  return last === undefined || last === chunkId ? out : undefined
}
