/**
 * The object-store foundation without a store: the backup_objectstore_* options, the
 * credentials/recipients/identity files, object naming, manifest chains, and that loading
 * the module graph does not load the AWS SDK or age (backupd's start-up is budgeted).
 */
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option } from "effect"
import { Config } from "../../src/config/Config.js"
import { generateIdentity } from "../../src/objectstore/age.js"
import { resolveChain, type ChunkEntry, type Manifest } from "../../src/objectstore/Manifest.js"
import { clearNaming, keyedNaming, parseManifestName } from "../../src/objectstore/Naming.js"
import { ObjectStore } from "../../src/objectstore/ObjectStore.js"
import { objectStoreSettings, readCredentials, readIdentities, readRecipients } from "../../src/objectstore/settings.js"
import { ok } from "../config/support.js"

const BASE = "configdirectory: /var/lib/cyrus\nservername: host-a\n"
const settingsOf = (extra: string) => objectStoreSettings(ok(BASE + extra))
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "cyb-os-"))

describe("backup_objectstore_* options", () => {
  it("absent: the feature is off", () => {
    expect(settingsOf("")).toEqual(Either.right(Option.none()))
  })

  it("defaults: region us-east-1, empty prefix, lock = backup_retention, COMPLIANCE", () => {
    const s = settingsOf("backup_objectstore_endpoint: http://127.0.0.1:17480/\nbackup_objectstore_bucket: backups\nbackup_objectstore_credentials: /etc/cyrus/s3\nbackup_retention: 30\n")
    expect(s).toEqual(
      Either.right(
        Option.some({
          endpoint: "http://127.0.0.1:17480",
          bucket: "backups",
          prefix: "",
          region: "us-east-1",
          credentialsFile: "/etc/cyrus/s3",
          recipientsFile: undefined,
          identityFile: undefined,
          lockSeconds: 30 * 86400,
          lockMode: "COMPLIANCE",
          retentionSeconds: 30 * 86400,
          host: "host-a"
        })
      )
    )
  })

  it("every key read, prefix normalised, lock_days a duration in days", () => {
    const s = settingsOf(
      [
        "backup_objectstore_endpoint: https://s3.example.net",
        "backup_objectstore_bucket: mail.backups",
        "backup_objectstore_prefix: /host-b//",
        "backup_objectstore_region: eu-1",
        "backup_objectstore_credentials: /c",
        "backup_objectstore_recipients: /r",
        "backup_objectstore_identity: /i",
        "backup_objectstore_lock_days: 12h",
        "backup_objectstore_lock_mode: governance",
        ""
      ].join("\n")
    )
    expect(Either.getOrThrow(s)).toEqual(
      Option.some(expect.objectContaining({ prefix: "host-b/", region: "eu-1", recipientsFile: "/r", identityFile: "/i", lockSeconds: 43200, lockMode: "GOVERNANCE" }))
    )
  })

  it("a service-prefixed key overrides, as for every overflow key", () => {
    const s = settingsOf("backup_objectstore_endpoint: http://a\nctl_backups_backup_objectstore_endpoint: http://b\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /c\n")
    expect(Either.getOrThrow(s).pipe(Option.map((x) => x.endpoint))).toEqual(Option.some("http://a"))
    const t = objectStoreSettings(ok(BASE + "backup_objectstore_endpoint: http://a\nctl_backups_backup_objectstore_endpoint: http://b\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /c\n", { service: "ctl_backups" }))
    expect(Either.getOrThrow(t).pipe(Option.map((x) => x.endpoint))).toEqual(Option.some("http://b"))
  })

  it.each([
    ["backup_objectstore_bucket: b\n", "backup_objectstore_endpoint: required"],
    ["backup_objectstore_endpoint: ftp://x\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /c\n", "http:// or https://"],
    ["backup_objectstore_endpoint: http://x\nbackup_objectstore_credentials: /c\n", "backup_objectstore_bucket: required"],
    ["backup_objectstore_endpoint: http://x\nbackup_objectstore_bucket: Bad_Name\nbackup_objectstore_credentials: /c\n", "not a valid bucket name"],
    ["backup_objectstore_endpoint: http://x\nbackup_objectstore_bucket: bkt\n", "backup_objectstore_credentials: required"],
    ["backup_objectstore_endpoint: http://x\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /c\nbackup_objectstore_lock_days: 3x\n", "invalid duration"],
    ["backup_objectstore_endpoint: http://x\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /c\nbackup_objectstore_lock_mode: forever\n", "neither compliance nor governance"],
    ["backup_objectstore_endpoint: http://x\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /c\nbackup_objectstore_prefix: a/../b\n", "\"..\" component"]
  ])("refuses %j", (extra, message) => {
    const s = settingsOf(extra)
    expect(Either.isLeft(s)).toBe(true)
    expect(Either.getLeft(s).pipe(Option.map((e) => e.message), Option.getOrThrow)).toContain(message)
  })

  it.effect("the layer is cheap and gives None when off", () =>
    Effect.gen(function*() {
      const off = yield* Effect.provide(ObjectStore, ObjectStore.layer().pipe(Layer.provide(Config.layerFromString(BASE, { service: "backupd", env: {} }))))
      expect(Option.isNone(off)).toBe(true)
      const on = yield* Effect.provide(
        ObjectStore,
        ObjectStore.layer().pipe(
          Layer.provide(Config.layerFromString(BASE + "backup_objectstore_endpoint: http://127.0.0.1:1\nbackup_objectstore_bucket: bkt\nbackup_objectstore_credentials: /nonexistent\n", { service: "backupd", env: {} }))
        )
      )
      expect(Option.getOrThrow(on).where).toBe("object store http://127.0.0.1:1, bucket bkt")
    }))
})

describe("the files", () => {
  it("credentials: refused when group- or world-readable, two lines otherwise", async () => {
    const d = tmp()
    const f = path.join(d, "cred")
    fs.writeFileSync(f, "# test key\nAKID\n\nSECRET\n", { mode: 0o640 })
    fs.chmodSync(f, 0o640)
    await expect(readCredentials(f)).rejects.toMatchObject({ _tag: "ObjectStoreConfigError", message: expect.stringContaining("readable by group or others (mode 0640)") })
    fs.chmodSync(f, 0o604)
    await expect(readCredentials(f)).rejects.toMatchObject({ message: expect.stringContaining("mode 0604") })
    fs.chmodSync(f, 0o600)
    await expect(readCredentials(f)).resolves.toEqual({ accessKeyId: "AKID", secretAccessKey: "SECRET" })
    fs.writeFileSync(f, "only-one\n")
    await expect(readCredentials(f)).rejects.toMatchObject({ message: expect.stringContaining("two lines") })
    await expect(readCredentials(path.join(d, "missing"))).rejects.toMatchObject({ message: expect.stringContaining("cannot read") })
  })

  it("recipients and identities: the age file formats; identities must be private", async () => {
    const d = tmp()
    const { identity, recipient } = await generateIdentity()
    const r = path.join(d, "recipients")
    fs.writeFileSync(r, `# backup key\n${recipient}\n`)
    await expect(readRecipients(r)).resolves.toEqual([recipient])
    fs.writeFileSync(r, "ssh-ed25519 AAAAC3Nza... user@host\n")
    await expect(readRecipients(r)).rejects.toMatchObject({ message: expect.stringContaining("not a native age X25519 recipient") })
    const i = path.join(d, "identity")
    fs.writeFileSync(i, `# created: now\n# public key: ${recipient}\n${identity}\n`, { mode: 0o644 })
    fs.chmodSync(i, 0o644)
    await expect(readIdentities(i)).rejects.toMatchObject({ message: expect.stringContaining("readable by group or others") })
    fs.chmodSync(i, 0o600)
    await expect(readIdentities(i)).resolves.toEqual([identity])
  })
})

describe("object names", () => {
  it("clear layout: readable user directory, SHA-256 content ids", () => {
    const n = clearNaming()
    expect(n.userDir("alice@example.com")).toBe("alice%40example.com")
    expect(n.userFromDir("alice%40example.com")).toBe("alice@example.com")
    const h = n.contentHasher()
    h.update(Buffer.from("abc"))
    const d = h.digest()
    expect(d.contentId).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    expect(n.chunkName("alice", d.contentId)).toBe(`users/alice/chunks/${d.contentId}.gz`)
  })

  it("encrypted layout: keyed hashes, no user id, stable per naming recipient", async () => {
    const a = await generateIdentity()
    const b = await generateIdentity()
    const na = keyedNaming(a.recipient)
    const dir = na.userDir("alice")
    expect(dir).toMatch(/^[0-9a-f]{32}$/)
    expect(dir).not.toContain("alice")
    expect(keyedNaming(a.recipient).userDir("alice")).toBe(dir)
    expect(keyedNaming(b.recipient).userDir("alice")).not.toBe(dir)
    expect(na.userFromDir(dir)).toBeUndefined()
    const h = na.contentHasher()
    h.update(Buffer.from("abc"))
    const d = h.digest()
    expect(d.sha256).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    expect(d.contentId).not.toBe(d.sha256)
    expect(na.chunkName(dir, d.contentId)).toBe(`users/${dir}/chunks/${d.contentId}.gz.age`)
    expect(na.keyCheck).not.toBe(keyedNaming(b.recipient).keyCheck)
  })

  it("manifest names sort newest first and parse back", () => {
    const n = clearNaming()
    const names = [1, 2, 10, 11, 123456].map((s) => n.manifestName("u", s, s % 2 === 0 ? "full" : "append"))
    expect([...names].sort()).toEqual([...names].reverse())
    expect(parseManifestName(names[2]!)).toEqual({ dir: "u", seq: 10, kind: "full" })
    expect(parseManifestName(names[3]!)).toEqual({ dir: "u", seq: 11, kind: "append" })
    expect(parseManifestName("users/u/manifests/x.json")).toBeUndefined()
  })
})

const entry = (id: number, offset: number, size: number): ChunkEntry => ({
  id,
  offset,
  size,
  sha256: "0".repeat(64),
  length: 100,
  dataSha1: "1".repeat(40),
  fileSha1: "2".repeat(40),
  tsStart: 1,
  tsEnd: 2,
  object: `users/u/chunks/${id}.gz`,
  stored: size,
  etag: '"x"'
})

const manifest = (over: Partial<Manifest>): Manifest => ({
  format: "cyrus-backupd-manifest",
  version: 1,
  user: "u",
  seq: 1,
  kind: "full",
  start: 0,
  created: "2024-01-01T00:00:00.000Z",
  host: "h",
  dataFile: "/b/u",
  chunks: [],
  dropped: [],
  ...over
})

describe("manifest chains", () => {
  it("a full manifest plus appends resolve end to end", () => {
    const r = resolveChain([
      manifest({ seq: 3, kind: "append", base: 2, start: 30, chunks: [entry(3, 30, 5)] }),
      manifest({ seq: 2, kind: "append", base: 1, start: 10, chunks: [entry(2, 10, 20)] }),
      manifest({ seq: 1, chunks: [entry(1, 0, 10)], dropped: [{ object: "old", droppedAt: "2024-01-01T00:00:00.000Z" }] })
    ])
    const x = Either.getOrThrow(r)
    expect(x.chunks.map((c) => c.id)).toEqual([1, 2, 3])
    expect(x.head).toEqual({ seq: 3, kind: "append", chainLength: 3, chunkCount: 3, end: 35 })
    expect(x.dropped).toHaveLength(1)
  })

  it.each([
    ["a gap", [manifest({ seq: 2, kind: "append", base: 1, start: 11, chunks: [entry(2, 11, 1)] }), manifest({ seq: 1, chunks: [entry(1, 0, 10)] })], "starts at 11"],
    ["a wrong base", [manifest({ seq: 3, kind: "append", base: 1, start: 10, chunks: [] }), manifest({ seq: 2, chunks: [entry(1, 0, 10)] })], "does not continue"],
    ["no full manifest", [manifest({ seq: 2, kind: "append", base: 1, start: 0 })], "not full"],
    ["overlapping chunks", [manifest({ seq: 1, chunks: [entry(1, 0, 10), entry(2, 5, 10)] })], "chunk 2 starts at 5"]
  ])("refuses %s", (_, chain, message) => {
    expect(Either.getLeft(resolveChain(chain)).pipe(Option.getOrThrow)).toContain(message)
  })
})

describe("lazy loading", () => {
  it("the object store's module graph imports neither the AWS SDK nor age statically", async () => {
    // bundled with the packages left external: a static import would be a top-level
    // `import … from "<package>"`; the lazy ones are `import("<package>")` inside functions
    const esbuild = (await import("esbuild")) as typeof import("esbuild")
    const out = await esbuild.build({
      entryPoints: [path.resolve("src/objectstore/index.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      packages: "external",
      write: false,
      logLevel: "error"
    })
    const text = out.outputFiles[0]!.text
    const staticImports = [...text.matchAll(/^import\s[^;]*?from\s*"([^"]+)"/gm)].map((m) => m[1])
    expect(staticImports.filter((p) => p!.startsWith("@aws-sdk/") || p!.startsWith("@smithy/") || p === "age-encryption")).toEqual([])
    expect(text).toContain('import("@aws-sdk/client-s3")')
    expect(text).toContain('import("age-encryption")')
  })
})
