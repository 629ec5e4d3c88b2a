"use strict"
/**
 * Runs one program bundle (scripts/build-release.mjs, `programBundles`) with a V8 code cache.
 *
 * A bundle is one CommonJS function expression, `(function (exports, require, module,
 * __filename, __dirname) { ... })`, compiled here as a vm.Script. Next to it, `<bundle>.cache`
 * holds V8's code cache for it, made by running the program once with
 * CYRUS_BACKUPD_WRITE_CODE_CACHE=1 (what `npm run build` and the install step do): with it,
 * V8 deserializes the compiled functions instead of compiling them again, which is most of a
 * start-up. A cache that is missing, or that this node rejects (another V8 version or other
 * flags), costs only that time: the source is then compiled as usual.
 *
 * Used by bin/* in a checkout (dist/bundle/) and by lib/<program>.cjs in a release.
 */
const fs = require("node:fs")
const path = require("node:path")
const vm = require("node:vm")
const { createRequire } = require("node:module")

/** Runs the bundle at `file` (absolute path) as the main program. */
module.exports = function runBundle(file) {
  const cacheFile = `${file}.cache`
  const source = fs.readFileSync(file, "latin1")
  let cachedData
  try {
    cachedData = fs.readFileSync(cacheFile)
  } catch {
    cachedData = undefined
  }
  const script = new vm.Script(source, { filename: file, cachedData })
  cachedData = undefined // deserialized: its 1-2 MB need not live on
  if (process.env.CYRUS_BACKUPD_WRITE_CODE_CACHE === "1") {
    // after the run, so that the functions it compiled are in the cache too
    process.once("exit", () => {
      try {
        fs.writeFileSync(cacheFile, script.createCachedData(), { mode: 0o644 })
      } catch (e) {
        process.stderr.write(`code cache ${cacheFile} not written: ${e.message}\n`)
      }
    })
  }
  const module_ = { exports: {}, filename: file, id: ".", loaded: false }
  script.runInThisContext()(module_.exports, createRequire(file), module_, file, path.dirname(file))
}
