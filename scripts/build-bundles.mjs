#!/usr/bin/env node
/**
 * The second half of `npm run build` (after tsc): the program bundles that bin/* run, in
 * dist/bundle/ — the same bundles as the release's (scripts/build-release.mjs, programBundles),
 * except that the native addons' .node files are loaded from where the checkout built them
 * (node_modules/, build/Release/) — and their V8 code caches
 * (scripts/code-cache.mjs).
 *
 *   node scripts/build-bundles.mjs [--out DIR]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { PROGRAMS, programBundles, repoRoot } from "./build-release.mjs"
import { shebangOf, writeCodeCaches } from "./code-cache.mjs"

/** bin/<program> must start node as its code cache was made (scripts/code-cache.mjs, programRuntime). */
const checkShebangs = () => {
  for (const program of PROGRAMS) {
    const first = fs.readFileSync(path.join(repoRoot, "bin", program), "utf8").split("\n", 1)[0]
    if (first !== shebangOf(program)) throw new Error(`bin/${program} starts with ${JSON.stringify(first)}, expected ${JSON.stringify(shebangOf(program))}`)
  }
}

export const buildBundles = async (outDir = path.join(repoRoot, "dist", "bundle")) => {
  checkShebangs()
  fs.mkdirSync(outDir, { recursive: true })
  const files = await programBundles(outDir, { release: false })
  for (const out of files) fs.writeFileSync(out.path, out.contents)
  writeCodeCaches(outDir, PROGRAMS, { loader: path.join(repoRoot, "bin", "load.cjs") })
  return files.map((f) => f.path)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const i = process.argv.indexOf("--out")
  await buildBundles(i >= 0 ? path.resolve(process.argv[i + 1]) : undefined)
}
