/**
 * Which files some process holds a POSIX (fcntl) lock on, read from Linux's /proc/locks
 * without taking or testing any lock (F_GETLK through fs-ext cannot report the holder, and a
 * trial lock could make a backupd that tries at that instant fail with "locked"). Lines look
 * like `1: POSIX  ADVISORY  WRITE 3323 fe:00:2146879 0 EOF` (major and minor in hex, then the
 * inode); "->" lines are waiters, not holders.
 */
import * as fs from "node:fs"

export interface HeldLocks {
  /** Whether some process holds a POSIX lock on the file with this device and inode (from fs.stat). */
  readonly isLocked: (dev: number, ino: number) => boolean
}

/** Linux's dev_t split as the kernel prints it in /proc/locks (`new_encode_dev` order). */
const devKey = (dev: number, ino: number): string => {
  const major = ((dev >>> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff)
  const minor = (dev & 0xff) | ((dev >>> 12) & ~0xff & 0xfffff)
  return `${major.toString(16)}:${minor.toString(16)}:${ino}`
}

/** Parses the text of /proc/locks. */
export const parseProcLocks = (text: string): HeldLocks => {
  const held = new Set<string>()
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/)
    if (f.length < 6 || f[1] === "->" || (f[1] !== "POSIX" && f[1] !== "OFDLCK")) continue
    const [maj, min, ino] = f[5]!.split(":")
    if (maj === undefined || min === undefined || ino === undefined) continue
    held.add(`${Number.parseInt(maj, 16).toString(16)}:${Number.parseInt(min, 16).toString(16)}:${ino}`)
  }
  return { isLocked: (dev, ino) => held.has(devKey(dev, ino)) }
}

/** The POSIX locks held right now; undefined where /proc/locks cannot be read (not Linux). */
export const readHeldLocks = (): HeldLocks | undefined => {
  try {
    return parseProcLocks(fs.readFileSync("/proc/locks", "latin1"))
  } catch {
    return undefined
  }
}
