/**
 * The client side of a recorded csync conversation, for the demo. Cyrus's telemetry logs
 * (`<configdirectory>/log/<user>/backupd-<pid>`) interleave records `<time<bytes` (what the
 * client sent) and `>time>bytes` (what the server answered); the client's records, joined,
 * are the exact byte stream to send again. Recordings start after the login, often with
 * `COMPRESS DEFLATE`, which is dropped here so the replay can be sent uncompressed.
 */

import { createHash } from "node:crypto"

/** Client-to-server bytes of a telemetry log (latin1 string, one char per byte). */
export const clientStream = (telemetryLog: string): string => {
  const marker = /([<>])(\d{9,11})\1/g
  const parts: Array<string> = []
  let current: "<" | ">" | undefined
  let from = 0
  for (let m = marker.exec(telemetryLog); m !== null; m = marker.exec(telemetryLog)) {
    if (current === "<") parts.push(telemetryLog.slice(from, m.index))
    current = m[1] as "<" | ">"
    from = m.index + m[0].length
  }
  if (current === "<") parts.push(telemetryLog.slice(from))
  return parts.join("").replace(/^COMPRESS DEFLATE\r\n/i, "")
}

const DEMO_MESSAGE = "Subject: hello\r\nFrom: demo@example.org\r\nTo: demo@example.com\r\n\r\nA demo message.\r\n"

/** A tiny conversation, used when the recorded one is not at hand (an installed package). */
export const builtInConversation = (): string => {
  const guid = createHash("sha1").update(DEMO_MESSAGE, "latin1").digest("hex")
  const size = DEMO_MESSAGE.length
  return [
    `APPLY MESSAGE (%{default ${guid} ${size}}`,
    `${DEMO_MESSAGE})`,
    "APPLY MAILBOX %(UNIQUEID demo-inbox-0001 MBOXNAME user.demo SYNC_CRC 0 SYNC_CRC_ANNOT 0 LAST_UID 1" +
      " HIGHESTMODSEQ 2 RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 1700000000 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0" +
      " XCONVMODSEQ 0 UIDVALIDITY 1700000000 PARTITION default ACL \"demo\tlrswipkxtecdan\t\" OPTIONS P" +
      ` RECORD (%(UID 1 MODSEQ 2 LAST_UPDATED 1700000000 FLAGS () INTERNALDATE 1700000000 SIZE ${size} GUID ${guid})))`,
    "APPLY SUB %(USERID demo MBOXNAME user.demo)",
    "EXIT",
    ""
  ].join("\r\n")
}
