/**
 * Our backupd bundled into one file (native addons stay external), so the process-level fault
 * and load tests pay a fraction of the start-up of `bin/backupd` (which loads dist/ module by
 * module). The bundle lives in node_modules/.cache, under the checkout, so it finds the
 * checkout's package.json and build/Release addons as the real program does.
 */
import path from "node:path"
import { REPO } from "./processes.js"

let built: Promise<string> | undefined

export const bundledBackupd = (): Promise<string> => {
  built ??= (async () => {
    const esbuild = (await import("esbuild")) as typeof import("esbuild")
    const outfile = path.join(REPO, "node_modules", ".cache", "cyrus-backupd-tests", `backupd-conformance-${process.pid}.mjs`)
    await esbuild.build({
      entryPoints: [path.join(REPO, "src", "bin", "backupd.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      external: ["better-sqlite3", "fs-ext"],
      banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
      outfile,
      logLevel: "warning"
    })
    return outfile
  })()
  return built
}
