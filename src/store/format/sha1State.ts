/**
 * Resumable SHA-1 (hash-wasm): the running hashes of the data file and of the open chunk are
 * saved at every acknowledged point, so neither ever needs the file re-read.
 */
import { Effect } from "effect"
import { createSHA1, type IHasher } from "hash-wasm"

export type Sha1 = IHasher

export const newSha1: Effect.Effect<Sha1> = Effect.promise(() => createSHA1()).pipe(Effect.map((h) => h.init()))

export const saveState = (h: Sha1): Uint8Array => h.save()

export const stateToHex = (s: Uint8Array): string => Buffer.from(s).toString("hex")

export const stateFromHex = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, "hex"))

/** The digest so far (lower-case hex) without ending the running hash. */
export const peekDigest = (h: Sha1): string => {
  const s = h.save()
  const d = h.digest("hex")
  h.load(s)
  return d
}

/** The digest a saved state (hex) stands for, loaded into `h` (which it replaces); undefined if it does not load. */
export const digestOfState = (h: Sha1, hex: string): string | undefined => {
  try {
    h.load(stateFromHex(hex))
    return h.digest("hex")
  } catch {
    return undefined
  }
}

/** digestOfState on a fresh hasher. */
export const digestOfSavedState = (hex: string): Effect.Effect<string | undefined> => Effect.map(newSha1, (h) => digestOfState(h, hex))

export const EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
