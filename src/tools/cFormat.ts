/**
 * How Cyrus's C tools print things, reproduced for byte-identical output: strftime
 * "%F %T" in local time, printf "%6.1f", jansson's "%.17g" reals, and com_err's
 * `error_message()` texts for the codes the backup tools can return.
 */

const pad2 = (n: number) => String(n).padStart(2, "0")

/** strftime("%F %T", localtime(t)); the zone comes from $TZ as for C. */
export const localTime = (unixSeconds: number): string => {
  const d = new Date(unixSeconds * 1000)
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
}

/** printf("%.1f"): like toFixed(1) but exact ties round to even, as glibc does. */
export const fixed1 = (x: number): string => {
  if (Number.isNaN(x)) return "-nan"
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf"
  // a tie at one decimal is only possible for exact quarters (k + .25 / .75)
  if (Number.isInteger(x * 4) && !Number.isInteger(x * 2)) {
    const tenths = x * 10 // exact: k.5
    const down = Math.floor(tenths)
    const even = down % 2 === 0 ? down : down + 1
    return (even / 10).toFixed(1)
  }
  return x.toFixed(1)
}

/** printf("%6.1f"). */
export const fixed6_1 = (x: number): string => fixed1(x).padStart(6)

/** printf("%.17g"). */
export const g17 = (x: number): string => {
  if (Number.isNaN(x)) return "-nan"
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf"
  if (x === 0) return Object.is(x, -0) ? "-0" : "0"
  const [mant, expText] = x.toExponential(16).split("e") as [string, string]
  const exp = Number(expText)
  const strip = (s: string) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s)
  if (exp < -4 || exp >= 17) {
    const e = Math.abs(exp)
    return `${strip(mant)}e${exp < 0 ? "-" : "+"}${e < 10 ? "0" : ""}${e}`
  }
  return strip(x.toFixed(16 - exp))
}

/** How jansson prints a real (precision 17): always with a dot or exponent, no '+' or leading zeros in it. */
export const janssonReal = (x: number): string => {
  let s = g17(x)
  if (!s.includes(".") && !s.includes("e")) s += ".0"
  return s.replace(/e([+-]?)0*(\d)/, (_m, sign: string, d: string) => `e${sign === "-" ? "-" : ""}${d}`)
}

/** glibc strerror() for the small positive codes a failed checksum comparison can yield. */
const STRERROR: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  4: "Interrupted system call",
  5: "Input/output error",
  6: "No such device or address",
  7: "Argument list too long",
  8: "Exec format error",
  9: "Bad file descriptor",
  10: "No child processes",
  11: "Resource temporarily unavailable",
  12: "Cannot allocate memory",
  13: "Permission denied",
  14: "Bad address",
  15: "Block device required",
  16: "Device or resource busy",
  17: "File exists",
  18: "Invalid cross-device link",
  19: "No such device",
  20: "Not a directory",
  21: "Is a directory",
  22: "Invalid argument",
  23: "Too many open files in system",
  24: "Too many open files",
  25: "Inappropriate ioctl for device",
  26: "Text file busy",
  27: "File too large",
  28: "No space left on device",
  29: "Illegal seek",
  30: "Read-only file system",
  31: "Too many links",
  32: "Broken pipe",
  33: "Numerical argument out of domain",
  34: "Numerical result out of range",
  35: "Resource deadlock avoided",
  36: "File name too long",
  37: "No locks available",
  38: "Function not implemented",
  39: "Directory not empty",
  40: "Too many levels of symbolic links",
  41: "Unknown error 41",
  42: "No message of desired type",
  43: "Identifier removed",
  44: "Channel number out of range",
  45: "Level 2 not synchronized",
  46: "Level 3 halted",
  47: "Level 3 reset",
  48: "Link number out of range",
  49: "Protocol driver not attached",
  50: "No CSI structure available",
  51: "Level 2 halted",
  52: "Invalid exchange",
  53: "Invalid request descriptor",
  54: "Exchange full",
  55: "No anode",
  56: "Invalid request code",
  57: "Invalid slot",
  58: "Unknown error 58",
  59: "Bad font file format",
  60: "Device not a stream",
}

/**
 * Cyrus error codes (imap_err.et) the backup tools report, and their texts. The values are
 * only identifiers here (never printed); they sit outside com_err's small-code range.
 */
export const IMAP_IOERROR = -1904553982
export const IMAP_INTERNAL = -1904553984
export const IMAP_NOTFOUND = -1904553965
export const IMAP_MAILBOX_BADFORMAT = -1904553955
export const IMAP_MAILBOX_NONEXISTENT = -1904553954
export const IMAP_MAILBOX_EXISTS = -1904553953
export const IMAP_MAILBOX_LOCKED = -1904553951
export const IMAP_PARTITION_UNKNOWN = -1904553949
/** cyrusdb's "not found" (CYRUSDB_NOTFOUND), as cyr_backup passes it on. */
export const CYRUSDB_NOTFOUND = -5

const IMAP_TEXTS = new Map<number, string>([
  [IMAP_IOERROR, "System I/O error"],
  [IMAP_INTERNAL, "Internal Error"],
  [IMAP_NOTFOUND, "Item does not exist"],
  [IMAP_MAILBOX_BADFORMAT, "Mailbox has an invalid format"],
  [IMAP_MAILBOX_NONEXISTENT, "Mailbox does not exist"],
  [IMAP_MAILBOX_EXISTS, "Mailbox already exists"],
  [IMAP_MAILBOX_LOCKED, "Mailbox is locked"],
  [IMAP_PARTITION_UNKNOWN, "Unknown/invalid partition"]
])

/** com_err's error_message(code) for the codes above, small errnos and Cyrus's bare negative returns. */
export const errorMessage = (code: number): string => {
  const known = IMAP_TEXTS.get(code)
  if (known !== undefined) return known
  if (code > 0 && code < 256) return STRERROR[code] ?? `Unknown error ${code}`
  if (code < 0 && code > -256) return `Unknown code ____ ${256 + code}`
  return `Unknown code ${code}`
}

/** strncmp's result as glibc returns it: the difference of the first differing bytes. */
export const strncmpCode = (a: string, b: string): number => {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = i < a.length ? a.charCodeAt(i) : 0
    const y = i < b.length ? b.charCodeAt(i) : 0
    if (x !== y) return x - y
  }
  return 0
}
