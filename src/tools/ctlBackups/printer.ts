/**
 * Everything ctl_backups prints, in Cyrus 3.6.1's words and layout: the text lines and the
 * JSON objects (`-j`) of each command's result, the per-backup status lines, and what `lock`
 * says while it works. Output goes through the run's printer, which first erases the progress
 * bar.
 */
import { Effect } from "effect"
import { errorMessage, fixed6_1, IMAP_MAILBOX_LOCKED } from "../cFormat.js"
import { JObject, jreal, jsonDump, jstring } from "../jansson.js"
import { isStale } from "../metrics/stale.js"
import type { Target } from "../targets.js"
import type { Printer } from "../ToolIo.js"
import type { CompactResult } from "./compact.js"
import type { ListResult } from "./list.js"
import type { ReconstructResult } from "./reconstruct.js"
import type { ReindexResult } from "./reindex.js"
import { who, type Run } from "./Run.js"
import type { StatResult } from "./stat.js"
import type { VerifyResult } from "./verify.js"

const statusText = (r: number) =>
  r === 1 ? "skipped" : r === 0 ? "ok" : r === IMAP_MAILBOX_LOCKED ? "locked" : `failed (${errorMessage(r)})`

const json = (p: Printer, o: JObject) => p.outUtf8(jsonDump(o) + "\n")

/**
 * Our extension of list's and stat's JSON objects, after Cyrus's keys: `last_success` (unix
 * seconds of the last chunk's end, or of its start if it has no end; absent when there is no
 * chunk) and `stale` (no success within
 * `backup_stale_after`, tools/metrics/survey.ts).
 */
const withSuccess = (run: Run, o: JObject, lastSuccess: number | undefined) =>
  o.set("last_success", lastSuccess).set("stale", isStale(lastSuccess, run.config.backupStaleAfter, Math.floor(Date.now() / 1000)))

/** `<command> <who>: <status>`, or its JSON object. */
export const printStatus = (run: Run, command: string, t: Target, r: number) =>
  run.args.json
    ? json(run.p, new JObject().set("command", command).set("userid", jstring(t.userid)).set("fname", jstring(t.dataPath)).set("status", statusText(r)))
    : run.p.out(`${command} ${who(t)}: ${statusText(r)}\n`)

/** `<who>: <error>` on stderr, for a backup list or stat could not report on. */
const printFailure = (run: Run, t: Target, code: number) => run.p.err(`${who(t)}: ${errorMessage(code)}\n`)

/** With object storage on, `list` adds the chunks and bytes pending upload (our extension). */
const withPending = (o: JObject, p: { readonly chunks: number; readonly bytes: number } | undefined) =>
  p === undefined ? o : o.set("pending_chunks", p.chunks).set("pending_bytes", p.bytes)

export const printList = (run: Run, t: Target, r: ListResult) => {
  switch (r._tag) {
    case "Failed":
      return printFailure(run, t, r.code)
    case "Recent":
      return Effect.void
    case "Listed":
      return run.args.json
        ? json(
          run.p,
          withSuccess(
            run,
            withPending(new JObject().set("timestamp", r.timestamp).set("compressed", r.size).set("userid", jstring(t.userid)).set("fname", jstring(t.dataPath)), r.pending),
            r.lastSuccess
          )
        )
        : run.p.out(`${r.timestamp}\t${r.size}\t${t.userid ?? "[unknown]"}\t${t.dataPath}${r.pending === undefined ? "" : `\t${r.pending.chunks}\t${r.pending.bytes}`}\n`)
  }
}

export const printStat = (run: Run, t: Target, r: StatResult) => {
  if (r._tag === "Failed") return printFailure(run, t, r.code)
  return run.args.json
    ? json(
      run.p,
      withSuccess(
        run,
        new JObject()
          .set("userid", jstring(t.userid))
          .set("fname", jstring(t.dataPath))
          .set("compressed", r.compressed)
          .set("uncompressed", r.uncompressed)
          .set("compactable", r.compactable)
          .set("compression_ratio", jreal(r.compressionRatio))
          .set("utilisation_ratio", jreal(r.utilisationRatio))
          .set("last_start_time", r.lastStart)
          .set("last_end_time", r.lastEnd),
        r.lastSuccess
      )
    )
    : run.p.out(
      `${who(t)}\t${r.compressed}\t${r.uncompressed}\t${r.compactable}\t${fixed6_1(r.compressionRatio)}%\t${fixed6_1(r.utilisationRatio)}%\t${r.lastStart.padStart(21)}\t${r.lastEnd}\n`
    )
}

/** The verifier's own lines (stdout), our extra findings (stderr), then the status line. */
export const printVerify = (run: Run, t: Target, r: VerifyResult) =>
  Effect.gen(function*() {
    if (r.output !== undefined) yield* run.p.out(r.output)
    for (const d of r.diagnostics ?? []) yield* run.p.err(`${who(t)}: ${d}\n`)
    yield* printStatus(run, "verify", t, r.code)
  })

export const printReindex = (run: Run, t: Target, r: ReindexResult, code: number) =>
  Effect.gen(function*() {
    if (r._tag === "Reindexed") {
      if (r.found !== undefined) {
        const { offsets, size } = r.found
        let text = offsets.map((o) => `\nfound chunk at offset ${o}\n\n`).join("")
        // Cyrus's reader only notices the end of the file after one more, empty, member
        if (size !== undefined && offsets.length > 0) text += `\nfound chunk at offset ${size}\n\n`
        yield* run.p.out(text + "reached end of file\n")
      }
      for (const prob of r.problems) yield* run.p.out(`error reading chunk at offset ${prob.offset}, byte 0: ${prob.message}\n`)
      for (const rej of r.rejected) {
        yield* run.p.err(`${who(t)}: chunk ${rej.chunkId} offset ${rej.offset}: ${rej.key} not indexed (${rej.reason}: ${rej.message})\n`)
      }
    }
    yield* printStatus(run, "reindex", t, code)
  })

export const printCompact = (run: Run, t: Target, r: CompactResult, code: number) =>
  Effect.gen(function*() {
    if (r._tag === "Failed" && r.message !== undefined) yield* run.p.err(`${who(t)}: ${r.message}\n`)
    if (r._tag === "Compacted") {
      const report = r.report
      if (run.args.verbose > 0) {
        yield* run.p.out(`keeping ${report.keptChunks.length} chunks:\n${report.keptChunks.map((id) => ` ${id}`).join("")}\n`)
        for (const line of report.log) yield* run.p.out(`${line}\n`)
      }
      for (const e of report.readErrors) yield* run.p.out(`error reading chunk at offset ${e.offset}, byte ${e.byte}: ${e.message}\n`)
    }
    yield* printStatus(run, "compact", t, code)
  })

export const printMoved = (run: Run, t: Target, to: string | undefined) =>
  to !== undefined && run.args.verbose > 0 ? run.p.out(`moved ${t.dataPath} to ${to}\n`) : Effect.void

/** What `lock` says as it goes: on stdout in pipe mode (a client reads it), else on stderr. */
export const lockLines = (run: Run, t: Target) => {
  const pipeMode = run.args.lockMode === "pipe"
  return {
    trying: pipeMode ? run.p.out(`* Trying to obtain lock on ${who(t)}...\n`) : run.p.err(`trying to obtain lock on ${who(t)}...\n`),
    refused: (code: number) =>
      pipeMode ? run.p.out(`NO failed (${errorMessage(code)})\n`) : run.p.err(`unable to lock ${who(t)}: ${errorMessage(code)}\n`),
    locked: run.p.out("OK locked\n"),
    execSql: (indexPath: string) => run.p.err(`execlp: sqlite3 ${indexPath}\n`)
  }
}

export const printReconstruct = (p: Printer, asJson: boolean, r: ReconstructResult) =>
  Effect.gen(function*() {
    for (const e of r.entries) {
      yield* asJson
        ? json(p, new JObject().set("command", "reconstruct").set("userid", jstring(e.userid)).set("fname", jstring(e.dataPath)).set("status", e.status))
        : p.out(`reconstruct ${e.userid}: ${e.status}\n`)
    }
    for (const f of r.ignored) yield* p.err(`reconstruct: ignoring older backup ${f.dataPath} of ${f.userid}\n`)
  })

/** A named backup that backups.db does not know. */
export const printNotFound = (p: Printer, name: string) => p.err(`${name}: not found in backups.db\n`)

export const printDbUnreadable = (p: Printer, program: string, e: { readonly message: string; readonly _tag: string }) =>
  p.err(`${program}: cannot read backups.db: ${e.message || e._tag}\n`)
