/** The Cyrus return code a failed open of a backup corresponds to (`backup_real_open`). */
import type { OpenError } from "../store/index.js"
import {
  IMAP_INTERNAL,
  IMAP_IOERROR,
  IMAP_MAILBOX_BADFORMAT,
  IMAP_MAILBOX_EXISTS,
  IMAP_MAILBOX_LOCKED,
  IMAP_MAILBOX_NONEXISTENT
} from "./cFormat.js"

export const openErrorCode = (e: OpenError): number => {
  switch (e._tag) {
    case "BackupLocked":
      return IMAP_MAILBOX_LOCKED
    case "BackupNotFound":
      return IMAP_MAILBOX_NONEXISTENT
    case "BackupExists":
      return IMAP_MAILBOX_EXISTS
    case "BackupNeedsReindex":
      return IMAP_MAILBOX_BADFORMAT
    case "BackupIndexError":
      return IMAP_INTERNAL
    case "BackupCorrupt":
    case "BackupIoError":
      return IMAP_IOERROR
  }
}
