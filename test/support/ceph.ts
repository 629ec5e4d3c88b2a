/**
 * The shared Ceph of a test run (started on demand, see cephGlobalSetup.ts): its S3 endpoint
 * and credentials, a bucket per test file, a raw S3 client for checks behind the library's
 * back, and settings for the library. Suites that need it skip loudly without the packages:
 *
 *   const ceph = cephContext()
 *   warnIfNoCeph("my suite")
 *   describe.skipIf(ceph.skip !== undefined)("my suite", () => { … })
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectVersionsCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { inject } from "vitest"
import type { ObjectStoreSettings } from "../../src/objectstore/settings.js"
import type { CephProvided } from "./cephGlobalSetup.js"

// The SDK warns on stderr under Node < 22 when a client is made; keep test output clean.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"

export interface S3Env {
  readonly endpoint: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly region: string
}

export const cephContext = (): CephProvided => inject("ceph")

export const warnIfNoCeph = (suite: string): void => {
  const why = cephContext().skip
  if (why !== undefined) console.warn(`\n!!! SKIPPING ${suite}: no Ceph for the S3 tests: ${why}\n`)
}

const parseEnv = (text: string): S3Env => {
  const v = Object.fromEntries(
    text
      .split("\n")
      .map((l) => /^(S3_[A-Z_]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!])
  )
  if (v.S3_ENDPOINT === undefined || v.S3_ACCESS_KEY === undefined || v.S3_SECRET_KEY === undefined) {
    throw new Error(`scripts/ceph.sh up printed no credentials:\n${text}`)
  }
  return { endpoint: v.S3_ENDPOINT, accessKeyId: v.S3_ACCESS_KEY, secretAccessKey: v.S3_SECRET_KEY, region: v.S3_REGION ?? "us-east-1" }
}

/** Starts the run's cluster if no test file did yet (idempotent, serialised by the script); its S3 access. */
export const startCeph = (): S3Env => {
  const c = cephContext()
  if (c.skip !== undefined) throw new Error(`Ceph is not available: ${c.skip}`)
  const out = execFileSync(c.script, ["up", c.dir, String(c.port)], { encoding: "utf8", timeout: 180_000, stdio: ["ignore", "pipe", "inherit"] })
  return parseEnv(out)
}

/** One more radosgw on the same cluster (its own process, so a test may kill it). */
export const startGateway = (name: string, port: number): string => {
  const c = cephContext()
  execFileSync(c.script, ["gateway", c.dir, name, String(port)], { encoding: "utf8", timeout: 180_000, stdio: ["ignore", "inherit", "inherit"] })
  return `http://127.0.0.1:${port}`
}

export const killGateway = (name: string): void => {
  const c = cephContext()
  execFileSync(c.script, ["kill-gateway", c.dir, name], { timeout: 30_000, stdio: ["ignore", "inherit", "inherit"] })
}

export const rawClient = (env: S3Env, overrides: { readonly endpoint?: string; readonly secretAccessKey?: string } = {}): S3Client =>
  new S3Client({
    endpoint: overrides.endpoint ?? env.endpoint,
    region: env.region,
    forcePathStyle: true,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: overrides.secretAccessKey ?? env.secretAccessKey },
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })

/** A new bucket with a unique name (`tag` says which test file made it). */
export const createBucket = async (env: S3Env, tag: string, options: { readonly objectLock?: boolean } = {}): Promise<string> => {
  const name = `${tag}-${randomBytes(4).toString("hex")}`.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 63)
  const s3 = rawClient(env)
  try {
    await s3.send(new CreateBucketCommand({ Bucket: name, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }))
  } finally {
    s3.destroy()
  }
  return name
}

/** Removes every version and the bucket, as far as the store lets us (COMPLIANCE-locked objects stay). */
export const removeBucket = async (env: S3Env, bucket: string): Promise<void> => {
  const s3 = rawClient(env)
  try {
    let keyMarker: string | undefined
    let versionMarker: string | undefined
    for (;;) {
      const page = await s3.send(
        new ListObjectVersionsCommand({ Bucket: bucket, ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker, VersionIdMarker: versionMarker }) })
      )
      for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        await s3
          .send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key!, VersionId: v.VersionId ?? "null", BypassGovernanceRetention: true }))
          .catch(() => undefined)
      }
      if (!page.IsTruncated) break
      keyMarker = page.NextKeyMarker
      versionMarker = page.NextVersionIdMarker
    }
    await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined)
  } catch {
    // the memstore cluster is thrown away at the end of the run anyway
  } finally {
    s3.destroy()
  }
}

/** A credentials file (mode 0600) in a new temp dir; returns its path. */
export const credentialsFile = (env: S3Env, secret = env.secretAccessKey): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-s3cred-"))
  const file = path.join(dir, "credentials")
  fs.writeFileSync(file, `${env.accessKeyId}\n${secret}\n`, { mode: 0o600 })
  return file
}

/** Library settings for `bucket` on the run's cluster; `over` replaces any field. */
export const storeSettings = (env: S3Env, bucket: string, over: Partial<ObjectStoreSettings> = {}): ObjectStoreSettings => ({
  endpoint: env.endpoint,
  bucket,
  prefix: "",
  region: env.region,
  credentialsFile: over.credentialsFile ?? credentialsFile(env),
  recipientsFile: undefined,
  identityFile: undefined,
  lockSeconds: 0,
  lockMode: "COMPLIANCE",
  retentionSeconds: 7 * 86400,
  host: "cyb-test",
  ...over
})
