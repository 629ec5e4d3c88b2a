/** The package version, and the git commit of the build when one was recorded. */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { dirname, join } from "node:path"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

const readJson = (path: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>
  } catch {
    return undefined
  }
}

export const packageVersion: string = String(readJson(join(root, "package.json"))?.["version"] ?? "0.0.0")

/** `build-info.json` is written by release builds; a development checkout has none. */
export const buildCommit: string | undefined = (() => {
  const info = join(root, "build-info.json")
  return existsSync(info) ? (readJson(info)?.["commit"] as string | undefined) : undefined
})()

export const versionLine = (program: string): string =>
  `${program} (cyrus-backupd) ${packageVersion}${buildCommit ? ` (${buildCommit})` : ""}`
