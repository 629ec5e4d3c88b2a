import { runCtlBackups } from "../tools/ctlBackups.js"
import { processIo } from "../tools/toolIo.js"

runCtlBackups(process.argv.slice(2), processIo()).then((code) => {
  process.exitCode = code
})
