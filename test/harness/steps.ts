/**
 * Steps the end-to-end sync tests share, with their assertions: an authenticated admin csync
 * session on a backup server, and a `sync_client` run that must exit 0 and leave every backup
 * closed.
 */
import { Effect } from "effect"
import { expect } from "vitest"
import { ADMIN_PASSWORD, ADMIN_USER, type BackupServerInstance, type SourceInstance } from "./instances.js"
import { csyncSession } from "./csync.js"
import { runSyncClient } from "./tools.js"

/** An authenticated admin csync session on `backup` (closed with the scope). */
export const adminSession = (backup: BackupServerInstance, compress = false) =>
  Effect.gen(function*() {
    const client = yield* csyncSession(backup.port)
    expect(yield* client.authenticate(ADMIN_USER, ADMIN_PASSWORD)).toBe("OK Success (no protection)")
    if (compress) expect(yield* client.compress).toBe("OK DEFLATE active")
    return client
  })

/** `sync_client <args>` from `source`: exit 0 (else its output and master's log are printed), backups closed after. */
export const syncOk = (source: SourceInstance, backup: BackupServerInstance, args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const result = yield* runSyncClient(source, args, { timeout: "180 seconds" })
    if (result.exitCode !== 0) console.error(result.stdout, result.stderr, yield* backup.masterLog)
    expect(result.exitCode, `sync_client ${args.join(" ")}`).toBe(0)
    yield* backup.awaitBackupsClosed()
    return result
  })
