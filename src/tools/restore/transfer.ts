/**
 * Getting the messages to the destination: `APPLY RESERVE` per partition (≤ 8193 GUIDs at a
 * time) so it can link copies it already holds, then `APPLY MESSAGE` with the ones it reported
 * `MISSING` (≤ 1024 per command), each body streamed from its chunk of the backup into a
 * `%{partition guid size}` literal.
 */
import { Effect, Option, Stream } from "effect"
import { astring } from "../../protocol/dlist/astring.js"
import { printItem } from "../../protocol/dlist/print.js"
import { atom, item, kvlist, list, type Dlist, type Item } from "../../protocol/dlist/value.js"
import { BackupCorrupt, byStorageOrder, type BackupReader, type MessageRow, type ReadError } from "../../store/index.js"
import { SyncProtocolError, type SyncError } from "./errors.js"
import type { SyncSession } from "./syncClient.js"

export const RESERVE_BATCH = 8193
export const MESSAGE_BATCH = 1024

const bytes = (s: string) => Buffer.from(s, "latin1")
const scalarOf = (d: Dlist): string | undefined => (d._tag === "Atom" || d._tag === "Buf" ? d.value : undefined)

/** `RESERVE %(PARTITION p MBOXNAME (...) GUID (...))`, as sync_client builds it. */
export const reserveItem = (partition: string, folders: ReadonlyArray<string>, guids: ReadonlyArray<string>): Item =>
  item(
    "RESERVE",
    kvlist([
      ["PARTITION", atom(partition)],
      ["MBOXNAME", list(folders.map(atom))],
      ["GUID", list(guids.map(atom))]
    ])
  )

/** Sends RESERVE for `guids`; returns those the destination lacks. */
export const reserveMissing = (
  session: SyncSession,
  partition: string,
  folders: ReadonlyArray<string>,
  guids: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>, SyncError> =>
  Effect.gen(function*() {
    // nowhere the destination could look: everything must go
    if (folders.length === 0) return guids
    const missing: Array<string> = []
    for (let i = 0; i < guids.length; i += RESERVE_BATCH) {
      const batch = guids.slice(i, i + RESERVE_BATCH)
      const command = reserveItem(partition, folders, batch)
      const answer = yield* session.command("RESERVE", Stream.succeed(Buffer.concat([bytes("APPLY "), printItem(command)])))
      for (const u of answer.untagged) {
        if (u.key !== "MISSING") return yield* new SyncProtocolError({ command: "RESERVE", message: `unexpected answer ${u.key}` })
        if (u.value._tag !== "List") continue
        for (const g of u.value.items) {
          const guid = scalarOf(g)?.toLowerCase()
          if (guid !== undefined && batch.includes(guid)) missing.push(guid)
        }
      }
    }
    return missing
  })

export interface UploadReport {
  readonly messages: number
  readonly bytes: number
  /** GUIDs the backup does not hold (left out). */
  readonly absent: ReadonlyArray<string>
}

/** Uploads `guids` from the backup to `partition` with APPLY MESSAGE. */
export const uploadMessages = (
  session: SyncSession,
  reader: BackupReader,
  partition: string,
  guids: ReadonlyArray<string>,
  log: (line: string) => void,
  /** Called after each message is sent: messages and bytes done of the totals. */
  progress: (done: number, total: number, doneBytes: number, totalBytes: number) => void = () => {}
): Effect.Effect<UploadReport, SyncError | ReadError> =>
  Effect.gen(function*() {
    const rows: Array<{ readonly guid: string; readonly row: MessageRow }> = []
    const absent: Array<string> = []
    for (const guid of guids) {
      const m = yield* reader.messageByGuid(guid)
      if (Option.isNone(m)) absent.push(guid)
      else rows.push({ guid, row: m.value })
    }
    // in the order they are stored, so that every chunk is inflated once (a message's bytes are
    // found by reading its chunk up to it)
    const present = rows.sort((a, b) => byStorageOrder(a.row, b.row)).map((m) => ({ guid: m.guid, size: m.row.size }))
    for (const g of absent) log(`couldn't find message ${g} in the backup`)
    let total = 0
    let sent = 0
    let sentBytes = 0
    const allBytes = present.reduce((sum, m) => sum + m.size, 0)
    const counted = (m: { readonly size: number }) =>
      Stream.fromEffect(
        Effect.sync(() => {
          sent++
          sentBytes += m.size
          progress(sent, present.length, sentBytes, allBytes)
        })
      ).pipe(Stream.drain)
    const sequential = reader.sequentialMessages()
    for (let i = 0; i < present.length; i += MESSAGE_BATCH) {
      const batch = present.slice(i, i + MESSAGE_BATCH)
      const body = Stream.concat(
        Stream.concat(
          Stream.succeed(bytes("APPLY MESSAGE (")),
          Stream.flatMap(Stream.fromIterable(batch.entries()), ([n, m]) =>
            Stream.concat(
              Stream.succeed(bytes(`${n > 0 ? " " : ""}%{${astring(partition)} ${m.guid} ${m.size}}\r\n`)),
              Stream.concat(exactly(sequential.messageBytes(m.guid), m.size, m.guid), counted(m))
            )
          )
        ),
        Stream.succeed(bytes(")"))
      )
      yield* session.command("MESSAGE", body).pipe(Effect.ensuring(sequential.close))
      total += batch.reduce((s, m) => s + m.size, 0)
      log(`uploaded ${Math.min(i + MESSAGE_BATCH, present.length)}/${present.length} messages to partition ${partition}`)
    }
    return { messages: present.length, bytes: total, absent }
  })

/** The message's bytes, failing if they are not exactly the announced size. */
const exactly = <E>(s: Stream.Stream<Uint8Array, E>, size: number, guid: string): Stream.Stream<Uint8Array, E | BackupCorrupt> => {
  let seen = 0
  const check = Stream.fromEffect(
    Effect.suspend(() =>
      seen === size ? Effect.succeed(new Uint8Array(0)) : Effect.fail(new BackupCorrupt({ path: guid, message: `message ${guid}: ${seen} bytes, expected ${size}` }))
    )
  ).pipe(Stream.filter((c) => c.byteLength > 0))
  return Stream.concat(
    s.pipe(Stream.tap((c) => Effect.sync(() => void (seen += c.byteLength)))),
    check
  )
}
