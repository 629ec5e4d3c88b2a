/**
 * `ctl_backups pull [-A | userids...]`: rebuilds backups from the object store on this host
 * (docs/storage.md, "Rebuilding a host"). For each user (every user directory of the prefix
 * with -A): the newest manifest resolved, the data file rebuilt byte for byte (the file's SHA-1
 * checked at every chunk's file_sha1 and at the manifest's end, or, for an older manifest
 * without `end`, every member's SHA-256 as well) and its index rebuilt from the data file
 * (reindex: Cyrus's tables and our chunk state) in the same pass, as the bytes arrive
 * (`receiveBackup`), the upload state recorded (every chunk is in the bucket already), and
 * `userid → data file` added to backups.db.
 *
 * A user that already has a backup here is left alone (a line says so). The data file goes to
 * the path the manifest recorded when that lies under a configured backup partition, else to
 * a new name chosen as backupd chooses one.
 */
import fs from "node:fs"
import path from "node:path"
import { Effect, Either, Layer, Option } from "effect"
import { Config } from "../../config/index.js"
import { localError, recordManifest, type ObjectStoreShape, type ResolvedManifest } from "../../objectstore/index.js"
import { Partitions, type PartitionsService } from "../../partitions/index.js"
import { openBackup, receiveBackup } from "../../store/index.js"
import { EX_CONFIG, EX_OK, EX_TEMPFAIL } from "../../util/sysexits.js"
import { JObject, jsonDump, jstring } from "../jansson.js"
import { useridKey } from "../targets.js"
import { objectStoreExit, storeOrExit } from "./objectStore.js"
import type { Run } from "./Run.js"

const describe = (e: unknown): string => (e as { message?: string }).message ?? String(e)

/** Where the rebuilt data file goes: the recorded path under a configured partition, else a new name. */
const targetPath = (partitions: PartitionsService, m: ResolvedManifest) =>
  Effect.gen(function*() {
    const under = [...partitions.partitions.values()].some((p) => m.dataFile.startsWith(path.resolve(p) + "/") || m.dataFile.startsWith(p.replace(/\/?$/, "/")))
    if (under && !fs.existsSync(m.dataFile) && !fs.existsSync(`${m.dataFile}.index`)) {
      fs.mkdirSync(path.dirname(m.dataFile), { recursive: true })
      return m.dataFile
    }
    // createDataFile reserves a fresh name with an empty file; the rebuild links into its place
    const fresh = yield* partitions.createDataFile(m.user)
    fs.rmSync(Buffer.from(fresh, "latin1"))
    return fresh
  })

const pullUser = (run: Run, store: ObjectStoreShape, partitions: PartitionsService, dir: string, named: string | undefined) =>
  Effect.gen(function*() {
    const m = yield* store.latestManifest(dir)
    if (m === undefined) return { _tag: "NoManifest" } as const
    if (named !== undefined && m.user !== named) return { _tag: "NoManifest" } as const
    const existing = yield* Effect.orElseSucceed(run.db.lookup(m.user), () => Option.none())
    if (Option.isSome(existing) && fs.existsSync(existing.value.dataPath)) return { _tag: "Exists", user: m.user, dataPath: existing.value.dataPath } as const
    const target = yield* targetPath(partitions, m).pipe(Effect.mapError(localError(m.dataFile)))
    const local = localError(target)
    if (fs.existsSync(target)) return yield* Effect.fail(local(new Error("exists; not overwriting it")))
    // one pass: the store writes the data file and indexes it as the bytes arrive
    const size = m.chunks.reduce((n, c) => Math.max(n, c.offset + c.size), 0)
    const restored = yield* Effect.scoped(
      Effect.gen(function*() {
        const receiver = yield* receiveBackup({ target, work: `${target}.pull`, size, end: m.end }).pipe(Effect.mapError(local))
        yield* store.restoreInto(m, receiver)
        return yield* receiver.complete.pipe(Effect.mapError(local))
      })
    )
    yield* Effect.scoped(
      Effect.flatMap(openBackup(target), (b) =>
        recordManifest(
          b.sql,
          // an entry carries every field of the chunk's meta
          m.chunks.map((c) => ({ meta: c, entry: c })),
          m.head,
          m.object,
          m.dropped
        )
      )
    ).pipe(Effect.mapError(local))
    if (Option.isSome(existing)) yield* run.db.remove(m.user).pipe(Effect.mapError(local))
    yield* run.db.record(m.user, target).pipe(Effect.mapError(local))
    return { _tag: "Pulled", user: m.user, dataPath: target, bytes: restored.bytes, sha1: restored.sha1, chunks: m.chunks.length, seq: m.head.seq } as const
  })

export const pullCommand = (run: Run): Effect.Effect<number> =>
  Effect.gen(function*() {
    const s = yield* storeOrExit(run)
    if (Either.isLeft(s)) return s.left
    const store = s.right
    const partitions = yield* Effect.either(Effect.provide(Partitions, Partitions.layerFromConfig().pipe(Layer.provide(Layer.succeed(Config, run.config)))))
    if (Either.isLeft(partitions)) {
      yield* run.p.err(`pull: ${describe(partitions.left)}\n`)
      return EX_CONFIG
    }
    const dirs = yield* Effect.either(
      run.args.mode === "all"
        ? Effect.map(store.listUserDirs, (ds) => ds.map((d) => ({ dir: d, named: undefined as string | undefined })))
        : Effect.forEach(run.args.names, (n) => Effect.map(store.userDir(useridKey(run.config, n)), (d) => ({ dir: d, named: useridKey(run.config, n) as string | undefined })))
    )
    if (Either.isLeft(dirs)) {
      yield* run.p.err(`pull: ${dirs.left.message}\n`)
      return objectStoreExit(dirs.left)
    }
    let worst = EX_OK
    for (const [i, { dir, named }] of dirs.right.entries()) {
      const label = named ?? dir
      run.progress?.step(i, dirs.right.length, label)
      const r = yield* Effect.either(pullUser(run, store, partitions.right, dir, named))
      if (Either.isLeft(r)) {
        const e = r.left
        yield* run.p.err(`${label}: ${describe(e)}\n`)
        const code = objectStoreExit(e)
        if (worst === EX_OK) worst = code
        if (run.args.stopOnError) break
        continue
      }
      const v = r.right
      switch (v._tag) {
        case "NoManifest":
          yield* run.p.err(`${label}: no backup of this user in the object store\n`)
          if (worst === EX_OK) worst = EX_TEMPFAIL
          break
        case "Exists":
          yield* run.p.err(`${v.user}: already has a backup here (${v.dataPath}); left alone\n`)
          break
        case "Pulled":
          run.progress?.addBytes(v.bytes)
          yield* run.args.json
            ? run.p.outUtf8(
                jsonDump(
                  new JObject().set("command", "pull").set("userid", jstring(v.user)).set("fname", jstring(v.dataPath)).set("chunks", v.chunks).set("bytes", v.bytes).set("sha1", v.sha1).set("manifest_seq", v.seq)
                ) + "\n"
              )
            : run.p.out(`${v.user}\t${v.dataPath}\t${v.chunks}\t${v.bytes}\t${v.sha1}\n`)
      }
    }
    run.progress?.clear()
    return worst
  })
