/**
 * The layout of docs/architecture.md, held to: every import (static, `import type`,
 * `export … from`, dynamic `import()`) of a module under src/ must be allowed by the doc's
 * tables of what each folder (and each part of the store) may import; outside src/store/ the
 * store is reached only through src/store/index.ts; nothing in src/ imports from outside it.
 * File names follow the doc's rule (PascalCase exactly when named after an exported type).
 */
import fs from "node:fs"
import path from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const REPO = path.resolve(import.meta.dirname, "..")

/** A table of the doc: row name → the names it may import ("*": all). */
type Table = ReadonlyMap<string, ReadonlySet<string>>

/** Rows `| \`<prefix>...\` | ... | <may import> |` of the doc, keyed by the name after `prefix`. */
const readTable = (doc: string, prefix: string): Table => {
  const rows = new Map<string, ReadonlySet<string>>()
  for (const line of doc.split("\n")) {
    const m = new RegExp("^\\| `" + prefix.replace("/", "\\/") + "([^`]*)` \\|").exec(line)
    if (m === null) continue
    const cells = line.split("|").map((c) => c.trim())
    const last = cells[cells.length - 2] ?? ""
    const names = [...last.matchAll(/`([^`]+)`/g)].map((x) => x[1]!)
    rows.set(m[1]!.replace(/\/$/, ""), new Set(last.startsWith("all") ? ["*"] : names))
  }
  return rows
}

export interface Tables {
  readonly folders: Table
  readonly store: Table
}

/** Relative module specifiers a file imports, in every form TypeScript knows of. */
const importsOf = (text: string): ReadonlyArray<string> =>
  ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName).filter((s) => s.startsWith("."))

const folderOf = (file: string): string | undefined => {
  const parts = file.split("/")
  return parts[0] === "src" && parts.length > 2 ? parts[1] : undefined
}

/** The part of the store a file belongs to: its subfolder, or the root file's name. */
const storePartOf = (file: string): string | undefined => {
  const parts = file.split("/")
  if (parts[0] !== "src" || parts[1] !== "store") return undefined
  return parts.length > 3 ? parts[2] : parts[2]!.replace(/\.js$/, ".ts")
}

/** Every import of `files` (repo-relative path → text) that runs against the tables. */
export const violations = (files: ReadonlyMap<string, string>, tables: Tables): ReadonlyArray<string> => {
  const found: Array<string> = []
  for (const [file, text] of files) {
    const from = folderOf(file)
    if (from === undefined) continue
    for (const spec of importsOf(text)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec))
      const at = `${file}: import "${spec}"`
      if (!target.startsWith("src/")) {
        found.push(`${at} reaches outside src/`)
        continue
      }
      const to = folderOf(target)
      if (to === undefined) {
        found.push(`${at}: src/ has no modules of its own, only folders`)
        continue
      }
      if (to !== from) {
        const allowed = tables.folders.get(from)
        if (allowed === undefined) found.push(`${at}: src/${from}/ is not in the table`)
        else if (!allowed.has(to)) found.push(`${at}: src/${from}/ may not import src/${to}/`)
        if (to === "store" && target !== "src/store/index.js" && target !== "src/store/index.ts") {
          found.push(`${at} reaches into the store's internals (import src/store/index.ts)`)
        }
        continue
      }
      if (from !== "store") continue
      const pf = storePartOf(file)!
      const pt = storePartOf(target)!
      if (pf === pt) continue
      const allowed = tables.store.get(pf)
      if (allowed === undefined) found.push(`${at}: store/${pf} is not in the store's table`)
      else if (!allowed.has("*") && !allowed.has(pt)) found.push(`${at}: store/${pf} may not import store/${pt}`)
    }
  }
  return found
}

/** Files whose name breaks the rule: PascalCase exactly when the module exports a type of that name. */
export const misnamed = (files: ReadonlyMap<string, string>): ReadonlyArray<string> => {
  const found: Array<string> = []
  for (const [file, text] of files) {
    const base = path.posix.basename(file, ".ts")
    if (base === "index" || file.endsWith(".d.ts") || file.endsWith(".test.ts")) continue
    const pascal = base[0]!.toUpperCase() + base.slice(1)
    const exportsOwnType = new RegExp(`^export (declare )?(abstract )?(class|interface|type|const|enum) ${pascal}\\b`, "m").test(text)
    const isPascal = /^[A-Z]/.test(base)
    if (isPascal && !exportsOwnType) found.push(`${file}: PascalCase, but exports no ${pascal}`)
    if (!isPascal && exportsOwnType) found.push(`${file}: exports ${pascal}, so it is named ${pascal}.ts`)
  }
  return found
}

const tsFilesUnder = (dir: string): Map<string, string> => {
  const out = new Map<string, string>()
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(REPO, rel), { withFileTypes: true })) {
      const p = `${rel}/${e.name}`
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith(".ts")) out.set(p, fs.readFileSync(path.join(REPO, p), "utf8"))
    }
  }
  walk(dir)
  return out
}

const doc = fs.readFileSync(path.join(REPO, "docs", "architecture.md"), "utf8")
const tables: Tables = { folders: readTable(doc, "src/"), store: readTable(doc, "store/") }

describe("architecture (docs/architecture.md)", () => {
  const src = tsFilesUnder("src")

  it("the tables name every folder of src/ and every part of the store", () => {
    const folders = fs.readdirSync(path.join(REPO, "src"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)
    expect(folders.filter((f) => !tables.folders.has(f))).toEqual([])
    const parts = fs.readdirSync(path.join(REPO, "src", "store"), { withFileTypes: true }).map((e) => e.name)
    expect(parts.filter((p) => !tables.store.has(p))).toEqual([])
  })

  it("every import of src/ is allowed by the tables, and the store is entered by its front door", () => {
    expect(violations(src, tables)).toEqual([])
  })

  it("file names follow the rule in src/, test/harness/, test/support/ and bench/", () => {
    const all = new Map([...src, ...tsFilesUnder("test/harness"), ...tsFilesUnder("test/support"), ...tsFilesUnder("bench")])
    expect(misnamed(all)).toEqual([])
  })

  it("the checker sees each kind of wrong import, dynamic ones included", () => {
    const files = new Map([
      ["src/session/a.ts", 'import { x } from "../service/b.js"\nexport const y = () => import("../tools/c.js")\n'],
      ["src/tools/d.ts", 'import type { R } from "../store/read/BackupReader.js"\nexport * from "../../test/harness/index.js"\n'],
      ["src/store/format/e.ts", 'import { w } from "../write/f.js"\n'],
      ["src/store/read/g.ts", 'import { q } from "../index/queries.js"\nimport { s } from "../../protocol/h.js"\n']
    ])
    expect(violations(files, tables)).toEqual([
      'src/session/a.ts: import "../service/b.js": src/session/ may not import src/service/',
      'src/session/a.ts: import "../tools/c.js": src/session/ may not import src/tools/',
      'src/tools/d.ts: import "../store/read/BackupReader.js" reaches into the store\'s internals (import src/store/index.ts)',
      'src/tools/d.ts: import "../../test/harness/index.js" reaches outside src/',
      'src/store/format/e.ts: import "../write/f.js": store/format may not import store/write'
    ])
    expect(misnamed(new Map([["src/x/Thing.ts", "export const other = 1\n"], ["src/x/widget.ts", "export interface Widget {}\n"]]))).toEqual([
      "src/x/Thing.ts: PascalCase, but exports no Thing",
      "src/x/widget.ts: exports Widget, so it is named Widget.ts"
    ])
  })
})
