/**
 * The V8 options every program runs with (scripts/code-cache.mjs NODE_FLAGS) are the same in
 * bin/*'s `#!` lines and in the release's wrappers. A code cache made with other options than
 * the program runs with is rejected by V8: the program still works, but compiles at every start.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { PROGRAMS, repoRoot } from "../../scripts/build-release.mjs"
import { NODE_FLAGS } from "../../scripts/code-cache.mjs"

describe("node options of the programs", () => {
  it("bin/* pass NODE_FLAGS to node in their #! line", () => {
    for (const program of PROGRAMS) {
      const first = fs.readFileSync(path.join(repoRoot, "bin", program), "utf8").split("\n")[0]
      expect(first, program).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(" ")}`)
    }
  })

  it("the release wrappers pass them too", () => {
    const source = fs.readFileSync(path.join(repoRoot, "scripts", "build-release.mjs"), "utf8")
    expect(source).toContain('exec "\\${CYRUS_BACKUPD_NODE:-node}" ${NODE_FLAGS.join(" ")} "$here/lib/${program}.cjs" "$@"')
  })
})
