/**
 * Bounds the memory held by dead I/O buffers.
 *
 * Every chunk that passes through a session (a socket read, its inflated plaintext, a deflated
 * piece of a data file) is a fresh Node Buffer whose bytes live outside the V8 heap. V8 frees
 * them only when it collects their (tiny) JavaScript objects, and it schedules collections by
 * the JavaScript it allocates, which a byte loop hardly does: measured on a 50 MB message,
 * 30–35 MB of dead buffers piled up between two collections, and with a small young generation
 * they were promoted and waited for a full collection (docs/benchmarks.md, "memory"). So the
 * byte paths report what they allocated here, and, in a program that turned pacing on (backupd,
 * whose memory is what a backup host pays per session; not the tools, which run one at a time
 * and where a collection every 12 MB would cost a verify a sixth of its time), once
 * `BUFFER_BUDGET` bytes have passed, a
 * full collection is started (asynchronously: V8 runs it in a task, between two of our
 * steps). Live memory is untouched; the dead buffers then never exceed about the budget.
 *
 * (glibc's malloc thresholds, which decide whether a freed buffer leaves the process, are set
 * by the program's wrapper, before node starts: scripts/code-cache.mjs, `programRuntime`.)
 *
 * `gc` is taken from a context of its own with `--expose-gc` set only while that context is
 * made, so the main context has no `gc` global and the flags a V8 code cache is checked against
 * are the same before and after (bin/load.cjs).
 */
import { createRequire } from "node:module"
import * as vm from "node:vm"

/** Bytes of fresh buffers after which a collection is started. */
export const BUFFER_BUDGET = 12 * 1024 * 1024

type Collect = (options?: { readonly type: "major"; readonly execution: "async" }) => unknown

let collect: Collect | null | undefined
let enabled = false
let passed = 0
let collections = 0

const collector = (): Collect | null => {
  if (collect !== undefined) return collect
  // node:v8 (which loads node's heap utilities, promise hooks, ...) only when a collection is due
  const v8 = createRequire(import.meta.url)("node:v8") as typeof import("node:v8")
  try {
    v8.setFlagsFromString("--expose-gc")
    const gc: unknown = vm.runInNewContext("gc")
    collect = typeof gc === "function" ? (gc as Collect) : null
  } catch {
    collect = null
  } finally {
    v8.setFlagsFromString("--no-expose-gc")
  }
  return collect
}

/** Turns pacing on for this process (backupd's entry point). */
export const paceBuffers = (): void => {
  enabled = true
}

/** Reports `bytes` of freshly allocated buffers that die soon after (I/O chunks). */
export const noteBufferBytes = (bytes: number): void => {
  if (!enabled) return
  passed += bytes
  if (passed < BUFFER_BUDGET) return
  passed = 0
  const gc = collector()
  if (gc === null) return
  collections++
  void gc({ type: "major", execution: "async" })
}

/**
 * A full collection now, synchronously, in any program (pacing on or off): for a loop that
 * leaves behind wrappers of native resources whose JavaScript side is tiny (each index
 * `metrics` opens is a better-sqlite3 connection with its statements), which V8 would let
 * pile up in old space until its heap limit grows. Does nothing where `gc` is unavailable.
 */
export const collectNow = (): void => {
  const gc = collector()
  // (`gc()` itself: given `{ type: "major", execution: "sync" }`, V8 12.4 collected nothing
  // of 27 MB of dead objects in a check, where `gc()` and an awaited async "major" freed them)
  if (gc !== null) gc()
}

/** How many collections the pacer started (tests, benchmarks). */
export const pacedCollections = (): number => collections
