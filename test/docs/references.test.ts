/**
 * Every document that the code, the tests and the docs cite is in this repository: a cited
 * `<name>.md` path must exist relative to the citing file or the repository root (so code
 * cites `docs/storage.md`, and the docs cite each other by bare name). An absolute path, or a
 * name only found outside the repository, fails; so does a `§` section number after a path,
 * since our docs have no numbered sections (such numbers came from documents kept outside
 * the repository). Files are read as text; binary fixtures are skipped.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const ROOT = path.resolve(__dirname, "..", "..")
const SCANNED = ["src", "test", "docs", "README.md"]
const SKIPPED = new Set([path.join("test", "fixtures")])
const TEXT = /\.(ts|mts|mjs|js|json|md|nix|txt|sh|conf)$/

const files = (rel: string): Array<string> => {
  const abs = path.join(ROOT, rel)
  if (SKIPPED.has(rel) || !fs.existsSync(abs)) return []
  if (fs.statSync(abs).isFile()) return TEXT.test(rel) ? [rel] : []
  return fs.readdirSync(abs).flatMap((name) => files(path.join(rel, name)))
}

/** `a/b/c.md`-like tokens (a path ending in `.md`, not part of a longer word or URL). */
const DOC_PATH = new RegExp(String.raw`(?<![\w.\-/:])(/?(?:[\w.\-]+/)*[\w.\-]+\.md)(?![\w\-])(\)? ?§)?`, "g")

export const unresolved = (rel: string, text: string): Array<string> => {
  const bad: Array<string> = []
  for (const m of text.matchAll(DOC_PATH)) {
    const cited = m[1]!
    // a string literal that is just a file name (a test's temporary file) cites nothing
    const before = text[m.index - 1]
    if ((before === '"' || before === "'" || before === "`") && text[m.index + cited.length] === before) continue
    const line = text.slice(0, m.index).split("\n").length
    if (path.isAbsolute(cited)) {
      bad.push(`${rel}:${line}: ${cited} (outside the repository)`)
      continue
    }
    const candidates = [path.join(ROOT, path.dirname(rel), cited), path.join(ROOT, cited)]
    if (!candidates.some((c) => c.startsWith(ROOT + path.sep) && fs.existsSync(c))) bad.push(`${rel}:${line}: ${cited}`)
    else if (m[2] !== undefined) bad.push(`${rel}:${line}: ${cited} § (our docs have no numbered sections)`)
  }
  return bad
}

describe("document references", () => {
  it("the checker finds what it must", () => {
    const outside = ["ga", "ps.md"].join("")
    expect(unresolved("src/x.ts", `see ${outside} G3 and docs/storage.md and spec/storage.md, storage.md`)).toEqual([
      `src/x.ts:1: ${outside}`,
      "src/x.ts:1: spec/storage.md",
      "src/x.ts:1: storage.md"
    ])
    expect(unresolved("src/x.ts", "docs/storage.md §9")).toEqual(["src/x.ts:1: docs/storage.md § (our docs have no numbered sections)"])
    expect(unresolved("test/x.ts", `path.join(dir, "notes.md")`)).toEqual([])
    expect(unresolved("docs/x.md", "[tools](tools.md), /work/shared/README.md")).toEqual([
      "docs/x.md:1: /work/shared/README.md (outside the repository)"
    ])
  })

  it("every cited .md path in src/, test/, docs/ and README.md exists in the repository", () => {
    const bad = SCANNED.flatMap(files)
      .filter((rel) => rel !== path.join("test", "docs", "references.test.ts"))
      .flatMap((rel) => unresolved(rel, fs.readFileSync(path.join(ROOT, rel), "utf8")))
    expect(bad).toEqual([])
  })
})
