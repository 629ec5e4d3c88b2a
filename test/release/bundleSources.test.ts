/**
 * What the program bundles assume of src/ (scripts/build-release.mjs, programBundleOptions):
 * `pureSources` declares every module outside src/bin/ free of side effects, so none may be
 * imported for its effects alone; `effectSubpaths` rewrites each `import { … } from "effect"`
 * into namespace imports of effect's modules, and refuses a form it does not know.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../../scripts/build-release.mjs"

const sources = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [p] : []
  })

const src = path.join(repoRoot, "src")
const modules = sources(src).filter((f) => !f.startsWith(path.join(src, "bin") + path.sep))

describe("src/ as the bundles take it", () => {
  it("imports no module of src/ for its side effects only", () => {
    const bare = modules.flatMap((f) =>
      [...fs.readFileSync(f, "utf8").matchAll(/^\s*import\s+["']([^"']+)["']/gm)].map((m) => `${path.relative(repoRoot, f)}: ${m[1]}`)
    )
    expect(bare).toEqual([])
  })

  it("imports from the effect barrel only named namespaces (one per effect module)", () => {
    const odd = modules.flatMap((f) => {
      const text = fs.readFileSync(f, "utf8")
      const all = [...text.matchAll(/from\s+"effect"/g)].length
      const named = [...text.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s+from\s+"effect"/g)]
      const names = named.flatMap((m) => m[2]!.split(",").map((n) => n.trim()).filter((n) => n !== ""))
      const bad = names.filter((n) => !/^(type\s+)?[A-Z]\w*$/.test(n) || !fs.existsSync(path.join(repoRoot, "node_modules/effect/dist/esm", `${n.replace(/^type\s+/, "")}.js`)))
      return all !== named.length || bad.length > 0 ? [`${path.relative(repoRoot, f)}: ${bad.join(", ") || "another import form"}`] : []
    })
    expect(odd).toEqual([])
  })
})
