/** Makes a directory's entries durable (a file linked or renamed into it). */
import fs from "node:fs"

export const fsyncDirectory = (dir: string): void => {
  const fd = fs.openSync(dir, "r")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}
