/** A planned mailbox as the `MAILBOX` item restore sends (`RESTORE MAILBOX %(...)`). */
import { Effect } from "effect"
import { item, type Item } from "../../protocol/dlist/value.js"
import { mailboxDlist } from "../../store/index.js"
import type { PlannedMailbox } from "./plan.js"

/** `MAILBOX %(...)` (or `LOCAL_MAILBOX` for `-L`), always with its records. */
export const mailboxItem = (mb: PlannedMailbox, key: "MAILBOX" | "LOCAL_MAILBOX" = "MAILBOX"): Effect.Effect<Item> =>
  Effect.map(mailboxDlist(mb, mb.records), (value) => item(key, value))
