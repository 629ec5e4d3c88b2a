import { runNotYetImplemented } from "../tools/notYet.js"
import { cyrBackupUsage } from "../tools/usageTexts.js"

process.exitCode = runNotYetImplemented("cyr_backup", cyrBackupUsage, process.argv.slice(2))
