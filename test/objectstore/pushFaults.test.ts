/**
 * `ctl_backups push` through a radosgw that is killed (SIGKILL) in the middle of a multipart
 * upload and started again: the push rides it out on the library's retry schedule and
 * completes, nothing is pending afterwards, and the full verify of the objects passes.
 * The gateway is a second radosgw of the shared cluster (its own port), so other files are not
 * disturbed.
 */
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3"
import { describe, expect, it } from "vitest"
import { afterAll, beforeAll } from "vitest"
import { Effect } from "effect"
import { item, list, type File } from "../../src/protocol/dlist/value.js"
import { openForAppend } from "../../src/store/index.js"
import { cephContext, createBucket, credentialsFile, killGateway, rawClient, removeBucket, startCeph, startGateway, warnIfNoCeph, type S3Env } from "../support/ceph.js"
import { makeServer, runOurs } from "../tools/support.js"

const ceph = cephContext()
warnIfNoCeph("ctl_backups push fault suite")
const PORT = ceph.port + 2

const bigBackup = (data: string, staging: string, bytes: number) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const body = Buffer.concat([Buffer.from("Subject: big\r\n\r\n"), randomBytes(bytes)])
        const guid = createHash("sha1").update(body).digest("hex")
        const p = path.join(staging, guid)
        fs.writeFileSync(p, body)
        const f: File = { _tag: "File", partition: "default", guid, size: body.length, path: p, sha1: guid }
        const w = yield* openForAppend(data, { create: true, durable: false })
        yield* w.append(item("MESSAGE", list([f])))
      })
    )
  )

describe.skipIf(ceph.skip !== undefined)("ctl_backups push and a radosgw killed under it", () => {
  let env: S3Env
  let bucket: string
  beforeAll(async () => {
    env = startCeph()
    bucket = await createBucket(env, "os-pushfault")
  })
  afterAll(async () => {
    if (env === undefined) return
    killGateway("pushfault")
    if (bucket !== undefined) await removeBucket(env, bucket)
  })

  it("the push completes after the gateway's restart; nothing pending, the objects verify", async () => {
    const endpoint = startGateway("pushfault", PORT)
    const s = makeServer("push-fault", [
      `backup_objectstore_endpoint: ${endpoint}`,
      `backup_objectstore_bucket: ${bucket}`,
      `backup_objectstore_credentials: ${credentialsFile(env)}`
    ])
    const staging = path.join(s.dir, "stage")
    fs.mkdirSync(staging)
    const data = path.join(s.partition, "a", "frank_os")
    await bigBackup(data, staging, 40 << 20)
    await s.record("frank", data)

    const s3 = rawClient(env) // through the main gateway, which stays up
    const pushing = runOurs("ctl_backups", ["-C", s.conf, "push", "-j", "frank"])
    let seen = false
    for (let i = 0; i < 500 && !seen; i++) {
      seen = ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).length > 0
      if (!seen) await new Promise((r) => setTimeout(r, 20))
    }
    expect(seen, "a multipart upload began").toBe(true)
    killGateway("pushfault")
    await new Promise((r) => setTimeout(r, 1500))
    startGateway("pushfault", PORT)
    const push = await pushing
    s3.destroy()
    expect(push.stderr).toBe("")
    expect(push.code).toBe(0)
    expect(push.stdout).toMatch(/"uploaded_chunks": 1/)
    expect(push.stdout).toMatch(/"pending_chunks": 0/)
    const v = await runOurs("ctl_backups", ["-C", s.conf, "verify", "-O", "-F", "frank"])
    expect(v).toMatchObject({ code: 0, stdout: "frank\tfull\tchecked 1\tbad 0\tpending 0\tok\n" })
  }, 180_000)
})
