/**
 * Typed access to the project's small native addon (native/posix.c, built by node-gyp at
 * install): `dup` for serving master's listening socket one connection at a time, and
 * syslog(3). Loaded lazily so programs that need neither never touch it.
 */
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { dirname, join } from "node:path"

interface PosixAddon {
  dup(fd: number): number
  openlog(ident: string, facility: number): void
  syslog(priority: number, message: string): void
  closelog(): void
}

let addon: PosixAddon | undefined

export const posix = (): PosixAddon => {
  if (addon === undefined) {
    const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
    addon = createRequire(import.meta.url)(join(root, "build", "Release", "posix.node")) as PosixAddon
  }
  return addon
}
