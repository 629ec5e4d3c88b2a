import { runCtlBackups } from "../tools/ctlBackups/main.js"
import { processIo } from "../tools/ToolIo.js"

runCtlBackups(process.argv.slice(2), processIo()).then((code) => {
  process.exitCode = code
})
