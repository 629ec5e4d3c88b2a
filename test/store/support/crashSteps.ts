/**
 * What step n of the crash child appends (shared by the child and the parent's checks):
 * n % 3 = 0 a MESSAGE of `crashBody(n)`, 1 a SUB of `user.crash.F<n>`, 2 a MAILBOX whose
 * record points at the message of step n - 2.
 */
import { createHash } from "node:crypto"

/** Deterministic message body of step n: mostly small, every 7th one large (longer writes). */
export const crashBody = (n: number): Buffer => {
  const size = n % 7 === 0 ? 300_000 : 500 + ((n * 7919) % 4000)
  const b = Buffer.alloc(size)
  let x = Math.imul(n, 2654435761) >>> 0
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    b[i] = 0x20 + ((x >>> 16) % 95)
  }
  return Buffer.concat([Buffer.from(`Subject: crash ${n}\r\n\r\n`, "latin1"), b, Buffer.from("\r\n", "latin1")])
}

export const crashGuid = (n: number): string => createHash("sha1").update(crashBody(n)).digest("hex")

