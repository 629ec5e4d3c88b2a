/**
 * Reading a backup: index queries (mailboxes, records, messages, seen, subscriptions, sieve,
 * chunks) and message bytes streamed out of their chunk. A reader works through a held lock;
 * `openForRead` takes it like Cyrus's tools do, and the writer exposes one on its own lock.
 */
import { Effect, Option, type Scope, Stream } from "effect"
import { BackupCorrupt, type BackupIndexError, type OpenError } from "../errors.js"
import { indexQueries } from "../index/queries.js"
import type { ChunkRow, MailboxRow, MessageRow, RecordRow, SeenRow, SieveRow, SubscriptionRow } from "../index/rows.js"
import { inflateMember } from "../format/memberReader.js"
import { openBackup, type BackupFiles } from "../openBackup.js"
import { ChunkCursor, cursorCanReach, NotInRestOfLine, scanMessage, scanMessageAt } from "./messageScan.js"

export interface MailboxWithRecords extends MailboxRow {
  readonly records: ReadonlyArray<RecordRow>
}

export type ReadError = BackupIndexError | BackupCorrupt

export interface BackupReader {
  readonly mailboxes: (opts?: { readonly withRecords?: boolean }) => Effect.Effect<ReadonlyArray<MailboxWithRecords>, ReadError>
  /** The last row with this name (as Cyrus), deleted or not. */
  readonly mailboxByName: (mboxname: string, opts?: { readonly withRecords?: boolean }) => Effect.Effect<Option.Option<MailboxWithRecords>, ReadError>
  /** The live (not deleted) rows with this name, in row order: the ones an APPLY RENAME moves. */
  readonly liveMailboxesByName: (mboxname: string) => Effect.Effect<ReadonlyArray<MailboxRow>, ReadError>
  readonly mailboxByUniqueid: (uniqueid: string, opts?: { readonly withRecords?: boolean }) => Effect.Effect<Option.Option<MailboxWithRecords>, ReadError>
  /** Records of a mailbox, in UID order. */
  readonly records: (mailboxId: number) => Effect.Effect<ReadonlyArray<RecordRow>, ReadError>
  readonly messages: () => Effect.Effect<ReadonlyArray<MessageRow>, ReadError>
  readonly messageByGuid: (guid: string) => Effect.Effect<Option.Option<MessageRow>, ReadError>
  /** The message's bytes, streamed from its chunk (nothing else of the file is inflated). */
  readonly messageBytes: (guid: string) => Stream.Stream<Uint8Array, ReadError>
  /**
   * A reader of many messages' bytes that inflates each chunk once when they are asked for in
   * the order they are stored (`byStorageOrder`): it keeps the inflated chunk open at the end
   * of the last message, and moves on from there; a message before that point starts its chunk
   * again. Each stream must be run to its end before the next one starts; `close` ends the
   * open chunk.
   */
  readonly sequentialMessages: () => SequentialMessages
  /** A chunk's uncompressed data, streamed. */
  readonly chunkData: (chunkId: number) => Stream.Stream<Uint8Array, ReadError>
  readonly seen: () => Effect.Effect<ReadonlyArray<SeenRow>, ReadError>
  readonly subscriptions: () => Effect.Effect<ReadonlyArray<SubscriptionRow>, ReadError>
  readonly sieve: () => Effect.Effect<ReadonlyArray<SieveRow>, ReadError>
  readonly chunks: () => Effect.Effect<ReadonlyArray<ChunkRow>, ReadError>
}

export interface SequentialMessages {
  readonly messageBytes: (guid: string) => Stream.Stream<Uint8Array, ReadError>
  readonly close: Effect.Effect<void>
}

/** Messages in the order of the data file: by chunk, line, then place in the line (row id). */
export const byStorageOrder = (a: MessageRow, b: MessageRow): number =>
  a.chunkId - b.chunkId || (a.offset ?? 0) - (b.offset ?? 0) || a.id - b.id

/** A reader over an opened backup (its locked data file and open index). */
export const makeReader = ({ file, sql, indexPath }: BackupFiles): BackupReader => {
  const q = indexQueries(sql, indexPath)

  const withRecords = (rows: ReadonlyArray<MailboxRow>, want: boolean | undefined) =>
    Effect.forEach(rows, (m) => (want ? Effect.map(q.records(m.id), (rs) => ({ ...m, records: rs })) : Effect.succeed({ ...m, records: [] })))

  const oneMailbox = (found: Effect.Effect<MailboxRow | undefined, BackupIndexError>, want: boolean | undefined) =>
    Effect.flatMap(found, (m) =>
      m === undefined ? Effect.succeed(Option.none()) : Effect.map(withRecords([m], want), (xs) => Option.some(xs[0]!))
    )

  const messageByGuid = (guid: string) => Effect.map(q.messageByGuid(guid), Option.fromNullable)

  /** Where the member of `chunkId` starts and the next one begins (if any). */
  const memberRange = (chunkId: number) =>
    Effect.flatMap(q.memberRange(chunkId), (range) =>
      range === undefined ? Effect.fail(new BackupCorrupt({ path: file.path, message: `no chunk ${chunkId}` })) : Effect.succeed(range)
    )

  const streamOf = (make: () => AsyncIterable<Buffer>) =>
    Stream.fromAsyncIterable(make(), (e) => new BackupCorrupt({ path: file.path, message: (e as Error).message ?? String(e) }))

  const chunkData = (chunkId: number): Stream.Stream<Uint8Array, ReadError> =>
    Stream.unwrap(
      Effect.map(memberRange(chunkId), ({ offset, next }) =>
        streamOf(() => ({ [Symbol.asyncIterator]: () => inflateMember(file.fd, offset, next) }))
      )
    )

  const messageBytes = (guid: string): Stream.Stream<Uint8Array, ReadError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const msg = yield* messageByGuid(guid)
        if (Option.isNone(msg)) return yield* Effect.fail(new BackupCorrupt({ path: file.path, message: `no message ${guid}` }))
        const { offset, next } = yield* memberRange(msg.value.chunkId)
        return streamOf(() => scanMessage(inflateMember(file.fd, offset, next), msg.value.offset ?? 0, guid))
      })
    )

  const sequentialMessages = (): SequentialMessages => {
    let open: { readonly chunkId: number; readonly cursor: ChunkCursor } | undefined
    const closeOpen = async () => {
      const o = open
      open = undefined
      await o?.cursor.close()
    }
    const messageBytes = (guid: string): Stream.Stream<Uint8Array, ReadError> =>
      Stream.unwrap(
        Effect.gen(function*() {
          const msg = yield* messageByGuid(guid)
          if (Option.isNone(msg)) return yield* Effect.fail(new BackupCorrupt({ path: file.path, message: `no message ${guid}` }))
          const { chunkId } = msg.value
          const lineOffset = msg.value.offset ?? 0
          const { offset, next } = yield* memberRange(chunkId)
          const fresh = async () => {
            await closeOpen()
            const o = { chunkId, cursor: new ChunkCursor(inflateMember(file.fd, offset, next)) }
            open = o
            return o.cursor
          }
          async function* scan(): AsyncGenerator<Buffer> {
            const reuse = open !== undefined && open.chunkId === chunkId && cursorCanReach(open.cursor, lineOffset)
            const cursor = reuse ? open!.cursor : await fresh()
            try {
              yield* scanMessageAt(cursor, lineOffset, guid)
            } catch (e) {
              // an earlier message of the line than the cursor's: from the chunk's start again
              if (!(e instanceof NotInRestOfLine)) {
                await closeOpen()
                throw e
              }
              yield* scanMessageAt(await fresh(), lineOffset, guid)
            }
          }
          return streamOf(() => ({ [Symbol.asyncIterator]: scan }))
        })
      )
    return { messageBytes, close: Effect.tryPromise(closeOpen).pipe(Effect.ignore) }
  }

  return {
    sequentialMessages,
    mailboxes: (opts) => Effect.flatMap(q.mailboxes, (rows) => withRecords(rows, opts?.withRecords)),
    mailboxByName: (name, opts) => oneMailbox(q.mailboxByName(name), opts?.withRecords),
    liveMailboxesByName: q.liveMailboxesByName,
    mailboxByUniqueid: (uniqueid, opts) => oneMailbox(q.mailboxByUniqueid(uniqueid), opts?.withRecords),
    records: q.records,
    messages: () => q.messages,
    messageByGuid,
    messageBytes,
    chunkData,
    seen: () => q.seen,
    subscriptions: () => q.subscriptions,
    sieve: () => q.sieve,
    chunks: () => q.chunks
  }
}

export interface OpenForReadOptions {
  /** Wait for the lock (cyr_backup) instead of failing at once (restore, ctl_backups). */
  readonly wait?: boolean
}

/** Locks the data file and opens its index for reading, for the lifetime of the scope. */
export const openForRead = (dataPath: string, options: OpenForReadOptions = {}): Effect.Effect<BackupReader, OpenError, Scope.Scope> =>
  Effect.map(openBackup(dataPath, { wait: options.wait ?? false }), makeReader)
