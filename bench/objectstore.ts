/**
 * Object storage, driven end to end (docs/benchmarks.md, "Object storage: backupd and the
 * tools"), on the throwaway Ceph of scripts/ceph.sh:
 *
 * 1. backupd -X receives one session with one incompressible message of --mb MB (one sealed
 *    chunk of about that size) and EXITs; with object storage on it uploads the chunk in the
 *    background and finishes the upload before it exits. Peak RSS (/usr/bin/time) and the
 *    time from EXIT to the process end (the upload lag), next to the same session with the
 *    feature off.
 * 2. `ctl_backups push` of that backup (fresh prefix) and `ctl_backups pull` onto an empty
 *    host (download, checks and reindex in one pass), as whole programs, in MB/s of the member, each next to
 *    the store's own PutObject / GetObject of the same bytes in this process, in the same
 *    round (--rounds, default 3: the machine's load varies within seconds, so the ratio of one
 *    round is compared, and the median of the rounds). The bench's client makes one PutObject
 *    and GetObject before the first round, not counted, so that round 1's baseline does not
 *    include the SDK's own start-up. Each round also times the store's own multipart upload
 *    of the same bytes from memory (8 MiB parts, four in flight, as push sends a clear member),
 *    printed next to push for what multipart itself costs the store; the goal's ratio is
 *    against the single PutObject.
 *
 *   npm run build && vite-node bench/objectstore.ts [--mb 100] [--encrypted] [--rounds 3] [--profile DIR]
 *
 * --profile DIR: the push and pull runs write V8 CPU profiles (node --cpu-prof) into DIR.
 */
import { spawn, execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3"
import { generateIdentity } from "../src/objectstore/age.js"

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback
}
const MB = arg("mb", 100)
const ENCRYPTED = process.argv.includes("--encrypted")
const ROUNDS = arg("rounds", 3)
const profileAt = process.argv.indexOf("--profile")
const PROFILE_DIR = profileAt >= 0 ? process.argv[profileAt + 1] : undefined
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..")
const CEPH_DIR = process.env.CYB_CEPH_DIR ?? "/tmp/cybt-ceph"
const SCRIPT = path.join(REPO, "scripts", "ceph.sh")
const MiB = 1 << 20

const env = Object.fromEntries(
  execFileSync(SCRIPT, ["up", CEPH_DIR], { encoding: "utf8", timeout: 180_000 })
    .split("\n")
    .map((l) => /^(S3_[A-Z_]+)=(.*)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, m[2]!])
) as Record<string, string>
execFileSync(SCRIPT, ["lease", CEPH_DIR, String(process.pid)], { stdio: "inherit", timeout: 60_000 })

const s3 = new S3Client({
  endpoint: env.S3_ENDPOINT,
  region: env.S3_REGION ?? "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: env.S3_ACCESS_KEY!, secretAccessKey: env.S3_SECRET_KEY! }
})
const bucket = `bench-os-${Date.now().toString(36)}`
const work = fs.mkdtempSync(path.join(os.tmpdir(), "cyb-bench-os-"))

const server = (name: string, prefix: string, extra: ReadonlyArray<string> = []) => {
  const dir = path.join(work, name)
  for (const d of ["conf", "backups", "staging"]) fs.mkdirSync(path.join(dir, d), { recursive: true })
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(
    conf,
    [
      `configdirectory: ${dir}/conf`,
      `backuppartition-default: ${dir}/backups`,
      `backup_db_path: ${dir}/conf/backups.db`,
      `backup_staging_path: ${dir}/staging`,
      `temp_path: ${dir}/staging`,
      "syslog_prefix: bench-os",
      ...(prefix === "" ? [] : [`backup_objectstore_endpoint: ${env.S3_ENDPOINT}`, `backup_objectstore_bucket: ${bucket}`, `backup_objectstore_prefix: ${prefix}`, `backup_objectstore_credentials: ${creds}`]),
      ...extra,
      ""
    ].join("\n")
  )
  return { dir, conf, partition: path.join(dir, "backups") }
}

/** Runs a program under /usr/bin/time; returns its seconds and peak RSS (MB). */
const timed = (argv: ReadonlyArray<string>, stdinFile?: string, profile?: string) =>
  new Promise<{ secs: number; rssMb: number; cpuSecs: number; code: number; stderr: string }>((resolve, reject) => {
    const started = process.hrtime.bigint()
    const prof = profile === undefined || PROFILE_DIR === undefined ? [] : [process.execPath, "--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${profile}.cpuprofile`]
    const p = spawn("/usr/bin/time", ["-f", "RSS_KB=%M CPU=%U+%S", ...prof, ...argv], {
      stdio: [stdinFile === undefined ? "ignore" : "pipe", "ignore", "pipe"],
      env: { ...process.env, BACKUPD_LOG_STDERR: "1" }
    })
    let stderr = ""
    p.stderr!.on("data", (b: Buffer) => void (stderr += b.toString()))
    if (stdinFile !== undefined) fs.createReadStream(stdinFile).pipe(p.stdin!)
    p.on("error", reject)
    p.on("close", (code) => {
      const secs = Number(process.hrtime.bigint() - started) / 1e9
      const kb = Number(/RSS_KB=(\d+)/.exec(stderr)?.[1] ?? "0")
      const cpu = /CPU=([\d.]+)\+([\d.]+)/.exec(stderr)
      resolve({ secs, rssMb: kb / 1024, cpuSecs: cpu === null ? 0 : Number(cpu[1]) + Number(cpu[2]), code: code ?? -1, stderr })
    })
  })

const deletePrefix = async (prefix?: string) => {
  for (;;) {
    const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ...(prefix === undefined ? {} : { Prefix: prefix }) }))
    for (const o of l.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }))
    if (!l.IsTruncated) break
  }
}

/** One multipart upload of `body` with the SDK alone: 8 MiB parts, four at a time. */
const storeMultipart = async (key: string, body: Buffer) => {
  const part = 8 * MiB
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  const numbers = Array.from({ length: Math.ceil(body.length / part) }, (_, i) => i + 1)
  const done: Array<{ PartNumber: number; ETag: string | undefined }> = []
  const next = async (): Promise<void> => {
    const n = numbers.shift()
    if (n === undefined) return
    const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n, Body: body.subarray((n - 1) * part, n * part) }))
    done.push({ PartNumber: n, ETag: r.ETag })
    return next()
  }
  await Promise.all([next(), next(), next(), next()])
  done.sort((a, b) => a.PartNumber - b.PartNumber)
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }))
}

const creds = path.join(work, "credentials")
const main = async () => {
  fs.writeFileSync(creds, `${env.S3_ACCESS_KEY}\n${env.S3_SECRET_KEY}\n`, { mode: 0o600 })
  const keys = ENCRYPTED ? await generateIdentity() : undefined
  const encConf: Array<string> = []
  if (keys !== undefined) {
    fs.writeFileSync(path.join(work, "recipients"), `${keys.recipient}\n`)
    fs.writeFileSync(path.join(work, "identity"), `${keys.identity}\n`, { mode: 0o600 })
    encConf.push(`backup_objectstore_recipients: ${path.join(work, "recipients")}`)
  }
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))

  // one session: an incompressible message of MB MB, its mailbox, EXIT
  const body = Buffer.concat([Buffer.from("From: bench@example.com\r\nSubject: big\r\n\r\n"), randomBytes(MB * MiB)])
  const guid = createHash("sha1").update(body).digest("hex")
  const t = Math.floor(Date.now() / 1000)
  const session = path.join(work, "session.txt")
  fs.writeFileSync(
    session,
    Buffer.concat([
      Buffer.from(`APPLY MESSAGE (%{default ${guid} ${body.length}}\r\n`),
      body,
      Buffer.from(
        ")\r\n" +
          `APPLY MAILBOX %(UNIQUEID benchuid00000001 MBOXNAME user.bench SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID 1 HIGHESTMODSEQ 1 RECENTUID 1 RECENTTIME ${t} LAST_APPENDDATE ${t} POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY ${t} PARTITION default ACL "bench\tlrswipkxtecdan\t" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1 RECORD (%(UID 1 MODSEQ 1 LAST_UPDATED ${t} FLAGS () INTERNALDATE ${t} SIZE ${body.length} GUID ${guid})))\r\n` +
          "EXIT\r\n"
      )
    ])
  )

  const backupd = path.join(REPO, "bin", "backupd")
  const ctl = path.join(REPO, "bin", "ctl_backups")
  const off = server("off", "")
  const runOff = await timed([backupd, "-C", off.conf, "-X"], session)
  const on = server("on", "b1", encConf)
  const runOn = await timed([backupd, "-C", on.conf, "-X"], session)
  const list = execFileSync(ctl, ["-C", on.conf, "list", "-j", "-A"], { encoding: "utf8" })
  const pendingAfter = /"pending_chunks":\s*(\d+)/.exec(list)?.[1]
  const dataFile = /"fname":\s*"([^"]+)"/.exec(list)?.[1]
  const member = fs.statSync(dataFile!).size

  // per round, next to each other so that they meet the same load: the store's own PutObject of
  // the data file's bytes (from memory), push of a copy of the backup under a fresh prefix, the
  // store's own streamed GetObject, pull onto an empty host; then both programs again with
  // nothing to move (their fixed cost: start, configuration, SDK, bucket probe, listing)
  const raw = fs.readFileSync(dataFile!)
  const cpuOf = (since: NodeJS.CpuUsage) => {
    const u = process.cpuUsage(since)
    return (u.user + u.system) / 1e6
  }
  const idConf = keys === undefined ? [] : [...encConf, `backup_objectstore_identity: ${path.join(work, "identity")}`]
  const mbps = (secs: number) => (member / MiB / secs).toFixed(1)
  const pct = (store: number, ours: number) => Math.round((store / ours) * 100)
  const net = (a: number, idle: number) => Math.max(0.001, a - idle)
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(" ")
  console.log(`object storage bench: one ${MB} MB message, member ${(member / MiB).toFixed(1)} MiB, ${ENCRYPTED ? "age-encrypted" : "clear"}; load ${load()}; ${os.cpus().length} cores`)
  console.log(`backupd -X session, feature off: ${runOff.secs.toFixed(2)} s, peak RSS ${runOff.rssMb.toFixed(0)} MB (exit ${runOff.code})`)
  console.log(`backupd -X session, feature on:  ${runOn.secs.toFixed(2)} s, peak RSS ${runOn.rssMb.toFixed(0)} MB (exit ${runOn.code}); pending after exit: ${pendingAfter}`)
  const logged = /object store: bench: .*; ([\d.]+)s/.exec(runOn.stderr)
  console.log(`  upload, from the session's close to the manifest recorded (backupd's log line): ${logged?.[1] ?? "?"} s; whole run on − off: ${(runOn.secs - runOff.secs).toFixed(2)} s`)
  if (logged === null) console.log(runOn.stderr.split("\n").filter((l) => l.includes("object store")).join("\n"))

  // the bench's own client warmed up first (its first request pays the SDK's start-up, which
  // would slow round 1's PutObject and flatter round 1's ratios)
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "raw/warm-up", Body: raw, ContentLength: raw.length }))
  const warm = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "raw/warm-up" }))
  for await (const _ of warm.Body as AsyncIterable<Uint8Array>) void _
  await deletePrefix("raw/warm-up")

  const pushNet: Array<number> = []
  const pullNet: Array<number> = []
  for (let round = 1; round <= ROUNDS; round++) {
    let c0 = process.cpuUsage()
    let t0 = performance.now()
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `raw/object-${round}`, Body: raw, ContentLength: raw.length }))
    const putSecs = (performance.now() - t0) / 1000
    const putCpu = cpuOf(c0)

    const p2 = server(`push-${round}`, `b2-${round}`, encConf)
    fs.cpSync(on.dir + "/backups", p2.partition, { recursive: true })
    const copied = path.join(p2.partition, path.relative(on.partition, dataFile!))
    execFileSync(ctl, ["-C", p2.conf, "reconstruct"], { stdio: "ignore" })
    // the copy's index still has host b1's upload records: drop them so everything is pending
    execFileSync("sqlite3", [`${copied}.index`, "DELETE FROM backupd_object; DELETE FROM backupd_object_head;"])
    const push = await timed([ctl, "-C", p2.conf, "push", "-A"], undefined, `push-${round}`)

    // the store's own multipart upload of the same bytes, as push sends the clear layout's
    // (8 MiB parts, four in flight), from memory: what multipart itself costs this store
    t0 = performance.now()
    await storeMultipart(`raw/multipart-${round}`, raw)
    const multipartSecs = (performance.now() - t0) / 1000

    c0 = process.cpuUsage()
    t0 = performance.now()
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `raw/object-${round}` }))
    let n = 0
    for await (const c of got.Body as AsyncIterable<Uint8Array>) n += c.length
    const getSecs = (performance.now() - t0) / 1000
    const getCpu = cpuOf(c0)
    if (n !== raw.length) throw new Error(`GET returned ${n} bytes`)

    const pullHost = server(`pull-${round}`, `b2-${round}`, idConf)
    const pull = await timed([ctl, "-C", pullHost.conf, "pull", "-A"], undefined, `pull-${round}`)
    const pushIdle = await timed([ctl, "-C", p2.conf, "push", "-A"])
    const pullIdle = await timed([ctl, "-C", pullHost.conf, "pull", "-A"])
    if (push.code !== 0) console.log(push.stderr)
    if (pull.code !== 0) console.log(pull.stderr)

    // the round's objects go (memstore keeps them in RAM)
    for (const prefix of [`raw/object-${round}`, `raw/multipart-${round}`, `b2-${round}/`]) await deletePrefix(prefix)
    const pushN = net(push.secs, pushIdle.secs)
    const pullN = net(pull.secs, pullIdle.secs)
    pushNet.push(pct(putSecs, pushN))
    pullNet.push(pct(getSecs, pullN))
    console.log(`round ${round} (load ${load()}):`)
    console.log(`  store PutObject ${putSecs.toFixed(2)} s = ${mbps(putSecs)} MB/s (${putCpu.toFixed(2)} s CPU); GetObject ${getSecs.toFixed(2)} s = ${mbps(getSecs)} MB/s (${getCpu.toFixed(2)} s CPU)`)
    console.log(`  store multipart upload (8 MiB parts, 4 in flight) ${multipartSecs.toFixed(2)} s = ${mbps(multipartSecs)} MB/s; push moving the bytes is ${pct(multipartSecs, pushN)}% of it`)
    console.log(`  push: whole ${push.secs.toFixed(2)} s = ${mbps(push.secs)} MB/s (${pct(putSecs, push.secs)}% of PutObject), fixed ${pushIdle.secs.toFixed(2)} s, moving the bytes ${mbps(pushN)} MB/s (${pct(putSecs, pushN)}%); CPU ${push.cpuSecs.toFixed(2)} s (fixed ${pushIdle.cpuSecs.toFixed(2)} s); peak RSS ${push.rssMb.toFixed(0)} MB (exit ${push.code})`)
    console.log(`  pull (with reindex): whole ${pull.secs.toFixed(2)} s = ${mbps(pull.secs)} MB/s (${pct(getSecs, pull.secs)}% of GetObject), fixed ${pullIdle.secs.toFixed(2)} s, moving the bytes ${mbps(pullN)} MB/s (${pct(getSecs, pullN)}%); CPU ${pull.cpuSecs.toFixed(2)} s (fixed ${pullIdle.cpuSecs.toFixed(2)} s); peak RSS ${pull.rssMb.toFixed(0)} MB (exit ${pull.code})`)
  }
  const median = (xs: ReadonlyArray<number>) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
  console.log(`moving the bytes, % of the store's own speed in the same round: push ${pushNet.join(", ")} (median ${median(pushNet)}); pull ${pullNet.join(", ")} (median ${median(pullNet)})`)
}

main()
  .finally(async () => {
    try {
      await deletePrefix()
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }))
    } catch (e) {
      console.warn(`cleanup: ${(e as Error).message}`)
    }
    s3.destroy()
    fs.rmSync(work, { recursive: true, force: true })
    execFileSync(SCRIPT, ["release", CEPH_DIR, String(process.pid)], { stdio: "inherit", timeout: 60_000 })
  })
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
