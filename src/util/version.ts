/** The package version, and the git commit of the build when one was recorded. */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { dirname, join } from "node:path"

/**
 * The nearest directory above this module that holds a package.json: the checkout when run from
 * src/ or dist/, the release directory when run from a bundle (scripts/build-release.mjs writes
 * a package.json there), whatever depth the module sits at.
 */
export const packageRoot: string = (() => {
  const here = dirname(fileURLToPath(import.meta.url))
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir
    if (dirname(dir) === dir) return join(here, "..", "..")
  }
})()

const readJson = (path: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>
  } catch {
    return undefined
  }
}

export const packageVersion: string = String(readJson(join(packageRoot, "package.json"))?.["version"] ?? "0.0.0")

/** `build-info.json` is written by release builds; a development checkout has none. */
export const buildCommit: string | undefined = (() => {
  const info = join(packageRoot, "build-info.json")
  return existsSync(info) ? (readJson(info)?.["commit"] as string | undefined) : undefined
})()

export const versionLine = (program: string): string =>
  `${program} (cyrus-backupd) ${packageVersion}${buildCommit ? ` (${buildCommit})` : ""}`
