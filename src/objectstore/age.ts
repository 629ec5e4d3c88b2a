/**
 * age encryption (age-encryption.org/v1) through the `age-encryption` package, loaded on
 * first use only. Version 0.3 encrypts and decrypts web ReadableStreams in the format's own
 * 64 KiB STREAM chunks, so a 100 MB chunk is never whole in memory; the ciphertext size is
 * known in advance (`size`), which lets the upload announce its Content-Length.
 */
import type * as AgeModule from "age-encryption"

type Age = typeof AgeModule

let loaded: Promise<Age> | undefined
const age = (): Promise<Age> => (loaded ??= import("age-encryption"))

export interface Encrypted {
  readonly stream: ReadableStream<Uint8Array>
  /** Exact size of the ciphertext. */
  readonly size: number
}

/** Encrypts `plain` (of `plainSize` bytes) to every recipient. */
export const encryptStream = async (
  recipients: ReadonlyArray<string>,
  plain: ReadableStream<Uint8Array>,
  plainSize: number
): Promise<Encrypted> => {
  const { Encrypter } = await age()
  const e = new Encrypter()
  for (const r of recipients) e.addRecipient(r)
  const out = await e.encrypt(plain)
  return { stream: out, size: out.size(plainSize) }
}

/** Encrypts a small buffer whole (manifests, the marker never: it stays clear). */
export const encryptBytes = async (recipients: ReadonlyArray<string>, plain: Uint8Array): Promise<Uint8Array> => {
  const { Encrypter } = await age()
  const e = new Encrypter()
  for (const r of recipients) e.addRecipient(r)
  return e.encrypt(plain)
}

/** Decrypts with any of the identities; the header is checked before this resolves. */
export const decryptStream = async (identities: ReadonlyArray<string>, cipher: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>> => {
  const { Decrypter } = await age()
  const d = new Decrypter()
  for (const i of identities) d.addIdentity(i)
  return d.decrypt(cipher)
}

export const decryptBytes = async (identities: ReadonlyArray<string>, cipher: Uint8Array): Promise<Uint8Array> => {
  const { Decrypter } = await age()
  const d = new Decrypter()
  for (const i of identities) d.addIdentity(i)
  return d.decrypt(cipher)
}

/** The recipient (`age1…`) of an identity. */
export const recipientOf = async (identity: string): Promise<string> => (await age()).identityToRecipient(identity)

/** Size of the ciphertext of `plainSize` bytes for these recipients (header included). */
export const ciphertextSize = async (recipients: ReadonlyArray<string>, plainSize: number): Promise<number> => {
  const { Encrypter } = await age()
  const e = new Encrypter()
  for (const r of recipients) e.addRecipient(r)
  const empty = new ReadableStream<Uint8Array>({ start: (c) => c.close() })
  const out = await e.encrypt(empty)
  await out.cancel()
  return out.size(plainSize)
}

/** A new X25519 identity and its recipient (tests and the documentation's examples). */
export const generateIdentity = async (): Promise<{ readonly identity: string; readonly recipient: string }> => {
  const a = await age()
  const identity = await a.generateX25519Identity()
  return { identity, recipient: await a.identityToRecipient(identity) }
}
