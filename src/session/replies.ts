/**
 * Every line backupd sends that is not data, exactly as Cyrus 3.6.1's backupd words it
 * (docs/architecture.md, "csync as backupd speaks it"). Replies are untagged; each ends with CRLF when written.
 */

/** Command words as Cyrus normalises them (first letter upper case, rest lower case). */
export type CommandName = "Authenticate" | "Apply" | "Compress" | "Exit" | "Get" | "Noop" | "Restart" | "Starttls"

export const Reply = {
  nullCommand: "BAD Null command",
  unrecognized: "BAD IMAP_PROTOCOL_ERROR Unrecognized command",
  authenticateFirst: "NO Please authenticate first",
  permissionDenied: "NO Permission denied",
  missingArgument: (cmd: CommandName) => `BAD Missing required argument to ${cmd}`,
  extraArguments: (cmd: CommandName) => `BAD Unexpected extra arguments to ${cmd}`,
  invalidMechanism: "BAD Invalid mechanism",
  alreadyAuthenticated: "BAD Already authenticated",
  clientCanceled: "BAD Client canceled authentication",
  readingResponse: (text: string) => `NO Error reading client response: ${text}`,
  authSuccess: (protection: string) => `OK Success (${protection})`,
  compressActive: (alg: string) => `OK ${alg} active`,
  compressAlready: (alg: string) => `NO Compression already active: ${alg}`,
  compressUnknown: (alg: string) => `NO Unknown compression algorithm: ${alg}`,
  noop: "OK Noop completed",
  restart: "OK Restarting",
  exit: "OK Finished",
  starttlsBegin: "OK Begin TLS negotiation now",
  starttlsAgain: "NO Already successfully executed STARTTLS",
  starttlsInitFailed: "NO Error initializing TLS",
  starttlsFailed: "NO Starttls failed",
  success: "OK Success",
  fatal: (text: string) => `* Fatal error: ${text}`
} as const

/** The final line of an APPLY or GET, by outcome (docs/architecture.md, "APPLY and GET"). */
export const ApplyReply = {
  success: "OK Success",
  mailboxLocked: "NO IMAP_MAILBOX_LOCKED Mailbox locked",
  mailboxNonexistent: "NO IMAP_MAILBOX_NONEXISTENT No Such Mailbox",
  protocolError: "NO IMAP_PROTOCOL_ERROR Protocol error",
  badParameters: "NO IMAP_PROTOCOL_BAD_PARAMETERS Bad parameters",
  unknown: "NO Unknown error"
} as const
