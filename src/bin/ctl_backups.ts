import { runNotYetImplemented } from "../tools/notYet.js"
import { ctlBackupsUsage } from "../tools/usageTexts.js"

process.exitCode = runNotYetImplemented("ctl_backups", ctlBackupsUsage, process.argv.slice(2))
