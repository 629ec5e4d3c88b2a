/**
 * Object names in the bucket (docs/storage.md, "Object storage"). Relative to the prefix:
 *
 *   cyrus-backupd.json                              the layout marker (never encrypted)
 *   users/<U>/chunks/<C>.gz[.age]                   one sealed chunk: its gzip member, as in the data file
 *   users/<U>/manifests/<R>-<f|a>.json[.age]        manifests, newest first (R = 9999999999999999 - seq)
 *
 * Clear layout: U is the user id, percent-encoded; C is the SHA-256 of the member bytes.
 * Encrypted layout: U and C are HMAC-SHA-256 values under keys derived (HKDF-SHA-256) from
 * the naming recipient, the first line of the recipients file. Both a writing host (which has
 * the recipients) and a pulling host (which has the identity, and so its recipient) can
 * compute them, but a holder of the bucket alone learns no user id from a name.
 * Only node:crypto primitives are used; nothing here is hand-made cryptography.
 */
import { createHash, createHmac, hkdfSync, type Hash, type Hmac } from "node:crypto"

export const MARKER_NAME = "cyrus-backupd.json"
export const USERS_DIR = "users/"
const SEQ_LIMIT = 9_999_999_999_999_999n
const SEQ_DIGITS = 16
export const MAX_SEQ = Number.MAX_SAFE_INTEGER

export type ManifestKind = "full" | "append"

export interface ContentHasher {
  readonly update: (bytes: Uint8Array) => void
  /** The member's SHA-256 (hex) and the content id that names its object. */
  readonly digest: () => { readonly sha256: string; readonly contentId: string }
}

export interface Naming {
  readonly encrypted: boolean
  /** The directory of a user under `users/` (no slashes). */
  readonly userDir: (user: string) => string
  /** Clear layout only: the user id back from its directory. */
  readonly userFromDir: (dir: string) => string | undefined
  readonly chunkName: (dir: string, contentId: string) => string
  readonly manifestName: (dir: string, seq: number, kind: ManifestKind) => string
  readonly manifestsDir: (dir: string) => string
  readonly chunksDir: (dir: string) => string
  readonly contentHasher: () => ContentHasher
  /** Encrypted layout: proves which naming recipient a bucket prefix uses, without revealing it. */
  readonly keyCheck: string | undefined
}

const chunkSuffix = (encrypted: boolean) => (encrypted ? ".gz.age" : ".gz")
const manifestSuffix = (encrypted: boolean) => (encrypted ? ".json.age" : ".json")

const common = (encrypted: boolean) => ({
  chunkName: (dir: string, contentId: string) => `${USERS_DIR}${dir}/chunks/${contentId}${chunkSuffix(encrypted)}`,
  manifestName: (dir: string, seq: number, kind: ManifestKind) =>
    `${USERS_DIR}${dir}/manifests/${(SEQ_LIMIT - BigInt(seq)).toString().padStart(SEQ_DIGITS, "0")}-${kind === "full" ? "f" : "a"}${manifestSuffix(encrypted)}`,
  manifestsDir: (dir: string) => `${USERS_DIR}${dir}/manifests/`,
  chunksDir: (dir: string) => `${USERS_DIR}${dir}/chunks/`
})

/** The clear layout: readable names, content ids are plain SHA-256 (so `sha256sum` checks an object). */
export const clearNaming = (): Naming => ({
  encrypted: false,
  userDir: (user) => encodeURIComponent(user),
  userFromDir: (dir) => {
    try {
      return decodeURIComponent(dir)
    } catch {
      return undefined
    }
  },
  ...common(false),
  contentHasher: () => {
    const h = createHash("sha256")
    return {
      update: (b) => void h.update(b),
      digest: () => {
        const sha256 = h.digest("hex")
        return { sha256, contentId: sha256 }
      }
    }
  },
  keyCheck: undefined
})

const NAMING_SALT = Buffer.from("cyrus-backupd objectstore naming v1", "latin1")

/** The encrypted layout for a naming recipient (`age1…`). */
export const keyedNaming = (namingRecipient: string): Naming => {
  const okm = Buffer.from(hkdfSync("sha256", Buffer.from(namingRecipient.toLowerCase(), "latin1"), NAMING_SALT, "user and content keys", 64))
  const userKey = okm.subarray(0, 32)
  const contentKey = okm.subarray(32, 64)
  const mac = (key: Uint8Array, data: string) => createHmac("sha256", key).update(data, "utf8").digest("hex")
  return {
    encrypted: true,
    userDir: (user) => mac(userKey, `user\0${user}`).slice(0, 32),
    userFromDir: () => undefined,
    ...common(true),
    contentHasher: () => {
      const sha: Hash = createHash("sha256")
      const hmac: Hmac = createHmac("sha256", contentKey)
      return {
        update: (b) => {
          sha.update(b)
          hmac.update(b)
        },
        digest: () => ({ sha256: sha.digest("hex"), contentId: hmac.digest("hex") })
      }
    },
    keyCheck: mac(userKey, "key check").slice(0, 32)
  }
}

/** `users/<dir>/manifests/<R>-<k>...` → seq and kind; undefined for anything else. */
export const parseManifestName = (name: string): { readonly dir: string; readonly seq: number; readonly kind: ManifestKind } | undefined => {
  const m = /^users\/([^/]+)\/manifests\/([0-9]{16})-([fa])\.json(?:\.age)?$/.exec(name)
  if (m === null) return undefined
  const seq = SEQ_LIMIT - BigInt(m[2]!)
  if (seq < 1n || seq > BigInt(MAX_SEQ)) return undefined
  return { dir: m[1]!, seq: Number(seq), kind: m[3] === "f" ? "full" : "append" }
}
