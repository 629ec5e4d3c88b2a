/**
 * The data-file lines that record an `APPLY RENAME`: the RENAME line itself and, for each live
 * mailbox it moves, a MAILBOX line with that mailbox's state under its new name (no records).
 *
 * Why: the index keeps, per mailbox, the chunk whose MAILBOX line describes it
 * (`last_chunk_id`), and both verifies (Cyrus's `verify_chunk_mailbox_links` and ours) look
 * for a MAILBOX line of that uniqueid in that chunk matching the row: name, partition,
 * uidvalidity included. A RENAME changes those three in the row but, as in Cyrus, not
 * `last_chunk_id` (it is no MAILBOX line). When the sync then ends before sync_client sends the
 * renamed mailbox's MAILBOX (a dropped connection, a failed APPLY; sync_client may also send
 * none at all), the chunk still describes the old name and both verifies fail. Written in the
 * same unit as the RENAME, the MAILBOX line moves `last_chunk_id` to a chunk that describes
 * the new name, so the backup verifies wherever the sync stops. It is a line any Cyrus tool
 * reads as it reads sync_client's: reindex upserts the row by uniqueid with the same values,
 * and an empty RECORD list leaves the records (and their chunks) alone.
 */
import { Effect } from "effect"
import { item, type Item } from "../../protocol/dlist/value.js"
import type { MailboxRow } from "../index/rows.js"
import type { BackupReader, ReadError } from "../read/BackupReader.js"
import { getAtom, getNum32 } from "../format/dlistFields.js"
import { mailboxDlist } from "../read/mailboxDlist.js"
import { upperAscii } from "../format/dlistText.js"

/** A row whose fields a MAILBOX line must carry (Cyrus's indexer refuses one without them). */
const describable = (m: MailboxRow): boolean => m.partition !== null && m.acl !== null && m.options !== null

/** `[RENAME, MAILBOX…]`, one MAILBOX line per live mailbox the rename moves (usually one). */
export const renameLines = (reader: BackupReader, rename: Item): Effect.Effect<ReadonlyArray<Item>, ReadError> =>
  Effect.gen(function*() {
    const d = rename.value
    const oldName = getAtom(d, "OLDMBOXNAME")
    const newName = getAtom(d, "NEWMBOXNAME")
    const partition = getAtom(d, "PARTITION")
    const uidvalidity = getNum32(d, "UIDVALIDITY")
    // An incomplete RENAME is refused by the indexer; there is nothing to describe.
    if (upperAscii(rename.key) !== "RENAME" || oldName === undefined || newName === undefined || partition === undefined || uidvalidity === undefined) {
      return [rename]
    }
    const moved = (yield* reader.liveMailboxesByName(oldName)).filter(describable)
    const lines = yield* Effect.forEach(moved, (m) =>
      // records: [] prints `RECORD ()`, which the indexers require and which changes no record
      Effect.map(mailboxDlist({ ...m, mboxname: newName, partition, uidvalidity }, []), (value) => item("MAILBOX", value))
    )
    return [rename, ...lines]
  })
