import { runNotYetImplemented } from "../tools/notYet.js"
import { restoreUsage } from "../tools/usageTexts.js"

process.exitCode = runNotYetImplemented("restore", restoreUsage, process.argv.slice(2))
