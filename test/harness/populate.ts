/**
 * Builds deterministic user state on a SOURCE instance (and changes it for
 * incremental syncs): users created by the admin, nested folders, ACLs,
 * subscriptions, mail via LMTP, flags, expunges, another user's seen state and
 * an active sieve script.
 */
import { Effect } from "effect"
import { imapSession } from "./imap.js"
import { ADMIN_PASSWORD, ADMIN_USER, type SourceInstance, USER_PASSWORD } from "./instances.js"
import { deliver, type Delivery, type DeliveryReport } from "./lmtp.js"
import { makeMessage, type MessageOptions, recipientFor, SeededStream } from "./mail.js"
import { putActiveSieveScript } from "./managesieve.js"
import type { ProtocolError } from "./Wire.js"

/** Every user's folders (IMAP names as the owner sees them) with relative delivery weights. */
export const FOLDERS: ReadonlyArray<readonly [string, number]> = [
  ["INBOX", 40],
  ["INBOX.Work", 12],
  ["INBOX.Work.Projects", 8],
  ["INBOX.Work.Projects.2024", 5],
  ["INBOX.Lists", 6],
  ["INBOX.Lists.cyrus-devel", 10],
  ["INBOX.Archive", 10],
  ["INBOX.Sent", 6],
  ["INBOX.Trash", 3]
]
export const SUBSCRIBED: ReadonlyArray<string> = [
  "INBOX",
  "INBOX.Work",
  "INBOX.Work.Projects",
  "INBOX.Lists.cyrus-devel",
  "INBOX.Sent"
]
const KEYWORDS = ["$Label1", "ProjectX", "$Junk", "Important"]

export const SIEVE_SCRIPT_NAME = "harness"
export const SIEVE_SCRIPT = [
  "require [\"fileinto\", \"imap4flags\"];",
  "# interop harness test script",
  "if header :contains \"subject\" \"[cyrus-devel]\" {",
  "    fileinto \"INBOX.Lists.cyrus-devel\";",
  "    stop;",
  "}",
  "if header :contains \"from\" \"boss@example.com\" {",
  "    addflag \"\\\\Flagged\";",
  "}",
  ""
].join("\r\n")

export interface PopulateOptions extends MessageOptions {
  /** Messages in total, round-robin over the users (default 30). */
  readonly messages?: number
  readonly seed?: number
  /** Upload and activate a sieve script for the first user (default true). */
  readonly sieve?: boolean
}

export interface PopulateReport {
  readonly delivery: DeliveryReport
  /** uids expunged per "user folder" */
  readonly expunged: number
  readonly sieve: ReadonlyArray<string>
}

/** The admin-namespace name of a user's folder: INBOX.Work of alice → user.alice.Work. */
export const adminName = (user: string, folder: string): string => `user.${user}${folder.slice("INBOX".length)}`

/** LMTP deliveries of `count` deterministic messages spread over users and weighted folders. */
export const makeDeliveries = (
  rng: SeededStream,
  users: ReadonlyArray<string>,
  count: number,
  opts: MessageOptions & { firstIndex?: number; tag?: string; folders?: ReadonlyArray<readonly [string, number]> } = {}
): ReadonlyArray<Delivery> =>
  Array.from({ length: count }, (_, i) => {
    const user = users[i % users.length]!
    const folder = rng.weighted(opts.folders ?? FOLDERS)
    const spec = { index: (opts.firstIndex ?? 0) + i, user, folder, ...(opts.tag === undefined ? {} : { tag: opts.tag }) }
    return { recipient: recipientFor(user, folder), message: makeMessage(rng, spec, opts) }
  })

const failOnRefused = (report: DeliveryReport) =>
  report.refused.length === 0
    ? Effect.succeed(report)
    : Effect.dieMessage(`LMTP refused ${report.refused.length} deliveries: ${JSON.stringify(report.refused.slice(0, 3))}`)

/**
 * Fresh-source population (it CREATEs the users, so run it once):
 * folders with `anyone p` (for user+folder delivery) and 5 subscriptions each;
 * mail; \Seen ~60%, \Flagged 10%, \Answered 5%, keywords 10%, \Deleted ~5% then
 * EXPUNGE (at least one per user); the second user reads the first user's
 * INBOX.Archive (shared to it) so a non-owner seen state exists; an active
 * sieve script for the first user.
 */
export const populate = (
  source: SourceInstance,
  opts: PopulateOptions = {}
): Effect.Effect<PopulateReport, ProtocolError> =>
  Effect.gen(function*() {
    const users = source.users
    const rng = new SeededStream(opts.seed ?? 42)
    yield* Effect.scoped(
      Effect.gen(function*() {
        const admin = yield* imapSession(source.imapPort, ADMIN_USER, ADMIN_PASSWORD)
        for (const u of users) yield* admin.create(`user.${u}`)
      })
    )
    for (const u of users) {
      yield* Effect.scoped(
        Effect.gen(function*() {
          const imap = yield* imapSession(source.imapPort, u, USER_PASSWORD)
          for (const [folder] of FOLDERS.slice(1)) {
            yield* imap.create(folder)
            yield* imap.setAcl(folder, "anyone", "p")
          }
          for (const folder of SUBSCRIBED) yield* imap.subscribe(folder)
        })
      )
    }
    const delivery = yield* deliver(source.lmtpPort, makeDeliveries(rng, users, opts.messages ?? 30, opts)).pipe(
      Effect.flatMap(failOnRefused)
    )
    let expunged = 0
    for (const u of users) {
      expunged += yield* Effect.scoped(
        Effect.gen(function*() {
          const imap = yield* imapSession(source.imapPort, u, USER_PASSWORD)
          let deletedForUser = 0
          for (const [folder] of FOLDERS) {
            yield* imap.select(folder)
            const uids = yield* imap.uids
            const pick = (p: number) => uids.filter(() => rng.next() < p)
            yield* imap.store(pick(0.6), "+", ["\\Seen"])
            yield* imap.store(pick(0.1), "+", ["\\Flagged"])
            yield* imap.store(pick(0.05), "+", ["\\Answered"])
            for (const k of KEYWORDS) yield* imap.store(pick(0.03), "+", [k])
            let deleted = pick(0.05)
            if (deletedForUser === 0 && deleted.length === 0 && folder === "INBOX" && uids.length > 1) {
              deleted = [uids[0]!]
            }
            yield* imap.store(deleted, "+", ["\\Deleted"])
            yield* imap.expunge
            deletedForUser += deleted.length
            yield* imap.close
          }
          return deletedForUser
        })
      )
    }
    if (users.length >= 2) {
      const [owner, reader] = [users[0]!, users[1]!]
      yield* Effect.scoped(
        Effect.gen(function*() {
          const imap = yield* imapSession(source.imapPort, owner, USER_PASSWORD)
          yield* imap.setAcl("INBOX.Archive", reader, "lrs")
        })
      )
      yield* Effect.scoped(
        Effect.gen(function*() {
          const imap = yield* imapSession(source.imapPort, reader, USER_PASSWORD)
          const shared = adminName(owner, "INBOX.Archive")
          yield* imap.select(shared)
          const uids = yield* imap.uids
          yield* imap.store(uids.slice(0, Math.ceil(uids.length / 2)), "+", ["\\Seen"])
          yield* imap.close
        })
      )
    }
    const sieve = opts.sieve === false || users.length === 0
      ? []
      : yield* putActiveSieveScript(source.sievePort, users[0]!, USER_PASSWORD, SIEVE_SCRIPT_NAME, SIEVE_SCRIPT)
    return { delivery, expunged, sieve }
  })

export interface MutateOptions extends MessageOptions {
  /** More messages, round-robin (default 10). */
  readonly messages?: number
  readonly seed?: number
}

/**
 * Changes for an incremental sync, per user: more mail (the first user's
 * passes through its sieve script), \Seen removed and keywords `Changed
 * $Label2` added on some INBOX messages, one expunge, RENAME INBOX.Lists →
 * INBOX.Mailinglists (with its child), DELETE INBOX.Trash, UNSUBSCRIBE
 * INBOX.Sent, SUBSCRIBE INBOX.Archive.
 */
export const mutate = (source: SourceInstance, opts: MutateOptions = {}): Effect.Effect<DeliveryReport, ProtocolError> =>
  Effect.gen(function*() {
    const rng = new SeededStream(opts.seed ?? 43)
    const delivery = yield* deliver(
      source.lmtpPort,
      makeDeliveries(rng, source.users, opts.messages ?? 10, {
        ...opts,
        firstIndex: 100_000,
        tag: "inc",
        folders: FOLDERS.slice(0, 6)
      })
    ).pipe(Effect.flatMap(failOnRefused))
    for (const u of source.users) {
      yield* Effect.scoped(
        Effect.gen(function*() {
          const imap = yield* imapSession(source.imapPort, u, USER_PASSWORD)
          yield* imap.select("INBOX")
          const uids = yield* imap.uids
          const pick = uids.filter(() => rng.next() < 0.2)
          if (pick.length > 0) {
            yield* imap.store(pick.slice(0, Math.max(1, pick.length >> 1)), "-", ["\\Seen"])
            yield* imap.store(pick, "+", ["Changed", "$Label2"])
            yield* imap.store([pick[pick.length - 1]!], "+", ["\\Deleted"])
            yield* imap.expunge
          }
          yield* imap.close
          yield* imap.rename("INBOX.Lists", "INBOX.Mailinglists")
          yield* imap.delete("INBOX.Trash")
          yield* imap.unsubscribe("INBOX.Sent")
          yield* imap.subscribe("INBOX.Archive")
        })
      )
    }
    return delivery
  })
