/**
 * `-D`: before serving, run the `debug_command` from imapd.conf (typically to attach a
 * debugger). The option is a printf format that receives, in order, the program path, the
 * process id and the service name, e.g. `/usr/bin/gdb %s %d`. Sequential `%s`, `%d`/`%i`/`%u`
 * and `%%` are understood (positional forms like `%3$s` are not).
 * The command runs through `/bin/sh -c`, as system(3) would, and its exit status is only logged.
 */
import { Effect } from "effect"

/** Fills `format` with argv0, pid and service, in that order. Unknown conversions stay as written. */
export const formatDebugCommand = (format: string, argv0: string, pid: number, service: string): string => {
  const args: ReadonlyArray<string | number> = [argv0, pid, service]
  let next = 0
  return format.replace(/%([%sdiu])/g, (whole, conv: string) => {
    if (conv === "%") return "%"
    const value = args[next++]
    if (value === undefined) return whole
    return conv === "s" ? String(value) : String(Math.trunc(Number(value)))
  })
}

/** Runs the formatted command and waits for it; logs what ran and how it ended. */
export const runDebugCommand = (
  format: string | undefined,
  argv0: string,
  service: string,
  log: (line: string) => void
): Effect.Effect<void> =>
  // node:child_process is loaded here, not by every start of backupd
  Effect.flatMap(Effect.promise(() => import("node:child_process")), ({ spawnSync }) => Effect.sync(() => {
    if (format === undefined || format === "") return
    const command = formatDebugCommand(format, argv0, process.pid, service)
    log(`running external debugger: ${command}`)
    const result = spawnSync("/bin/sh", ["-c", command], { stdio: "inherit" })
    const status = result.error !== undefined ? -1 : result.status ?? -1
    log(`debugger returned exit status: ${status}`)
  }))
