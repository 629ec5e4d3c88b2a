/**
 * Seed inputs for the fuzzer: the client side of the recorded C backupd transcripts
 * (test/fixtures/transcripts, `<ts<` segments are client → server), cut into commands.
 */
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const TRANSCRIPTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "transcripts")

/** The bytes a client sent in one transcript (latin1 string). */
export const clientStream = (file: string): string => {
  const text = fs.readFileSync(path.join(TRANSCRIPTS, file), "latin1")
  const parts = text.split(/([<>])\d{10}\1/)
  let out = ""
  // parts: [header, dir, segment, dir, segment, ...]
  for (let i = 1; i + 1 < parts.length; i += 2) if (parts[i] === "<") out += parts[i + 1]
  return out
}

const COMMAND_START = /\r\n(?=(?:APPLY|GET|RESTART|EXIT|NOOP|COMPRESS|AUTHENTICATE|STARTTLS) )/

/** Commands (each ending in CRLF) of all transcripts, at most `maxBytes` long, COMPRESS dropped. */
export const seedCommands = (maxBytes = 4096): Array<string> => {
  const files = fs.readdirSync(TRANSCRIPTS).filter((f) => f.endsWith(".backupd.log")).sort()
  const seen = new Set<string>()
  for (const f of files) {
    for (const piece of clientStream(f).split(COMMAND_START)) {
      const cmd = piece.endsWith("\r\n") ? piece : piece + "\r\n"
      if (cmd.length <= maxBytes && !cmd.startsWith("COMPRESS")) seen.add(cmd)
    }
  }
  return [...seen]
}
