/**
 * A TypeScript entry point bundled into one ESM file for tests that start it as a process
 * many times: native addons stay external (resolved from node_modules), and the bundle lives
 * under node_modules/.cache in the checkout, so it finds the checkout's package.json and
 * build/Release addons as the real program does. A bundled process starts a few times sooner
 * than one that loads dist/ module by module.
 */
import path from "node:path"
import { fileURLToPath } from "node:url"

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/**
 * Bundles `entry` (a path under the checkout) to `<cache>/<name>-<pid>.mjs`; resolves with its path.
 * `external` packages are left to be imported from node_modules (large ones bundle slowly).
 */
export const bundleEntry = async (entry: string, name: string, external: ReadonlyArray<string> = []): Promise<string> => {
  const esbuild = (await import("esbuild")) as typeof import("esbuild")
  const outfile = path.join(REPO, "node_modules", ".cache", "cyrus-backupd-tests", `${name}-${process.pid}.mjs`)
  await esbuild.build({
    entryPoints: [path.resolve(REPO, entry)],
    bundle: true,
    platform: "node",
    format: "esm",
    external: ["better-sqlite3", "fs-ext", ...external],
    // Bundled CommonJS dependencies call require(); give the ESM bundle one.
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    outfile,
    logLevel: "warning"
  })
  return outfile
}

/** A small deterministic PRNG (an LCG) so a failing trial can be replayed from its seed. */
export const lcg = (seed: number) => () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed / 0x100000000
}
