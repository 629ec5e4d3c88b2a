/**
 * `restore`: mailboxes and messages from a backup into a live server over csync, as Cyrus
 * 3.6.1's restore does — open (lock) the backup, plan, connect to the destination as
 * `sync_authname`, RESERVE and upload the messages, then `RESTORE MAILBOX` each mailbox —
 * plus, with `-S`, the user's seen state, subscriptions and sieve scripts, and with `-T`, the
 * backup as it stood at a given time.
 *
 * Every failure ends the run with one line on stderr and a sysexits code (see docs/restore.md).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Either, Layer, Option, Stream } from "effect"
import * as fs from "node:fs"
import { Config, type CyrusConfig } from "../../config/index.js"
import { canonicalUserid, backupKeyOfMboxname, type NamingOptions } from "../../protocol/mboxname.js"
import { printItem } from "../../protocol/dlist/print.js"
import { Partitions } from "../../partitions/index.js"
import { BackupsDb, openAtTime, openForRead, type BackupReader } from "../../store/index.js"
import { withServiceLog } from "../../telemetry/ServiceLog.js"
import * as X from "../../util/sysexits.js"
import { progressWanted } from "../Progress.js"
import { toolLog } from "../toolRuntime.js"
import { InputFileError, NoSuchBackup, SyncConnectError } from "./errors.js"
import { mailboxItem } from "./mailboxItem.js"
import { parseRestoreArgs, usageText, type RestoreOptions } from "./options.js"
import { buildPlan, internalName, type PlanRequest, type RestorePlan } from "./plan.js"
import { openSyncSession, parseServerAddress, portOf } from "./syncClient.js"
import { reserveMissing, uploadMessages } from "./transfer.js"
import { restoreUserState } from "./userState.js"

export interface RestoreIo {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  /** Whether stderr and stdout are terminals: only when both are is a progress bar drawn (Progress.ts's rule). */
  readonly stderrIsTty?: boolean
  readonly stdoutIsTty?: boolean
  /** stdin, for `-F -`. */
  readonly stdin?: () => string
}

const defaultIo: RestoreIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  stderrIsTty: process.stderr.isTTY === true,
  stdoutIsTty: process.stdout.isTTY === true,
  stdin: () => fs.readFileSync(0, "latin1")
}

/** `[#####-----] 120/400 messages, 35.2/96.0 MB` on a terminal; nothing otherwise. */
export const uploadProgress = (io: RestoreIo) => {
  if (!progressWanted({ stderrIsTty: io.stderrIsTty === true, stdoutIsTty: io.stdoutIsTty === true })) return { step: () => {}, clear: () => {} }
  let shown = false
  const mb = (n: number) => (n / 1e6).toFixed(1)
  return {
    step: (done: number, total: number, doneBytes: number, totalBytes: number) => {
      const filled = total > 0 ? Math.round((24 * done) / total) : 24
      io.stderr(`\r\x1b[K[${"#".repeat(filled)}${"-".repeat(24 - filled)}] ${done}/${total} messages, ${mb(doneBytes)}/${mb(totalBytes)} MB`)
      shown = true
    },
    clear: () => {
      if (shown) io.stderr("\r\x1b[K")
      shown = false
    }
  }
}

/** Where the backup lives and whose it is. */
const locateBackup = (o: RestoreOptions, config: CyrusConfig, naming: NamingOptions) =>
  Effect.gen(function*() {
    if (o.mode === "filename") return { dataPath: o.backupName, userid: undefined as string | undefined }
    const key = o.mode === "userid"
      ? canonicalUserid(o.backupName, naming)
      : backupKeyOfMboxname(internalName(o.backupName, config.unixHierarchySep), naming)
    const db = yield* BackupsDb
    const found = yield* db.lookup(key)
    if (Option.isNone(found)) return yield* new NoSuchBackup({ name: o.backupName })
    return { dataPath: found.value.dataPath, userid: key === "%SHARED" ? undefined : key }
  }).pipe(
    Effect.provide(BackupsDb.layerFromConfig.pipe(Layer.provide(Partitions.layerFromConfig()), Layer.provide(Layer.succeed(Config, config))))
  )

/** `-F`: one object per line; empty lines and `#` comments skipped. */
const readInputFile = (path: string, io: RestoreIo) =>
  Effect.try({
    try: () => (path === "-" ? (io.stdin ?? defaultIo.stdin!)() : fs.readFileSync(path, "latin1")),
    catch: (e) => new InputFileError({ path, message: (e as Error).message })
  }).pipe(Effect.map((text) => text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l !== "" && !l.startsWith("#"))))

/** The userid owning most of the backup's mailboxes (for `-f` backups). */
const owningUser = (plan: RestorePlan, reader: BackupReader, naming: NamingOptions) =>
  Effect.map(reader.mailboxes(), (all) => {
    for (const m of [...plan.mailboxes, ...all]) {
      const key = backupKeyOfMboxname(m.mboxname, naming)
      if (key !== "%SHARED") return key
    }
    return undefined
  })

const dryRunReport = (plan: RestorePlan): string => {
  const lines = plan.mailboxes.map((m) => `${m.mboxname} ${m.records.length} records`)
  const guids = new Set([...plan.reserve.values()].flat())
  lines.push(`total: ${plan.mailboxes.length} mailboxes, ${plan.mailboxes.reduce((s, m) => s + m.records.length, 0)} records, ${guids.size} messages`)
  return lines.join("\n") + "\n"
}

const program = (o: RestoreOptions, io: RestoreIo) =>
  Effect.gen(function*() {
    const log = (level: number) => (line: string) => {
      if (o.verbose >= level) io.stderr(line + "\n")
    }
    const verbose = log(1)
    const config = yield* Config.load({ path: o.configPath, service: "restore", serviceFromEnv: false })
    const naming: NamingOptions = { defaultDomain: config.defaultDomain ?? "internal", deletedPrefix: config.deletedPrefix }

    if (o.waitSeconds > 0) {
      io.stderr(`Waiting for ${o.waitSeconds} seconds for gdb attach...\n`)
      yield* Effect.sleep(`${o.waitSeconds} seconds`)
    }

    const { dataPath, userid: backupUser } = yield* locateBackup(o, config, naming)
    const reader = o.pointInTime === undefined
      ? yield* openForRead(dataPath)
      : yield* Effect.map(openAtTime(dataPath, o.pointInTime, { tempDir: config.tempPath }), (view) => {
        verbose(`point in time ${new Date(o.pointInTime! * 1000).toISOString()}: ${view.chunks.length} chunks replayed, ${view.skippedChunks} later ones left out`)
        return view.reader
      })

    const request: PlanRequest = o.allMailboxes
      ? { _tag: "All" }
      : { _tag: "Objects", names: o.inputFile === undefined ? o.objects : yield* readInputFile(o.inputFile, io) }
    const plan = yield* buildPlan(reader, request, {
      overrideAcl: o.overrideAcl,
      overrideMboxname: o.overrideMboxname,
      overridePartition: o.overridePartition,
      expunged: o.expunged,
      submailboxes: o.submailboxes,
      keepUidvalidity: o.keepUidvalidity,
      trimDeletedPrefix: o.trimDeletedPrefix,
      deletedPrefix: config.deletedPrefix,
      unixHierarchySep: config.unixHierarchySep,
      defaultPartition: config.optionText("defaultpartition") ?? "default",
      log: verbose
    })
    for (const name of plan.notFound) io.stderr(`${o.backupName}: ${name}: not found in the backup\n`)

    if (o.dryRun) {
      verbose("do nothing (-n) specified, exiting now")
      io.stdout(dryRunReport(plan))
      return plan.notFound.length > 0 ? X.EX_NOINPUT : X.EX_OK
    }

    const sync = config.channelSync(undefined)
    const port = portOf(sync.port)
    if (port === undefined) return yield* new SyncConnectError({ server: o.server, message: `sync_port ${sync.port}: not a port number` })
    const session = yield* openSyncSession({
      server: o.server,
      address: parseServerAddress(o.server, port),
      authname: sync.authname,
      password: sync.password,
      requireCompression: o.requireCompression,
      timeoutSeconds: Math.max(3, config.syncTimeout),
      log: log(2)
    })
    verbose(`connected to ${o.server}${session.compressed ? ", compressed" : ""}`)

    for (const [partition, guids] of plan.reserve) {
      const missing = yield* reserveMissing(session, partition, plan.reserveFolders, guids)
      verbose(`${partition}: ${guids.length} messages offered, ${missing.length} missing at the destination`)
      const bar = uploadProgress(io)
      yield* uploadMessages(session, reader, partition, missing, verbose, bar.step).pipe(Effect.ensuring(Effect.sync(bar.clear)))
    }

    const key = o.localOnly ? "LOCAL_MAILBOX" : "MAILBOX"
    for (const mb of plan.mailboxes) {
      const it = yield* mailboxItem(mb, key)
      yield* session.command(`RESTORE ${key} ${mb.mboxname}`, Stream.succeed(Buffer.concat([Buffer.from("RESTORE ", "latin1"), printItem(it)])))
      verbose(`${mb.mboxname}: restored ${mb.records.length} records`)
    }

    if (o.userState) {
      const userid = backupUser ?? (yield* owningUser(plan, reader, naming))
      if (userid === undefined) {
        io.stderr(`${o.backupName}: no user to restore seen state, subscriptions and sieve scripts for\n`)
      } else {
        const renumbered = new Set(plan.mailboxes.flatMap((m) => (m.uniqueid === null && m.sourceUniqueid !== null ? [m.sourceUniqueid] : [])))
        const report = yield* restoreUserState(session, reader, { userid, renumbered, log: verbose })
        verbose(`${userid}: ${report.subscriptions} subscriptions, ${report.sieveScripts} sieve scripts, ${report.seen} seen records restored`)
      }
    }
    return plan.notFound.length > 0 ? X.EX_NOINPUT : X.EX_OK
  }).pipe(Effect.scoped)

type Failure = Effect.Effect.Error<ReturnType<typeof program>>

/** One line and an exit code for each way a run can fail. */
export const describeFailure = (e: Failure, o: RestoreOptions): readonly [number, string] => {
  switch (e._tag) {
    case "ConfigError":
      return [X.EX_CONFIG, e.message]
    case "NoSuchBackup":
      return [X.EX_NOINPUT, `${e.name}: no backup found`]
    case "InputFileError":
      return [X.EX_NOINPUT, `${e.path}: ${e.message}`]
    case "BackupLocked":
      return [X.EX_TEMPFAIL, `${o.backupName}: backup is locked by another process`]
    case "BackupNotFound":
      return [X.EX_NOINPUT, `${e.path}: no such backup file`]
    case "BackupNeedsReindex":
      return [X.EX_DATAERR, `${e.path}: the index is missing; run ctl_backups reindex`]
    case "BackupCorrupt":
      return [X.EX_DATAERR, `${o.backupName}: backup is damaged: ${e.message}`]
    case "BackupIndexError":
    case "BackupIoError":
      return [X.EX_IOERR, `${o.backupName}: cannot read the backup: ${e.message}`]
    case "BackupExists":
      return [X.EX_IOERR, `${e.path}: exists`]
    case "SyncConnectError":
      return [X.EX_UNAVAILABLE, `${e.server}: ${e.message}`]
    case "SyncAuthError":
      return [X.EX_NOPERM, `${e.server}: authentication failed: ${e.message}`]
    case "CompressionUnavailable":
      return [X.EX_UNAVAILABLE, `${e.server}: compression required (-z) but not available`]
    case "SyncProtocolError":
      return [X.EX_PROTOCOL, `${e.command}: protocol error: ${e.message}`]
    case "SyncCommandRefused":
      return [X.EX_TEMPFAIL, `${e.command}: refused by the destination: NO ${e.reply}`]
    default:
      return [X.EX_SOFTWARE, `${o.backupName}: ${(e as unknown as { _tag: string })._tag}`]
  }
}

/** Runs restore with these arguments (without the program name); resolves to the exit code. */
export const runRestore = (argv: ReadonlyArray<string>, io: RestoreIo = defaultIo): Promise<number> => {
  const parsed = parseRestoreArgs(argv)
  if (Either.isLeft(parsed)) {
    io.stderr(`${usageText}\n\nrestore: ${parsed.left.reason}\n`)
    return Promise.resolve(X.EX_USAGE)
  }
  const o = parsed.right
  return Effect.runPromise(
    program(o, io).pipe(
      Effect.catchAll((e) =>
        Effect.sync(() => {
          const [code, line] = describeFailure(e, o)
          io.stderr(`restore: ${line}\n`)
          return code
        })
      ),
      Effect.catchAllDefect((d) =>
        Effect.sync(() => {
          io.stderr(`restore: internal error: ${d instanceof Error ? d.message : String(d)}\n`)
          return X.EX_SOFTWARE
        })
      ),
      Effect.provide(NodeContext.layer),
      withServiceLog(toolLog("restore", io.stderr))
    )
  )
}
