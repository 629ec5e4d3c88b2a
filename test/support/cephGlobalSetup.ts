/**
 * vitest globalSetup: one throwaway Ceph (scripts/ceph.sh) for the whole run, shared by every
 * test file that needs S3 (test/support/ceph.ts). The cluster is started by the first test
 * file that asks for it — a run of unrelated files never pays its 2-5 s and ~150 MB — and it
 * is stopped here at the end of the run.
 *
 * Ceph's monitor ports are fixed, so there is one cluster per machine: its state lives in
 * /tmp/cybt-ceph, and each vitest run holds a lease there (`ceph.sh lease`); the last run to
 * release its lease stops the cluster. Each test file works in buckets of its own.
 */
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import type { TestProject } from "vitest/node"

export interface CephProvided {
  /** Why the Ceph suites are skipped (undefined: they run). */
  readonly skip: string | undefined
  readonly dir: string
  readonly port: number
  readonly script: string
}

declare module "vitest" {
  export interface ProvidedContext {
    ceph: CephProvided
  }
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const SCRIPT = path.join(REPO, "scripts", "ceph.sh")
const PROGRAMS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "curl", "flock", "timeout"]

const onPath = (p: string) =>
  (process.env.PATH ?? "/usr/bin:/bin").split(":").some((d) => d !== "" && fs.existsSync(path.join(d, p)))

const skipReason = (): string | undefined => {
  if (process.env.CYB_SKIP_CEPH === "1") return "CYB_SKIP_CEPH=1"
  const missing = PROGRAMS.filter((p) => !onPath(p))
  if (missing.length > 0) {
    return `missing ${missing.join(", ")} (Debian 12: apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl)`
  }
  return undefined
}

export default function setup(project: TestProject) {
  const dir = process.env.CYB_CEPH_DIR ?? "/tmp/cybt-ceph"
  const port = Number(process.env.CYB_CEPH_PORT ?? "17480")
  const skip = skipReason()
  if (skip === undefined) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
    execFileSync(SCRIPT, ["lease", dir, String(process.pid)], { stdio: "inherit", timeout: 180_000 })
  }
  project.provide("ceph", { skip, dir, port, script: SCRIPT })
  return () => {
    if (skip !== undefined) return
    try {
      execFileSync(SCRIPT, ["release", dir, String(process.pid)], { stdio: "inherit", timeout: 60_000 })
    } catch (e) {
      console.warn(`ceph.sh release failed: ${(e as Error).message}`)
    }
  }
}
