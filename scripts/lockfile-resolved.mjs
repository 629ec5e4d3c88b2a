#!/usr/bin/env node
/**
 * Nix's fetchNpmDeps (buildNpmPackage) fetches exactly the tarballs named by the `resolved`
 * fields of package-lock.json; entries without one are skipped, and `npm ci` then fails in
 * the sandbox with ENOTCACHED. Some npm versions write lockfiles without `resolved` (npm/cli
 * issues 4263, 6301). This script finds such entries and, with --write, adds the registry
 * tarball URL that npm itself would have written (no network: the URL follows from name and
 * version; the existing `integrity` still pins the bytes).
 *
 *   node scripts/lockfile-resolved.mjs [--lock package-lock.json] [--write | --out FILE] [--registry URL]
 *
 * Exit status: 0 when every entry has `resolved` (or after writing), 1 when some lack it.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The package name an entry of `packages` installs (aliases carry their own `name`). */
const nameOf = (key, entry) => entry.name ?? key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length)

/** The tarball URL of `name@version` on an npm registry, as npm writes it into lockfiles. */
export const tarballUrl = (registry, name, version) => {
  const base = name.startsWith("@") ? name.slice(name.indexOf("/") + 1) : name
  return `${registry.replace(/\/+$/, "")}/${name}/-/${base}-${version}.tgz`
}

/** Entries that npm fetches from a registry but that lack `resolved`. */
export const missingResolved = (lock) =>
  Object.entries(lock.packages ?? {}).filter(
    ([key, entry]) => key !== "" && key.includes("node_modules/") && !entry.link && !entry.inBundle && entry.resolved === undefined && entry.version !== undefined
  )

/** A copy of the lockfile with `resolved` added right after `version`, keeping key order. */
export const addResolved = (lock, registry) => {
  const missing = new Set(missingResolved(lock).map(([key]) => key))
  const packages = {}
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!missing.has(key)) {
      packages[key] = entry
      continue
    }
    const fixed = {}
    for (const [k, v] of Object.entries(entry)) {
      fixed[k] = v
      if (k === "version") fixed.resolved = tarballUrl(registry, nameOf(key, entry), entry.version)
    }
    packages[key] = fixed
  }
  return { ...lock, packages }
}

const main = (argv) => {
  let lockPath = path.join(repoRoot, "package-lock.json")
  let out
  let registry = "https://registry.npmjs.org"
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--lock") lockPath = path.resolve(argv[++i])
    else if (argv[i] === "--write") out = lockPath
    else if (argv[i] === "--out") out = path.resolve(argv[++i])
    else if (argv[i] === "--registry") registry = argv[++i]
    else throw new Error(`unknown argument '${argv[i]}'`)
  }
  const text = fs.readFileSync(lockPath, "utf8")
  const lock = JSON.parse(text)
  const missing = missingResolved(lock)
  if (out === undefined) {
    for (const [key] of missing) process.stdout.write(`no resolved: ${key}\n`)
    process.stdout.write(`${missing.length} of ${Object.keys(lock.packages ?? {}).length - 1} entries lack 'resolved'\n`)
    return missing.length === 0 ? 0 : 1
  }
  const indent = /^\{\n(\s+)/.exec(text)?.[1] ?? "  "
  fs.writeFileSync(out, JSON.stringify(addResolved(lock, registry), null, indent) + "\n")
  process.stdout.write(`added 'resolved' to ${missing.length} entries: ${out}\n`)
  return 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`lockfile-resolved: ${e?.message ?? String(e)}\n`)
    process.exitCode = 2
  }
}
