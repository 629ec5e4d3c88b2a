import { runCyrBackup } from "../tools/cyrBackup.js"
import { processIo } from "../tools/ToolIo.js"

runCyrBackup(process.argv.slice(2), processIo()).then((code) => {
  process.exitCode = code
})
