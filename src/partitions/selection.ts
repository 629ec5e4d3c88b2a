/**
 * Partition choice for new backups, following Cyrus 3.6's partlist rules: per-partition free
 * space is turned into a "quota" (percent free, possibly adjusted) and the mode picks among
 * partitions whose quota is not 0. Pure: file-system figures and randomness are injected.
 */
export type SelectMode =
  | "random"
  | "freespace-most"
  | "freespace-percent-most"
  | "freespace-percent-weighted"
  | "freespace-percent-weighted-delta"

/** Any unknown mode name means random, as in Cyrus. */
export const parseSelectMode = (text: string | undefined): SelectMode => {
  switch (text ?? "freespace-most") {
    case "freespace-most":
      return "freespace-most"
    case "freespace-percent-most":
      return "freespace-percent-most"
    case "freespace-percent-weighted":
      return "freespace-percent-weighted"
    case "freespace-percent-weighted-delta":
      return "freespace-percent-weighted-delta"
    default:
      return "random"
  }
}

/** What statvfs told us about one partition; undefined when it failed. */
export interface SpaceFigures {
  /** Identifies the file system (partitions on the same one are counted once). */
  readonly fsId: number
  readonly availableKiB: number
  readonly totalKiB: number
}

export interface PartitionItem {
  readonly name: string
  readonly path: string
  fsId: number
  availableKiB: number
  totalKiB: number
  quota: number
}

export interface SelectionSettings {
  readonly mode: SelectMode
  /** partition_select_soft_usage_limit, percent used above which a partition is avoided. */
  readonly softUsageLimit: number
  /** partition_select_usage_reinit: re-measure after this many selections (0 = never). */
  readonly usageReinit: number
}

/** Names in partition_select_exclude, split on space, comma and tab. */
export const parseExcluded = (text: string | undefined): ReadonlyArray<string> =>
  (text ?? "").split(/[ ,\t]+/).filter((s) => s.length > 0)

export class PartitionSelector {
  readonly items: PartitionItem[]
  private forceRandom = false
  private reinitCounter = 0
  private measured = false

  constructor(
    partitions: ReadonlyArray<readonly [name: string, path: string]>,
    readonly settings: SelectionSettings,
    private readonly measure: (path: string) => SpaceFigures | undefined,
    private readonly random: () => number
  ) {
    this.items = partitions.map(([name, path]) => ({ name, path, fsId: 0, availableKiB: 0, totalKiB: 0, quota: 0 }))
  }

  /** Re-measures every partition and recomputes quotas. */
  computeQuotas(): void {
    this.measured = true
    this.forceRandom = false
    const { mode } = this.settings
    if (mode === "random") {
      for (const item of this.items) item.quota = 50
      return
    }
    const softLimit = 100 - this.settings.softUsageLimit
    let minQuota = 100
    let minQuotaAboveLimit = 100
    let limitApplies = false
    for (let i = 0; i < this.items.length; i++) {
      const item = this.items[i]!
      const figures = this.measure(item.path)
      item.fsId = figures?.fsId ?? 0
      item.availableKiB = figures?.availableKiB ?? 0
      item.totalKiB = figures?.totalKiB ?? 0
      item.quota = 0
      if (mode === "freespace-most" || mode === "freespace-percent-most") {
        // a file system shared by several partitions counts once, for the first of them
        if (this.items.slice(0, i).some((earlier) => earlier.fsId === item.fsId)) continue
      }
      const percentFree = item.totalKiB > 0 ? (item.availableKiB * 100) / item.totalKiB : -1
      if (percentFree < 0 || percentFree > 100) {
        // figures that make no sense: fall back to random choice
        this.forceRandom = true
        break
      }
      item.quota = percentFree
      if (item.quota < minQuota) minQuota = item.quota
      if (item.quota <= softLimit) continue
      limitApplies = true
      if (item.quota < minQuotaAboveLimit) minQuotaAboveLimit = item.quota
    }
    if (limitApplies) minQuota = minQuotaAboveLimit
    for (const item of this.items) {
      if (this.forceRandom) item.quota = 50
      else if (limitApplies && item.quota <= softLimit) item.quota = 0
      else if (mode === "freespace-percent-weighted-delta") item.quota = Math.max(0, item.quota - minQuota + 0.5)
    }
    if (this.forceRandom) return
    if (mode === "freespace-percent-weighted" || mode === "freespace-percent-weighted-delta") {
      const total = this.items.reduce((sum, item) => sum + item.quota, 0)
      if (total !== 0) for (const item of this.items) item.quota = (item.quota * 100) / total
    }
  }

  private bump(): void {
    if (this.settings.usageReinit > 0 && this.reinitCounter++ >= this.settings.usageReinit) {
      this.computeQuotas()
      this.reinitCounter = 1
    }
  }

  private availableCount(): number {
    const count = this.items.filter((item) => item.quota !== 0).length
    if (count === 0) this.bump()
    return count
  }

  /** The chosen partition, or undefined when none can be chosen. */
  select(): PartitionItem | undefined {
    if (this.items.length === 0) return undefined
    if (!this.measured) this.computeQuotas()
    const available = this.availableCount()
    if (available === 0) return undefined
    this.bump()
    const { mode } = this.settings
    if (mode === "random" || this.forceRandom) {
      const nth = Math.floor(this.random() * available)
      return this.items.filter((item) => item.quota !== 0)[nth]
    }
    switch (mode) {
      case "freespace-most": {
        let best: PartitionItem | undefined
        for (const item of this.items) {
          if (item.quota !== 0 && item.availableKiB > (best?.availableKiB ?? 0)) best = item
        }
        return best
      }
      case "freespace-percent-most": {
        let best: PartitionItem | undefined
        for (const item of this.items) {
          if (item.quota !== 0 && item.quota > (best?.quota ?? 0)) best = item
        }
        return best
      }
      case "freespace-percent-weighted":
      case "freespace-percent-weighted-delta": {
        const draw = 100 * this.random()
        let sum = 0
        let at = 0
        for (; at < this.items.length; at++) {
          sum += this.items[at]!.quota
          if (draw < sum) break
        }
        if (at === this.items.length) at--
        // never land on an unwanted partition: step back to the last wanted one
        while (at >= 0 && this.items[at]!.quota === 0) at--
        return at >= 0 ? this.items[at] : undefined
      }
    }
  }
}
