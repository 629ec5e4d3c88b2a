#!/usr/bin/env node
/**
 * Installs a built release (scripts/build-release.mjs) under a prefix, the way a Debian host
 * wants it, so that cyrus.conf can name the programs by absolute path:
 *
 *   $PREFIX/lib/cyrus-backupd/            the release (lib/*.cjs, build/Release/*.node, ...)
 *   $PREFIX/libexec/cyrus-backupd/<prog>  wrappers: exec <node> $PREFIX/lib/cyrus-backupd/lib/<prog>.cjs
 *
 *   node scripts/install-prefix.mjs [--prefix /usr/local] [--destdir DIR] [--node PATH] [--from release]
 *
 * The wrappers name node by absolute path (default: the node running this script), since
 * master's environment may not have the PATH of an interactive shell. --destdir stages the
 * tree for packaging: files land under DESTDIR/PREFIX but name PREFIX.
 *
 * When that node can be run here, the install also makes the bundles' V8 code caches
 * (lib/<prog>.bundle.cjs.cache, scripts/code-cache.mjs) with it: the programs then start in
 * about half the time. They are not part of the release, which is byte for byte reproducible.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { envLines, programRuntime, writeCodeCaches } from "./code-cache.mjs"

const PROGRAMS = ["backupd", "ctl_backups", "cyr_backup", "restore"]
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

export class InstallError extends Error {}

/** Paths under the prefix, as installed (without DESTDIR). */
export const layout = (prefix) => ({
  libDir: path.posix.join(prefix, "lib", "cyrus-backupd"),
  libexecDir: path.posix.join(prefix, "libexec", "cyrus-backupd")
})

const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`

const wrapper = (program, node, libDir, version) =>
  [
    "#!/bin/sh",
    `# ${program} from cyrus-backupd ${version}, installed in ${libDir}.`,
    "# exec, so that the service's pid is node's own (Cyrus master tracks that pid).",
    ...envLines(program),
    `exec ${[shellQuote(node), ...programRuntime(program).nodeFlags].join(" ")} ${shellQuote(path.posix.join(libDir, "lib", `${program}.cjs`))} "$@"`,
    ""
  ].join("\n")

const copyTree = (from, to) => {
  for (const entry of fs.readdirSync(from, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const src = path.join(from, entry.name)
    const dst = path.join(to, entry.name)
    if (entry.isDirectory()) {
      fs.mkdirSync(dst, { recursive: true, mode: 0o755 })
      copyTree(src, dst)
    } else if (entry.isFile()) {
      fs.copyFileSync(src, dst)
      const st = fs.statSync(src)
      fs.chmodSync(dst, st.mode & 0o777)
      fs.utimesSync(dst, st.atime, st.mtime)
    }
  }
}

export const installRelease = ({ prefix = "/usr/local", destdir = "", node = process.execPath, from = path.join(repoRoot, "release") } = {}) => {
  if (!path.isAbsolute(prefix)) throw new InstallError(`--prefix must be absolute, not '${prefix}'`)
  if (!path.isAbsolute(node)) throw new InstallError(`--node must be an absolute path, not '${node}'`)
  const info = path.join(from, "build-info.json")
  if (!fs.existsSync(info)) throw new InstallError(`${from} holds no release: run npm run build:release first`)
  const { version } = JSON.parse(fs.readFileSync(info, "utf8"))
  const { libDir, libexecDir } = layout(prefix)
  const stagedLib = path.join(destdir || "/", libDir)
  const stagedLibexec = path.join(destdir || "/", libexecDir)

  // A clean copy: files of an older version must not linger next to the new bundles.
  fs.rmSync(stagedLib, { recursive: true, force: true })
  fs.mkdirSync(stagedLib, { recursive: true, mode: 0o755 })
  copyTree(from, stagedLib)
  // The relative wrappers of the release stay usable from there too; the installed ones are absolute.
  fs.mkdirSync(stagedLibexec, { recursive: true, mode: 0o755 })
  for (const program of PROGRAMS) {
    const target = path.join(stagedLibexec, program)
    fs.writeFileSync(target, wrapper(program, node, libDir, version), { mode: 0o755 })
    fs.chmodSync(target, 0o755)
  }
  let codeCache = false
  try {
    fs.accessSync(node, fs.constants.X_OK)
    codeCache = true
  } catch {
    // packaging for a node that is not on this machine: the programs compile at each start
  }
  if (codeCache) writeCodeCaches(path.join(stagedLib, "lib"), PROGRAMS, { node, loader: path.join(stagedLib, "lib", "load.cjs") })
  return { libDir, libexecDir, codeCache, programs: PROGRAMS.map((p) => path.posix.join(libexecDir, p)) }
}

const parseCli = (argv) => {
  const names = { "--prefix": "prefix", "--destdir": "destdir", "--node": "node", "--from": "from" }
  const options = {}
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]]
    if (key === undefined || argv[i + 1] === undefined) {
      throw new InstallError(`bad argument '${argv[i]}'\nusage: install-prefix.mjs [--prefix DIR] [--destdir DIR] [--node PATH] [--from DIR]`)
    }
    options[key] = argv[i + 1]
  }
  if (options.from !== undefined) options.from = path.resolve(options.from)
  if (options.destdir !== undefined && options.destdir !== "") options.destdir = path.resolve(options.destdir)
  // Empty values come from `make install` with unset variables: take the defaults.
  for (const k of Object.keys(options)) if (options[k] === "") delete options[k]
  return options
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    const { programs } = installRelease(parseCli(process.argv.slice(2)))
    process.stdout.write(programs.map((p) => `installed ${p}\n`).join(""))
  } catch (e) {
    process.stderr.write(`install-prefix: ${e instanceof InstallError ? e.message : e?.message ?? String(e)}\n`)
    process.exitCode = 1
  }
}
