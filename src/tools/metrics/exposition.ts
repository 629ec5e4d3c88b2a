/**
 * The Prometheus text exposition of `ctl_backups metrics`, built with prom-client
 * (docs/operations.md, "Monitoring", lists every series). Aggregated by default, so that a
 * million users do not make a million series; `perUser` adds the gauges labelled `userid`.
 * prom-client is imported on first use, so the other commands never load it.
 */
import { Effect } from "effect"
import { COUNTER_METRICS, type Counters } from "../../telemetry/Counters.js"
import { isStale } from "./stale.js"
import type { BackupSurvey } from "./survey.js"

/** Upper bounds (seconds) of `cyrus_backup_success_age_seconds`. */
export const AGE_BUCKETS: ReadonlyArray<number> = [3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400]

/** Chunks and bytes sealed locally but not yet in the object store. */
export interface UploadPending {
  readonly chunks: number
  readonly bytes: number
}

export interface ExpositionInput {
  readonly backups: ReadonlyArray<BackupSurvey>
  /** `backup_stale_after`, seconds. */
  readonly staleAfter: number
  readonly now: number
  readonly perUser: boolean
  /** backupd's counters so far (countersFold.ts). */
  readonly counters: Counters
  /** Only when object storage is configured and the pending figures are known. */
  readonly uploadPending: UploadPending | undefined
}

/** A byte-string userid as label text (Cyrus userids are UTF-8 bytes). */
const labelText = (s: string) => Buffer.from(s, "latin1").toString("utf8")

export const exposition = (input: ExpositionInput): Effect.Effect<string> =>
  Effect.promise(async () => {
    const prom = await import("prom-client")
    const registry = new prom.Registry()
    const gauge = (name: string, help: string, value: number) => {
      new prom.Gauge({ name, help, registers: [registry] }).set(value)
    }
    const { backups, now, staleAfter } = input
    let stale = 0
    let oldest: number | undefined
    let dataBytes = 0
    let indexBytes = 0
    let chunks = 0
    let compaction = 0
    let locked = 0
    let unreadable = 0
    const ages = new prom.Histogram({
      name: "cyrus_backup_success_age_seconds",
      help: "Age of each backup's last success (its latest chunk's end), over the backups that have one",
      buckets: [...AGE_BUCKETS],
      registers: [registry]
    })
    for (const b of backups) {
      if (isStale(b.lastSuccess, staleAfter, now)) stale++
      if (b.lastSuccess !== undefined) {
        const age = Math.max(0, now - b.lastSuccess)
        ages.observe(age)
        if (oldest === undefined || age > oldest) oldest = age
      }
      dataBytes += b.dataBytes ?? 0
      indexBytes += b.indexBytes ?? 0
      chunks += b.chunks
      if (b.compactionWanted) compaction++
      if (b.locked === true) locked++
      if (b.unreadable !== undefined) unreadable++
    }
    gauge("cyrus_backup_users", "Backups listed in backups.db", backups.length)
    gauge("cyrus_backup_users_stale", "Backups with no chunk ended within backup_stale_after (or none readable at all)", stale)
    gauge("cyrus_backup_stale_after_seconds", "The configured backup_stale_after", staleAfter)
    gauge("cyrus_backup_users_unreadable", "Backups whose data file or index could not be read", unreadable)
    if (oldest !== undefined) gauge("cyrus_backup_oldest_success_age_seconds", "Age of the oldest last success over all backups", oldest)
    gauge("cyrus_backup_data_bytes", "Size of all data files", dataBytes)
    gauge("cyrus_backup_index_bytes", "Size of all index files", indexBytes)
    gauge("cyrus_backup_chunks", "Chunks in all indexes", chunks)
    gauge("cyrus_backup_compaction_wanted_users", "Backups that ctl_backups compact would compact by the configured rules", compaction)
    gauge("cyrus_backup_locked_users", "Backups whose data file some process holds locked right now (from /proc/locks; 0 where it cannot be read)", locked)
    if (input.uploadPending !== undefined) {
      gauge("cyrus_backup_upload_pending_chunks", "Sealed chunks not yet copied to the object store", input.uploadPending.chunks)
      gauge("cyrus_backup_upload_pending_bytes", "Bytes of sealed chunks not yet copied to the object store", input.uploadPending.bytes)
    }
    gauge("cyrus_backup_metrics_timestamp_seconds", "When these figures were read", now)

    if (input.perUser) {
      const last = new prom.Gauge({
        name: "cyrus_backup_last_success_timestamp_seconds",
        help: "End time of the backup's latest chunk (absent: none)",
        labelNames: ["userid"],
        registers: [registry]
      })
      const userBytes = new prom.Gauge({ name: "cyrus_backup_user_data_bytes", help: "Size of the backup's data file", labelNames: ["userid"], registers: [registry] })
      const userChunks = new prom.Gauge({ name: "cyrus_backup_user_chunks", help: "Chunks in the backup's index", labelNames: ["userid"], registers: [registry] })
      for (const b of backups) {
        const userid = labelText(b.userid)
        if (b.lastSuccess !== undefined) last.set({ userid }, b.lastSuccess)
        userBytes.set({ userid }, b.dataBytes ?? 0)
        userChunks.set({ userid }, b.chunks)
      }
    }

    for (const [key, spec] of Object.entries(COUNTER_METRICS)) {
      const counted = input.counters[key] ?? {}
      const name = `cyrus_backupd_${key}_total`
      const help = `backupd: ${spec.help}`
      if (spec.label === undefined) {
        new prom.Counter({ name, help, registers: [registry] }).inc(counted[""] ?? 0)
      } else {
        const c = new prom.Counter({ name, help, labelNames: [spec.label], registers: [registry] })
        for (const [value, n] of Object.entries(counted)) c.inc({ [spec.label]: value }, n)
      }
    }
    return registry.metrics()
  })
