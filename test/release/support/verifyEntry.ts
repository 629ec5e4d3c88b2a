/**
 * A tiny program bundled next to a release by the release tests: runs the store's full verify
 * on each data file named on the command line and prints one line per file (`verify <path>: ok`
 * or the problems); exits 1 if any failed. Stands in for `ctl_backups verify` until that exists.
 */
import { Effect } from "effect"
import { formatProblems, verifyFile } from "../../../src/store/maintain/verify.js"

const verifyOne = (path: string) =>
  verifyFile(path, { level: "full" }).pipe(
    Effect.map((report) => ({
      ok: report.ok,
      text: report.ok
        ? `verify ${path}: ok (${report.chunks} chunks; ${report.checks.join(", ")})`
        : `verify ${path}: FAILED\n  ${formatProblems(report).join("\n  ")}`
    })),
    Effect.catchAll((e) => Effect.succeed({ ok: false, text: `verify ${path}: FAILED (${e._tag})` }))
  )

Effect.runPromise(Effect.forEach(process.argv.slice(2), verifyOne)).then((results) => {
  process.stdout.write(results.map((r) => r.text).join("\n") + "\n")
  process.exitCode = results.length > 0 && results.every((r) => r.ok) ? 0 : 1
})
