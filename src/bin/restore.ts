import { runRestore } from "../tools/restore/restore.js"
import { usageText } from "../tools/restore/options.js"
import { versionLine } from "../util/version.js"

const argv = process.argv.slice(2)
if (argv.length === 1 && argv[0] === "--version") {
  process.stdout.write(versionLine("restore") + "\n")
} else if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
  process.stdout.write(usageText + "\n")
} else {
  runRestore(argv).then(
    (code) => {
      process.exitCode = code
    },
    (e: unknown) => {
      process.stderr.write(`restore: internal error: ${e instanceof Error ? e.message : String(e)}\n`)
      process.exitCode = 70
    }
  )
}
