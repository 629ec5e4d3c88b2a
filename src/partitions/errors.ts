import { Data } from "effect"

/** No `backuppartition-<name>` option is configured (or all are excluded). */
export class NoPartitionConfigured extends Data.TaggedError("NoPartitionConfigured")<{}> {
  override get message(): string {
    return "no backuppartition-<name> option is configured"
  }
}

/** Partitions exist but selection found none usable (no free space reported, ...). */
export class NoPartitionAvailable extends Data.TaggedError("NoPartitionAvailable")<{
  readonly reason: string
}> {
  override get message(): string {
    return `no backup partition can take a new backup: ${this.reason}`
  }
}

/** The chosen partition could not hold a new backup file (mkdir, create or lock failed). */
export class PartitionNotWritable extends Data.TaggedError("PartitionNotWritable")<{
  readonly path: string
  readonly operation: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.operation} ${this.path}: ${this.reason}`
  }
}

export type PartitionError = NoPartitionConfigured | NoPartitionAvailable | PartitionNotWritable
