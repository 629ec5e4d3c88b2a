/**
 * Many small synthetic backups for scale runs of `ctl_backups metrics` (test/tools/metricsScale
 * and bench/metrics.ts): `n` users in one backups.db (written in one twoskip transaction),
 * each with a data file of its own (a few bytes: metrics only stats it) and an index of its
 * own (a copy of one small SQLite index with Cyrus's schema and `chunks` chunk rows of 100 bytes
 * each, the latest ending an hour ago, or `ageOf(i)` seconds ago when that is defined), spread
 * over 26 hashed directories as a partition is.
 *
 * Each index also carries the object store's upload state (src/objectstore/localState.ts): a
 * recorded manifest listing every chunk but the last, so one chunk (100 bytes) is pending;
 * every tenth backup has the tables but no rows (all its chunks pending), as after a Cyrus
 * reindex. `uploadPendingOf(n)` gives the totals. `objectStoreConf(endpoint)` writes a second
 * imapd.conf with object storage configured (nothing is read from the store by metrics).
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { chunkStateTableStatements, cyrusInitStatements, CYRUS_INDEX_VERSION } from "../../src/store/index/schema.js"
import * as Twoskip from "../../src/store/twoskip/index.js"
import { uploadStateTableStatements } from "../../src/objectstore/localState.js"

const Database = createRequire(import.meta.url)("better-sqlite3") as new (p: string) => { exec(s: string): void; close(): void }

export interface SyntheticHost {
  readonly dir: string
  readonly conf: string
  readonly users: number
  /** The same host with object storage at `endpoint`: the path of its imapd.conf. */
  readonly objectStoreConf: (endpoint: string) => string
}

const CHUNK_BYTES = 100

/** The upload-pending totals of a synthetic host of `n` backups of `chunks` chunks. */
export const uploadPendingOf = (n: number, chunks = 3): { readonly chunks: number; readonly bytes: number } => {
  const bare = Math.ceil(n / 10)
  const pending = bare * chunks + (n - bare)
  return { chunks: pending, bytes: pending * CHUNK_BYTES }
}

const hex = (c: number, width: number) => c.toString(16).padStart(width, "0")

export const makeSyntheticHost = (dir: string, n: number, options: { readonly chunks?: number; readonly ageOf?: (i: number) => number | undefined } = {}): Promise<SyntheticHost> => {
  const chunks = options.chunks ?? 3
  const ageOf = options.ageOf
  const now = Math.floor(Date.now() / 1000)
  const partition = path.join(dir, "backups")
  fs.mkdirSync(path.join(dir, "conf"), { recursive: true })
  for (let c = 0; c < 26; c++) fs.mkdirSync(path.join(partition, String.fromCharCode(97 + c)), { recursive: true })
  const template = path.join(dir, "template.index")
  const db = new Database(template)
  db.exec("PRAGMA page_size = 512;")
  db.exec(["BEGIN;", ...cyrusInitStatements, `PRAGMA user_version = ${CYRUS_INDEX_VERSION};`, ...chunkStateTableStatements, "COMMIT;"].join("\n"))
  db.exec(["BEGIN;", ...uploadStateTableStatements, "COMMIT;"].join("\n"))
  const uploaded = new Date(Date.now() - 7200_000).toISOString()
  for (let c = 1; c <= chunks; c++) {
    const [offset, ts, fileSha1, dataSha1] = [(c - 1) * CHUNK_BYTES, now - 86400 + c, hex(c, 40), hex(c + 1000, 40)]
    db.exec(`INSERT INTO chunk (ts_start, ts_end, offset, length, file_sha1, data_sha1) VALUES (${ts}, ${ts}, ${offset}, ${CHUNK_BYTES}, '${fileSha1}', '${dataSha1}');`)
    if (c === chunks) continue
    const object = `chunks/${hex(c, 64)}`
    const entry = { id: c, offset, size: CHUNK_BYTES, sha256: hex(c, 64), length: CHUNK_BYTES, dataSha1, fileSha1, tsStart: ts, tsEnd: ts, object, stored: CHUNK_BYTES, etag: `"${hex(c, 32)}"` }
    db.exec(`INSERT INTO backupd_object (chunk_id, offset, size, data_sha1, file_sha1, object, entry, uploaded) VALUES (${c}, ${offset}, ${CHUNK_BYTES}, '${dataSha1}', '${fileSha1}', '${object}', '${JSON.stringify(entry)}', '${uploaded}');`)
  }
  db.exec(`INSERT INTO backupd_object_head (id, seq, kind, chain_length, chunk_count, end_offset, object, written) VALUES (1, 1, 'full', 1, ${chunks - 1}, ${(chunks - 1) * CHUNK_BYTES}, 'manifests/1', '${uploaded}');`)
  db.exec(`UPDATE chunk SET ts_end = ${now - 3600} WHERE id = ${chunks};`)
  db.exec("VACUUM;")
  db.close()
  const entries: Array<readonly [string, string]> = []
  const data = Buffer.alloc(chunks * CHUNK_BYTES, 0x1f)
  for (let i = 0; i < n; i++) {
    const userid = `user${String(i).padStart(6, "0")}`
    const dataPath = path.join(partition, String.fromCharCode(97 + (i % 26)), `${userid}_AbCdEf`)
    fs.writeFileSync(dataPath, data)
    fs.copyFileSync(template, `${dataPath}.index`)
    const age = ageOf?.(i)
    const bare = i % 10 === 0
    if (age !== undefined || bare) {
      const idx = new Database(`${dataPath}.index`)
      if (age !== undefined) idx.exec(`UPDATE chunk SET ts_end = ${now - age} WHERE id = ${chunks};`)
      if (bare) idx.exec("DELETE FROM backupd_object; DELETE FROM backupd_object_head;")
      idx.close()
    }
    entries.push([userid, dataPath])
  }
  const conf = path.join(dir, "imapd.conf")
  const confLines = [`configdirectory: ${dir}/conf`, `backuppartition-default: ${partition}`, `temp_path: ${dir}`]
  fs.writeFileSync(conf, [...confLines, ""].join("\n"))
  const objectStoreConf = (endpoint: string) => {
    const file = path.join(dir, "imapd-objectstore.conf")
    const store = [`backup_objectstore_endpoint: ${endpoint}`, "backup_objectstore_bucket: cyrus-backups", `backup_objectstore_credentials: ${dir}/credentials`]
    fs.writeFileSync(file, [...confLines, ...store, ""].join("\n"))
    return file
  }
  return Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(Twoskip.open(path.join(dir, "conf", "backups.db"), { create: true, sync: false }), (tdb) =>
        tdb.transaction((txn) => Effect.forEach(entries, ([u, p]) => txn.create(Buffer.from(u), Buffer.from(p)), { discard: true }))
      )
    )
  ).then(() => ({ dir, conf, users: n, objectStoreConf }))
}
