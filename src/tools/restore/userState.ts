/**
 * `-S`: what Cyrus's restore leaves behind, sent as sync_client would send it to a replica —
 * `APPLY SUB` for each live subscription, `APPLY SIEVE` for each live script (the line as the
 * backup stored it, read back from its chunk) and `APPLY SEEN` for each seen record.
 *
 * Two things the backup cannot say: which script was active (backupd ignores
 * ACTIVATE_SIEVE), so a lone script is activated and several are left inactive; and the seen
 * state of a mailbox whose UIDs the destination renumbered (restored without `-U`), which is
 * skipped.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Stream } from "effect"
import { ByteReader, byteClass } from "../../protocol/ByteReader.js"
import { parseItem } from "../../protocol/dlist/parse.js"
import { printItem } from "../../protocol/dlist/print.js"
import { atom, item, kvlist, num, type Item } from "../../protocol/dlist/value.js"
import { BackupCorrupt, type BackupReader, type ReadError, type SieveRow } from "../../store/index.js"
import type { SyncError } from "./errors.js"
import type { SyncSession } from "./syncClient.js"

export interface UserStateReport {
  readonly subscriptions: number
  readonly sieveScripts: number
  readonly activated: string | undefined
  readonly seen: number
  readonly seenSkipped: number
}

const SP = byteClass(0x20)

/** The bytes of a stream after its first `n`. */
const dropBytes = <E>(s: Stream.Stream<Uint8Array, E>, n: number): Stream.Stream<Uint8Array, E> =>
  s.pipe(
    Stream.mapAccum(n, (left, chunk): readonly [number, Uint8Array] =>
      left >= chunk.byteLength ? [left - chunk.byteLength, new Uint8Array(0)] : [0, chunk.subarray(left)]
    ),
    Stream.filter((c) => c.byteLength > 0)
  )

/** The `SIEVE %(...)` item a script row points at, re-read from its chunk line. */
export const storedSieveItem = (reader: BackupReader, row: SieveRow): Effect.Effect<Item, ReadError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const bad = (message: string) => new BackupCorrupt({ path: `chunk ${row.chunkId}`, message: `sieve ${row.filename}: ${message}` })
      const r = yield* ByteReader.fromStream(dropBytes(reader.chunkData(row.chunkId), row.offset))
      const fail = () => bad("no APPLY SIEVE line at its offset")
      const ts = yield* r.readToken(SP, 32).pipe(Effect.mapError(fail))
      const word = yield* r.readToken(SP, 16).pipe(Effect.mapError(fail))
      if (!/^[0-9]+$/.test(ts.token) || word.token !== "APPLY") return yield* fail()
      const parsed = yield* parseItem(r, { files: { _tag: "Discard" } }).pipe(
        Effect.provide(NodeFileSystem.layer),
        Effect.mapError((e) => (e instanceof BackupCorrupt ? e : bad(e._tag === "DlistParseError" ? e.message : "unreadable line")))
      )
      if (parsed.item.key.toUpperCase() !== "SIEVE") return yield* fail()
      return item("SIEVE", parsed.item.value)
    })
  )

const apply = (session: SyncSession, label: string, it: Item) =>
  session.command(label, Stream.succeed(Buffer.concat([Buffer.from("APPLY ", "latin1"), printItem(it)])))

export interface UserStateOptions {
  readonly userid: string
  /** Backup uniqueids of mailboxes the destination renumbered (restored without -U). */
  readonly renumbered: ReadonlySet<string>
  readonly log: (line: string) => void
}

export const restoreUserState = (
  session: SyncSession,
  reader: BackupReader,
  o: UserStateOptions
): Effect.Effect<UserStateReport, SyncError | ReadError> =>
  Effect.gen(function*() {
    const userid = atom(o.userid)
    const subs = (yield* reader.subscriptions()).filter((s) => s.unsubscribed === null)
    for (const s of subs) {
      yield* apply(session, "SUB", item("SUB", kvlist([["USERID", userid], ["MBOXNAME", atom(s.mboxname)]])))
    }
    o.log(`${o.userid}: restored ${subs.length} subscriptions`)

    const scripts = (yield* reader.sieve()).filter((s) => s.deleted === null)
    for (const s of scripts) yield* apply(session, "SIEVE", yield* storedSieveItem(reader, s))
    let activated: string | undefined
    if (scripts.length === 1 && scripts[0]!.filename.endsWith(".script")) {
      // the replica activates by bytecode name: <name>.bc
      activated = scripts[0]!.filename.slice(0, -".script".length)
      yield* apply(session, "ACTIVATE_SIEVE", item("ACTIVATE_SIEVE", kvlist([["USERID", userid], ["FILENAME", atom(`${activated}.bc`)]])))
    } else if (scripts.length > 1) {
      o.log(`${o.userid}: ${scripts.length} sieve scripts restored; the backup does not record which was active, none activated`)
    }

    let seen = 0
    let seenSkipped = 0
    for (const r of yield* reader.seen()) {
      if (o.renumbered.has(r.uniqueid)) {
        seenSkipped++
        o.log(`${o.userid}: seen state for ${r.uniqueid} not restored: its UIDs were renumbered (restore with -U to keep them)`)
        continue
      }
      yield* apply(
        session,
        "SEEN",
        item(
          "SEEN",
          kvlist([
            ["USERID", userid],
            ["UNIQUEID", atom(r.uniqueid)],
            ["LASTREAD", num(r.lastread)],
            ["LASTUID", num(r.lastuid)],
            ["LASTCHANGE", num(r.lastchange)],
            ["SEENUIDS", atom(r.seenuids)]
          ])
        )
      )
      seen++
    }
    return { subscriptions: subs.length, sieveScripts: scripts.length, activated, seen, seenSkipped }
  })
