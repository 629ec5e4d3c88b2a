/**
 * Many small synthetic backups for scale runs of `ctl_backups metrics` (test/tools/metricsScale
 * and bench/metrics.ts): `n` users in one backups.db (written in one twoskip transaction),
 * each with a data file of its own (a few bytes: metrics only stats it) and an index of its
 * own (a copy of one small SQLite index with Cyrus's schema and `chunks` chunk rows, the
 * latest ending an hour ago, or `ageOf(i)` seconds ago when that is defined), spread over 26 hashed directories as a partition is.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { chunkStateTableStatements, cyrusInitStatements, CYRUS_INDEX_VERSION } from "../../src/store/index/schema.js"
import * as Twoskip from "../../src/store/twoskip/index.js"

const Database = createRequire(import.meta.url)("better-sqlite3") as new (p: string) => { exec(s: string): void; close(): void }

export interface SyntheticHost {
  readonly dir: string
  readonly conf: string
  readonly users: number
}

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
  for (let c = 1; c <= chunks; c++) {
    db.exec(`INSERT INTO chunk (ts_start, ts_end, offset, length, file_sha1, data_sha1) VALUES (${now - 86400 + c}, ${now - 86400 + c}, ${c * 100}, 100, 'x', 'y');`)
  }
  db.exec(`UPDATE chunk SET ts_end = ${now - 3600} WHERE id = ${chunks};`)
  db.exec("VACUUM;")
  db.close()
  const entries: Array<readonly [string, string]> = []
  const data = Buffer.alloc(64, 0x1f)
  for (let i = 0; i < n; i++) {
    const userid = `user${String(i).padStart(6, "0")}`
    const dataPath = path.join(partition, String.fromCharCode(97 + (i % 26)), `${userid}_AbCdEf`)
    fs.writeFileSync(dataPath, data)
    fs.copyFileSync(template, `${dataPath}.index`)
    const age = ageOf?.(i)
    if (age !== undefined) {
      const idx = new Database(`${dataPath}.index`)
      idx.exec(`UPDATE chunk SET ts_end = ${now - age} WHERE id = ${chunks};`)
      idx.close()
    }
    entries.push([userid, dataPath])
  }
  const conf = path.join(dir, "imapd.conf")
  fs.writeFileSync(conf, [`configdirectory: ${dir}/conf`, `backuppartition-default: ${partition}`, `temp_path: ${dir}`, ""].join("\n"))
  return Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(Twoskip.open(path.join(dir, "conf", "backups.db"), { create: true, sync: false }), (tdb) =>
        tdb.transaction((txn) => Effect.forEach(entries, ([u, p]) => txn.create(Buffer.from(u), Buffer.from(p)), { discard: true }))
      )
    )
  ).then(() => ({ dir, conf, users: n }))
}
