#!/usr/bin/env node
/**
 * Builds the self-contained release: one esbuild bundle per program, the three native addons
 * they load, sh wrappers that exec node, package.json and build-info.json (for --version) and
 * SHA256SUMS. The output depends only on the sources, node_modules, the commit and the
 * timestamp: no absolute paths, no build time, files written in sorted order with a fixed
 * mtime, so two builds of one commit are byte-identical wherever they run.
 *
 *   node scripts/build-release.mjs [--out DIR] [--commit SHA] [--epoch SECONDS]
 *
 * Layout of DIR (default: release/ in the checkout):
 *   backupd ctl_backups cyr_backup restore   wrappers: exec node lib/<program>.cjs
 *   lib/<program>.cjs                        entry: runs the bundle through lib/load.cjs
 *   lib/<program>.bundle.cjs                 the bundles (programBundles, below)
 *   lib/<package>.vendor.cjs                 the lazily loaded packages (VENDOR_PACKAGES)
 *   lib/load.cjs                             the loader (bin/load.cjs): V8 code cache
 *   build/Release/{better_sqlite3,fs_ext,posix}.node
 *   package.json build-info.json SHA256SUMS
 *
 * The bundles' V8 code caches (lib/<program>.bundle.cjs.cache) are not part of the release:
 * V8 does not make them byte for byte the same twice, and they are only good for one node.
 * The install step (scripts/install-prefix.mjs) makes them with the node it installs for.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as esbuild from "esbuild"
import { envLines, programRuntime } from "./code-cache.mjs"

export const PROGRAMS = ["backupd", "ctl_backups", "cyr_backup", "restore"]

/** Where each native addon the bundles load comes from, relative to the checkout. */
export const NATIVE_ADDONS = {
  "better_sqlite3.node": "node_modules/better-sqlite3/build/Release/better_sqlite3.node",
  "fs_ext.node": "node_modules/fs-ext/build/Release/fs_ext.node",
  "posix.node": "build/Release/posix.node"
}

/** The release marks itself so that a rebuild may clear it, and nothing else. */
const MARKER = "build-info.json"

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

export class ReleaseError extends Error {}

const git = (args) => {
  try {
    return execFileSync("git", args, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return undefined
  }
}

/** The commit recorded in build-info.json: explicit, else HEAD of the checkout, else "unknown". */
export const resolveCommit = (explicit) => explicit || process.env.CYRUS_BACKUPD_COMMIT || git(["rev-parse", "HEAD"]) || "unknown"

/** The mtime given to every file: SOURCE_DATE_EPOCH, else the commit's time, else 0. */
export const resolveEpoch = (explicit) => {
  const text = explicit ?? process.env.SOURCE_DATE_EPOCH ?? git(["log", "-1", "--format=%ct"]) ?? "0"
  const epoch = Number(text)
  if (!Number.isInteger(epoch) || epoch < 0) throw new ReleaseError(`bad epoch '${text}'`)
  return epoch
}

/**
 * Two esbuild plugins make the bundle independent of node_modules at run time.
 *
 * `nativeAddons`: every `*.node` require becomes an external require of
 * `../build/Release/<name>` (resolved next to the bundle by the banner's `require`; for the
 * bundles of `npm run build`, `checkoutAddons`, the addon's file in the checkout), and the
 * `bindings` package, which better-sqlite3 uses to search for its addon, is replaced by a
 * direct require of that file. An addon we do not ship fails the build instead of the program.
 *
 * `staticRequires`: `createRequire(import.meta.url)("pkg")` in our sources is a run-time
 * lookup in node_modules that esbuild cannot see; it is turned into a plain `require("pkg")`
 * so that the package is bundled. It also writes the `"use strict"` that tsconfig's `strict`
 * would add, which esbuild does not apply to the files pureSources (below) resolved.
 */
const nativeAddonsTo = (addonPath) => ({
  name: "native-addons",
  setup(build) {
    build.onResolve({ filter: /^bindings$/ }, (args) =>
      args.importer.includes(`${path.sep}better-sqlite3${path.sep}`)
        ? { path: "bindings", namespace: "release-bindings" }
        : { errors: [{ text: `'bindings' used by ${args.importer}: only better-sqlite3 is supported` }] }
    )
    build.onLoad({ filter: /.*/, namespace: "release-bindings" }, () => ({
      contents: [
        "module.exports = function bindings(name) {",
        '  if (name !== "better_sqlite3.node") throw new Error("cyrus-backupd release: no native addon " + name)',
        '  return require("./better_sqlite3.node")',
        "}"
      ].join("\n"),
      loader: "js"
    }))
    build.onResolve({ filter: /\.node$/ }, (args) => {
      const name = path.basename(args.path)
      if (!(name in NATIVE_ADDONS)) return { errors: [{ text: `native addon ${args.path} is not shipped in the release` }] }
      return { path: addonPath(name), external: true }
    })
  }
})

const nativeAddons = nativeAddonsTo((name) => `../build/Release/${name}`)

const RUNTIME_REQUIRE = /createRequire\(import\.meta\.url\)\((["'])([^"'./][^"']*)\1\)/g

const EFFECT_IMPORT = /import\s+(type\s+)?\{([^}]*)\}\s+from\s+"effect"/g

/**
 * `import { Effect, Option, type Scope } from "effect"` as one namespace import per module
 * (`import * as Effect from "effect/Effect"`, ...): what the barrel re-exports under those
 * names. The barrel itself, once the bundle wraps it for a lazily loaded module (every module
 * the store's writer reaches is wrapped, see programBundleOptions), runs all of effect's ~150
 * modules at start, used or not.
 */
const effectSubpaths = (source) =>
  source.replace(EFFECT_IMPORT, (_, allTypes, names) =>
    names
      .split(",")
      .map((n) => n.trim())
      .filter((n) => n !== "")
      .map((n) => {
        const m = /^(type\s+)?(\w+)(?:\s+as\s+(\w+))?$/.exec(n)
        if (m === null) throw new Error(`effectSubpaths: cannot rewrite the import of '${n}' from "effect"`)
        const [, isType, name, local] = m
        return `import ${allTypes || isType ? "type " : ""}* as ${local ?? name} from "effect/${name}"`
      })
      .join(";")
  )

const FRONT_DOOR_IMPORT = /import\s+(type\s+)?\{([^}]*)\}\s+from\s+"(\.[^"]*\/index\.js)"/g
const NAMED_REEXPORT = /export\s+(type\s+)?\{([^}]*)\}\s+from\s+"(\.[^"]+)"/g

/** name → the module (absolute .ts path) a front door (`index.ts`) re-exports it from by name. */
const frontDoorNames = new Map()
const reexportsOf = (indexTs) => {
  let names = frontDoorNames.get(indexTs)
  if (names !== undefined) return names
  names = new Map()
  const text = fs.existsSync(indexTs) ? fs.readFileSync(indexTs, "utf8") : ""
  for (const [, allTypes, list, from] of text.matchAll(NAMED_REEXPORT)) {
    for (const n of list.split(",").map((x) => x.trim()).filter((x) => x !== "")) {
      const m = /^(type\s+)?(\w+)$/.exec(n)
      if (m !== null) names.set(m[2], { module: path.resolve(path.dirname(indexTs), from.replace(/\.js$/, ".ts")), type: Boolean(allTypes || m[1]) })
    }
  }
  frontDoorNames.set(indexTs, names)
  return names
}

/**
 * `import { a, type B } from "../store/index.js"` as imports from the modules that front door
 * re-exports `a` and `B` from (names it does not re-export by name stay with it). A front door
 * that the bundle wraps for a lazily loaded module (store/index.ts is reached from the writer's
 * and the object store's lazy imports) initialises, whenever it is itself initialised, every
 * module it re-exports that any part of the program uses: SQLite and the writer at start
 * again, for one `openBackup` that the uploader needs only when it uploads.
 */
const frontDoorsBypassed = (file, source) =>
  source.replace(FRONT_DOOR_IMPORT, (whole, allTypes, list, from) => {
    const names = reexportsOf(path.resolve(path.dirname(file), from.replace(/\.js$/, ".ts")))
    const kept = []
    const direct = []
    for (const n of list.split(",").map((x) => x.trim()).filter((x) => x !== "")) {
      const m = /^(type\s+)?(\w+)(?:\s+as\s+(\w+))?$/.exec(n)
      const target = m === null ? undefined : names.get(m[2])
      if (target === undefined) {
        kept.push(n)
        continue
      }
      let rel = path.relative(path.dirname(file), target.module).replace(/\.ts$/, ".js")
      if (!rel.startsWith(".")) rel = `./${rel}`
      const isType = Boolean(allTypes || m[1] || target.type)
      direct.push(`import ${isType ? "type " : ""}{ ${m[2]}${m[3] ? ` as ${m[3]}` : ""} } from "${rel}"`)
    }
    if (direct.length === 0) return whole
    return [...(kept.length > 0 ? [`import ${allTypes ?? ""}{ ${kept.join(", ")} } from "${from}"`] : []), ...direct].join(";")
  })

const staticRequires = {
  name: "static-requires",
  setup(build) {
    // Only our own sources: packages in node_modules may ship a src/ of their own.
    const ours = path.join(build.initialOptions.absWorkingDir ?? repoRoot, "src") + path.sep
    const escaped = ours.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    build.onLoad({ filter: new RegExp(`^${escaped}.*\\.ts$`) }, async (args) => {
      const source = await fs.promises.readFile(args.path, "utf8")
      // tsconfig's `strict` (alwaysStrict) does not reach the files pureSources resolved, so
      // the directive it would add is written here
      const contents = frontDoorsBypassed(
        args.path,
        effectSubpaths(source.replace(RUNTIME_REQUIRE, (_, q, pkg) => `require(${q}${pkg}${q})`))
      )
      return { contents: `"use strict";\n${contents}`, loader: "ts" }
    })
  }
}

/**
 * `pureSources`: our modules under src/ (but src/bin/, the entries) are declared free of side
 * effects, as package.json's `sideEffects: false` does for a package (effect's own packages
 * declare it): a module none of whose exports a program uses is then neither bundled nor run.
 * Without it, a front door such as src/store/index.ts runs every module it re-exports when a
 * program imports one name from it: a `backupd -X` session ran the writer, SQLite and
 * hash-wasm at start (see docs/benchmarks.md, start-up). Nothing in src/ acts at import time
 * (test/release/bundleSources.test.ts checks that no module is imported for its effects only).
 */
const pureSources = {
  name: "pure-sources",
  setup(build) {
    const src = path.join(build.initialOptions.absWorkingDir ?? repoRoot, "src") + path.sep
    const entries = path.join(src, "bin") + path.sep
    build.onResolve({ filter: /^\.\.?\// }, async (args) => {
      if (args.pluginData === pureSources || !args.importer.startsWith(src)) return undefined
      const r = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: pureSources })
      if (r.errors.length > 0) return { errors: r.errors }
      if (!r.path.startsWith(src) || r.path.startsWith(entries)) return { path: r.path, namespace: r.namespace, external: r.external }
      return { path: r.path, namespace: r.namespace, external: r.external, sideEffects: false }
    })
  }
}

/**
 * The bundles of `npm run build` (dist/bundle/) load the addons where npm and node-gyp built
 * them, by a path relative to the bundle. Their JavaScript (better-sqlite3's, fs-ext's) is
 * bundled as in the release: left to node's module loader, resolving the packages, reading
 * their package.json and compiling some 15 files without a code cache was part of every
 * start of a tool that opens an index (docs/benchmarks.md, start-up).
 */
const checkoutAddons = (outdir) =>
  nativeAddonsTo((name) => {
    const rel = path.relative(path.resolve(repoRoot, outdir), path.join(repoRoot, NATIVE_ADDONS[name])).split(path.sep).join("/")
    return rel.startsWith(".") ? rel : `./${rel}`
  })

/**
 * The packages that only object storage and `ctl_backups metrics` use, each imported lazily
 * (`import()`) by src/objectstore/s3.ts, age.ts and src/tools/metrics/exposition.ts: bundled as
 * files of their own next to the program bundles (`<name>.vendor.cjs`, `vendorBundles`), which
 * the programs `require` on first use. In the program bundle they were more than half of its
 * bytes (the AWS SDK alone some 700 KB), read, held as a string and given a place in the code
 * cache at every start of every program. They share nothing with the programs (no effect, none
 * of src/), so a second copy of one of their dependencies is harmless.
 */
export const VENDOR_PACKAGES = ["@aws-sdk/client-s3", "age-encryption", "prom-client"]

/** `@aws-sdk/client-s3` → `aws-sdk-client-s3.vendor.cjs` */
export const vendorFile = (pkg) => `${pkg.replace(/^@/, "").replace(/\//g, "-")}.vendor.cjs`

const VENDOR_IMPORT = new RegExp(`^(${VENDOR_PACKAGES.map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|")})$`)

const vendorPackages = {
  name: "vendor-packages",
  setup(build) {
    build.onResolve({ filter: VENDOR_IMPORT }, (args) =>
      args.kind === "dynamic-import"
        ? { path: `./${vendorFile(args.path)}`, external: true }
        : { errors: [{ text: `${args.path} is imported statically by ${args.importer}: only import() of it is supported (VENDOR_PACKAGES)` }] }
    )
  }
}

/** Refuses a node older than 20 (EX_UNAVAILABLE) before anything else runs. */
const NODE_CHECK = [
  'if (Number(process.versions.node.split(".")[0]) < 20) {',
  '  process.stderr.write("cyrus-backupd needs Node.js 20 or newer, not " + process.version + "\\n");',
  "  process.exit(69);",
  "}"
]

/** Lets bundled CommonJS code `require` node's built-ins and the addons, and refuses old Node. */
const BANNER = [
  'import { createRequire as __cybCreateRequire } from "node:module";',
  "const require = __cybCreateRequire(import.meta.url);",
  ...NODE_CHECK
].join("\n")

/**
 * The programs as `npm run build` (dist/bundle/) and the release (lib/) run them: one CommonJS
 * bundle per program, minified, ASCII only (V8 then keeps the source as a one-byte string), and
 * written as a single function expression that bin/load.cjs compiles as a vm.Script with a
 * code cache. `import.meta.url` becomes the bundle's own file URL, `import()` a lazy require:
 * what a session does not need (the store's writer and SQLite, TLS) is only initialised on
 * first use. `release: true` ships the native addons next to the bundle (build/Release), else
 * they are loaded from where the checkout built them (`checkoutAddons`); their packages'
 * JavaScript is bundled either way.
 */
/** What the program and vendor bundles share: minified CommonJS for node 20, ASCII only. */
const minifiedCjs = { absWorkingDir: repoRoot, bundle: true, platform: "node", format: "cjs", target: "node20", minify: true, charset: "ascii" }

export const programBundleOptions = (entryPoints, outdir, { release }) => ({
  ...minifiedCjs,
  entryPoints,
  outdir,
  entryNames: "[name]",
  outExtension: { ".js": ".bundle.cjs" },
  supported: { "dynamic-import": false },
  // hash-wasm's "main" is a UMD file of every algorithm; its ES module lets esbuild keep SHA-1 only
  alias: { "hash-wasm": "hash-wasm/dist/index.esm.js" },
  define: { "import.meta.url": "__cybMetaUrl" },
  banner: {
    js: [
      "(function (exports, require, module, __filename, __dirname) {",
      'const __cybMetaUrl = require("node:url").pathToFileURL(__filename).href;',
      ...NODE_CHECK
    ].join("\n")
  },
  footer: { js: "})" },
  plugins: [pureSources, vendorPackages, release ? nativeAddons : checkoutAddons(outdir), staticRequires],
  legalComments: "none",
  sourcemap: false,
  metafile: true,
  logLevel: "silent",
  write: false
})

/** The bundles of VENDOR_PACKAGES: one minified CommonJS file each, exporting the package's named exports. */
export const vendorBundleOptions = (pkg, outdir) => ({
  ...minifiedCjs,
  // resolved as the program's `import()` resolved it (the package's "import" condition)
  stdin: { contents: `export * from ${JSON.stringify(pkg)}`, resolveDir: repoRoot, loader: "js", sourcefile: `vendor:${pkg}` },
  outfile: path.join(outdir, vendorFile(pkg)),
  legalComments: "none",
  sourcemap: false,
  logLevel: "silent",
  write: false
})

const checkWarnings = async (result) => {
  if (result.warnings.length > 0) {
    const text = await esbuild.formatMessages(result.warnings, { kind: "warning" })
    throw new ReleaseError(`esbuild warnings:\n${text.join("\n")}`)
  }
  return result.outputFiles
}

/** Builds the four program bundles and the vendor bundles; resolves with esbuild's output files (throws on warnings). */
export const programBundles = async (outdir, { release }) => {
  const programs = await checkWarnings(await esbuild.build(programBundleOptions(PROGRAMS.map((p) => `src/bin/${p}.ts`), outdir, { release })))
  const vendors = []
  for (const pkg of VENDOR_PACKAGES) vendors.push(...(await checkWarnings(await esbuild.build(vendorBundleOptions(pkg, outdir)))))
  return [...programs, ...vendors]
}

/** The release's entry for `program`: runs its bundle through the loader. */
const releaseEntry = (program) =>
  `"use strict"\n// ${program}: runs lib/${program}.bundle.cjs (see lib/load.cjs)\nrequire("./load.cjs")(require("node:path").join(__dirname, "${program}.bundle.cjs"))\n`

/** The esbuild options shared by the release and by anything bundled the same way (tests). */
export const bundleOptions = (entryPoints, outdir) => ({
  absWorkingDir: repoRoot,
  entryPoints,
  outdir,
  entryNames: "[name]",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  banner: { js: BANNER },
  plugins: [nativeAddons, staticRequires],
  legalComments: "eof",
  charset: "utf8",
  sourcemap: false,
  metafile: true,
  logLevel: "silent",
  write: false
})

const wrapper = (program, version) =>
  [
    "#!/bin/sh",
    `# ${program} from cyrus-backupd ${version}: runs the bundled program with Node.js 20 or newer.`,
    "# exec, so that the service's pid is node's own (Cyrus master tracks that pid).",
    "# CYRUS_BACKUPD_NODE names another node binary. Call this file by its path, not through a symlink.",
    'here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 70',
    ...envLines(program),
    `exec "\${CYRUS_BACKUPD_NODE:-node}" ${[...programRuntime(program).nodeFlags, ""].join(" ")}"$here/lib/${program}.cjs" "$@"`,
    ""
  ].join("\n")

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex")

const checkOutDir = (outDir) => {
  const entries = fs.existsSync(outDir) ? fs.readdirSync(outDir) : []
  if (entries.length > 0 && !entries.includes(MARKER)) {
    throw new ReleaseError(`${outDir} is not empty and is not a release (no ${MARKER}); refusing to clear it`)
  }
}

/**
 * Builds the release into `outDir` and returns its files (relative paths, sorted) with their
 * SHA-256 sums.
 */
export const buildRelease = async ({ outDir = path.join(repoRoot, "release"), commit, epoch } = {}) => {
  outDir = path.resolve(outDir)
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8"))
  const buildInfo = { name: pkg.name, version: pkg.version, commit: resolveCommit(commit) }
  const mtime = resolveEpoch(epoch)

  checkOutDir(outDir)
  for (const [name, from] of Object.entries(NATIVE_ADDONS)) {
    if (!fs.existsSync(path.join(repoRoot, from))) throw new ReleaseError(`missing ${from} (for ${name}): run npm ci first`)
  }

  /** @type {Map<string, {bytes: Uint8Array, mode: number}>} relative path → content */
  const files = new Map()
  for (const out of await programBundles("lib", { release: true })) {
    files.set(path.relative(repoRoot, out.path).split(path.sep).join("/"), { bytes: out.contents, mode: 0o644 })
  }
  files.set("lib/load.cjs", { bytes: fs.readFileSync(path.join(repoRoot, "bin", "load.cjs")), mode: 0o644 })
  for (const program of PROGRAMS) files.set(`lib/${program}.cjs`, { bytes: Buffer.from(releaseEntry(program)), mode: 0o644 })
  for (const [name, from] of Object.entries(NATIVE_ADDONS)) {
    files.set(`build/Release/${name}`, { bytes: fs.readFileSync(path.join(repoRoot, from)), mode: 0o755 })
  }
  for (const program of PROGRAMS) {
    files.set(program, { bytes: Buffer.from(wrapper(program, pkg.version)), mode: 0o755 })
  }
  // Node reads "type" for .js files only; the bundles are .mjs, so this is just the version's home.
  const releasePkg = { name: pkg.name, version: pkg.version, description: pkg.description, license: pkg.license, private: true, type: "module" }
  files.set("package.json", { bytes: Buffer.from(JSON.stringify(releasePkg, null, 2) + "\n"), mode: 0o644 })
  files.set(MARKER, { bytes: Buffer.from(JSON.stringify(buildInfo, null, 2) + "\n"), mode: 0o644 })

  const names = [...files.keys()].sort()
  const sums = names.map((name) => `${sha256(files.get(name).bytes)}  ${name}\n`).join("")
  files.set("SHA256SUMS", { bytes: Buffer.from(sums), mode: 0o644 })

  checkOutDir(outDir)
  fs.rmSync(outDir, { recursive: true, force: true })
  const dirs = new Set()
  for (const name of [...files.keys()].sort()) {
    const target = path.join(outDir, name)
    fs.mkdirSync(path.dirname(target), { recursive: true })
    const { bytes, mode } = files.get(name)
    fs.writeFileSync(target, bytes, { mode })
    fs.chmodSync(target, mode) // the umask must not decide the modes
    fs.utimesSync(target, mtime, mtime)
    for (let d = path.dirname(name); d !== "."; d = path.dirname(d)) dirs.add(d)
  }
  // Directories last (children first), so writing files does not bump their mtimes again.
  for (const d of [...dirs].sort().reverse()) fs.utimesSync(path.join(outDir, d), mtime, mtime)
  fs.utimesSync(outDir, mtime, mtime)

  return { outDir, buildInfo, epoch: mtime, files: names.map((name) => ({ name, sha256: sha256(files.get(name).bytes) })) }
}

const parseCli = (argv) => {
  const options = {}
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (value === undefined && ["--out", "--commit", "--epoch"].includes(flag)) throw new ReleaseError(`${flag} needs a value`)
    if (flag === "--out") options.outDir = value
    else if (flag === "--commit") options.commit = value
    else if (flag === "--epoch") options.epoch = value
    else throw new ReleaseError(`unknown argument '${flag}'\nusage: build-release.mjs [--out DIR] [--commit SHA] [--epoch SECONDS]`)
    i++
  }
  return options
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    const { outDir, buildInfo, files } = await buildRelease(parseCli(process.argv.slice(2)))
    process.stdout.write(`release ${buildInfo.version} (${buildInfo.commit}): ${files.length} files in ${path.relative(process.cwd(), outDir) || "."}\n`)
  } catch (e) {
    process.stderr.write(`build-release: ${e instanceof ReleaseError ? e.message : e?.message ?? String(e)}\n`)
    process.exitCode = 1
  }
}
