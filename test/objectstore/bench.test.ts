/**
 * Memory and speed of moving one 100 MB chunk (docs/benchmarks.md, "Object storage"): the
 * library's upload and download, clear and age-encrypted, next to the store's own plain
 * PutObject/GetObject of the same bytes, in one child process (support/benchChild.ts) whose
 * RSS is sampled every 5 ms. Speeds are reported, never asserted; the assertions are that the
 * RSS growth while a chunk moves stays below the chunk's size (it is streamed), and that what
 * an upload keeps alive (heap and Buffers in use right after a full GC, run every 50 ms during
 * the same upload) stays below half of it and 64 MB (three 8 MiB part buffers, reused). Without those GCs the growth also holds garbage V8 has
 * not collected yet (age allocates every 64 KiB block anew, and freed buffers wait for the
 * external-memory soft limit, 64 MB): reported, bounded by the chunk size only.
 */
import { execFileSync } from "node:child_process"
import path from "node:path"
import { describe, expect, it } from "vitest"
import { afterAll, beforeAll } from "vitest"
import { bundleEntry } from "../support/bundle.js"
import { cephContext, createBucket, removeBucket, startCeph, storeSettings, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { ageKeys, bigMember, tempDir } from "./support.js"

const ceph = cephContext()
warnIfNoCeph("object store memory/speed suite")

const CHUNK_MB = Number(process.env.CYB_OS_BENCH_MB ?? "100")

describe.skipIf(ceph.skip !== undefined)(`moving a ${CHUNK_MB} MB chunk`, () => {
  let env: S3Env
  let bucket: string
  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-bench")
  })
  afterAll(async () => {
    if (env !== undefined && bucket !== undefined) await removeBucket(env, bucket)
  })

  it("streams: RSS growth stays far below the chunk size; speeds next to the store's own", async () => {
    const dir = tempDir("os-bench")
    const file = path.join(dir, "big.gz")
    const meta = await bigMember(file, CHUNK_MB << 20)
    const warmFile = path.join(dir, "warm.gz")
    const warmMeta = await bigMember(warmFile, 1 << 20)
    const keys = await ageKeys(dir)
    const child = await bundleEntry(path.join("test", "objectstore", "support", "benchChild.ts"), "benchChild", ["@aws-sdk/*", "age-encryption", "effect", "@effect/*"])
    const clear = storeSettings(env, bucket, { prefix: "clear/" })
    const args = {
      clear,
      encrypted: { ...clear, prefix: "enc/", recipientsFile: keys.recipientsFile },
      reader: { ...clear, prefix: "enc/", identityFile: keys.identityFile },
      file,
      meta,
      warmFile,
      warmMeta,
      s3: { ...env, bucket }
    }
    const before = execFileSync("uptime", { encoding: "utf8" }).trim()
    const out = execFileSync(process.execPath, ["--expose-gc", child, JSON.stringify(args)], { encoding: "utf8", timeout: 300_000 })
    const after = execFileSync("uptime", { encoding: "utf8" }).trim()
    const r = JSON.parse(out) as Record<string, { mbPerSecond: number; rssGrowthMb: number; rssPeakMb: number; seconds: number; liveGrowthMb?: number }>
    console.log(`object store, ${CHUNK_MB} MB chunk (load before: ${before.replace(/.*load/, "load")}; after: ${after.replace(/.*load/, "load")})`)
    for (const k of ["clearUpload", "clearUploadKept", "clearDownload", "encryptedUpload", "encryptedUploadKept", "encryptedDownload", "plainPut", "plainGet"]) {
      const f = r[k]!
      console.log(`  ${k.padEnd(18)} ${String(f.mbPerSecond).padStart(6)} MB/s  ${String(f.seconds).padStart(6)} s  RSS +${f.rssGrowthMb} MB (peak ${f.rssPeakMb} MB)${f.liveGrowthMb === undefined ? "" : `, live +${f.liveGrowthMb} MB`}`)
    }
    // uploads (what backupd does) keep (2 + 1) × 8 MiB part buffers alive; downloads (a
    // pulling host) hold only blocks in flight, but Node's HTTP stream leaves its 64 KiB chunks
    // to the collector, as a plain GetObject does
    for (const k of ["clearUploadKept", "encryptedUploadKept"]) expect(r[k]!.liveGrowthMb, k).toBeLessThan(Math.min(64, CHUNK_MB / 2))
    for (const k of ["clearUpload", "encryptedUpload", "clearDownload", "encryptedDownload"]) expect(r[k]!.rssGrowthMb, k).toBeLessThan(CHUNK_MB * 0.9)
  })
})
