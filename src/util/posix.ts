/**
 * Typed access to the project's small native addon (native/posix.c, built by node-gyp at
 * install): `dup` for serving master's listening socket one connection at a time, and
 * syslog(3). Loaded lazily so programs that need neither never touch it.
 */
import { createRequire } from "node:module"
import { join } from "node:path"
import { packageRoot } from "./version.js"

interface PosixAddon {
  dup(fd: number): number
  openlog(ident: string, facility: number): void
  syslog(priority: number, message: string): void
  closelog(): void
}

let addon: PosixAddon | undefined

export const posix = (): PosixAddon => {
  if (addon === undefined) {
    // The package root holds build/Release/posix.node in a checkout and in a release alike.
    addon = createRequire(import.meta.url)(join(packageRoot, "build", "Release", "posix.node")) as PosixAddon
  }
  return addon
}
