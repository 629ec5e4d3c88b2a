import { runBackupd } from "../service/backupd.js"
import { paceBuffers } from "../util/bufferPacer.js"

// dead I/O buffers bounded (util/bufferPacer.ts): backupd's memory is per session
paceBuffers()

runBackupd(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`backupd: internal error: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exitCode = 70
  }
)
