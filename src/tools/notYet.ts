/**
 * Entry behaviour of a companion tool whose commands are not implemented yet: `--help`/`-h`
 * print the usage and exit 0, `--version` prints the version; anything else prints the usage
 * and a one-line notice to stderr and exits EX_UNAVAILABLE (69). No command pretends to work.
 */
import { EX_OK, EX_UNAVAILABLE } from "../util/sysexits.js"
import { versionLine } from "../util/version.js"

export const runNotYetImplemented = (program: string, usage: string, argv: ReadonlyArray<string>): number => {
  if (argv.includes("--version")) {
    process.stdout.write(versionLine(program) + "\n")
    return EX_OK
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage + "\n")
    return EX_OK
  }
  process.stderr.write(usage + "\n")
  process.stderr.write(`${program}: not implemented yet in this version of cyrus-backupd\n`)
  return EX_UNAVAILABLE
}
