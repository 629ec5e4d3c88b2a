/**
 * Our backupd bundled into one file (test/support/bundle.ts), so the process-level fault and
 * load tests pay a fraction of the start-up of `bin/backupd`. Built once per test process.
 */
import { bundleEntry } from "../../support/bundle.js"

let built: Promise<string> | undefined

export const bundledBackupd = (): Promise<string> => {
  built ??= bundleEntry("src/bin/backupd.ts", "backupd-conformance")
  return built
}
