/**
 * A minimal IMAP4rev1 client: enough to build and inspect test state
 * (CREATE/DELETE/RENAME/SETACL/SUBSCRIBE, SELECT, STORE, EXPUNGE, LIST/LSUB,
 * UID SEARCH/FETCH). Mailbox names use the admin-namespace form with '.'
 * separators (altnamespace off), e.g. INBOX.Work or user.alice.Work.
 */
import { createHash } from "node:crypto"
import { Effect, Scope } from "effect"
import { withLiveClock } from "./cyrus.js"
import { openWire, ProtocolError, type Wire } from "./Wire.js"

/** One untagged response; literal payloads are kept apart, in order. */
export interface ImapResponse {
  /** The response text with each literal left as its `{n}` marker. */
  readonly text: string
  readonly literals: ReadonlyArray<string>
}

export interface ImapResult {
  readonly status: "OK" | "NO" | "BAD"
  readonly text: string
  readonly untagged: ReadonlyArray<ImapResponse>
}

/** A quoted IMAP string. */
export const quote = (s: string): string => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`

export interface ImapClient {
  /** Sends a command; resolves with its result whatever the status. */
  readonly run: (command: string) => Effect.Effect<ImapResult, ProtocolError>
  /** Sends a command; fails unless the status is OK. */
  readonly ok: (command: string) => Effect.Effect<ImapResult, ProtocolError>
  readonly create: (mailbox: string) => Effect.Effect<void, ProtocolError>
  readonly delete: (mailbox: string) => Effect.Effect<void, ProtocolError>
  readonly rename: (from: string, to: string) => Effect.Effect<void, ProtocolError>
  readonly setAcl: (mailbox: string, identifier: string, rights: string) => Effect.Effect<void, ProtocolError>
  readonly subscribe: (mailbox: string) => Effect.Effect<void, ProtocolError>
  readonly unsubscribe: (mailbox: string) => Effect.Effect<void, ProtocolError>
  /** Selects read-write (EXAMINE when readOnly); returns the untagged responses. */
  readonly select: (mailbox: string, readOnly?: boolean) => Effect.Effect<ImapResult, ProtocolError>
  readonly uids: Effect.Effect<ReadonlyArray<number>, ProtocolError>
  /** UID STORE <set> <+FLAGS.SILENT|-FLAGS.SILENT|FLAGS.SILENT> (<flags>) */
  readonly store: (
    uids: ReadonlyArray<number>,
    mode: "+" | "-" | "",
    flags: ReadonlyArray<string>
  ) => Effect.Effect<void, ProtocolError>
  readonly expunge: Effect.Effect<void, ProtocolError>
  readonly close: Effect.Effect<void, ProtocolError>
  readonly list: (pattern?: string) => Effect.Effect<ReadonlyArray<string>, ProtocolError>
  readonly lsub: (pattern?: string) => Effect.Effect<ReadonlyArray<string>, ProtocolError>
  /** The ACL of a mailbox as `identifier rights` pairs, sorted. */
  readonly getAcl: (mailbox: string) => Effect.Effect<ReadonlyArray<string>, ProtocolError>
  /** After SELECT: uid → flags (without \Recent, sorted) and RFC822.SIZE. */
  readonly fetchFlags: Effect.Effect<ReadonlyMap<number, { flags: ReadonlyArray<string>; size: number }>, ProtocolError>
  /** After SELECT: uid → raw message (BODY.PEEK[]), latin1. */
  readonly fetchBodies: (uids: ReadonlyArray<number>) => Effect.Effect<ReadonlyMap<number, string>, ProtocolError>
}

const readResponseLine = (wire: Wire): Effect.Effect<ImapResponse, ProtocolError> =>
  Effect.gen(function*() {
    let text = ""
    const literals: Array<string> = []
    for (;;) {
      const line = yield* wire.readLine
      text += line
      const m = /\{(\d+)\}$/.exec(line)
      if (m === null) return { text, literals }
      literals.push(yield* wire.readBytes(Number(m[1])))
    }
  })

const parseMailboxNames = (untagged: ReadonlyArray<ImapResponse>, kind: "LIST" | "LSUB"): ReadonlyArray<string> =>
  untagged.flatMap((r) => {
    const m = new RegExp(`^\\* ${kind} \\([^)]*\\) (?:"(?:[^"\\\\]|\\\\.)*"|NIL) (.*)$`).exec(r.text)
    if (m === null) return []
    const raw = m[1]!
    if (/^\{\d+\}$/.test(raw)) return [r.literals[0] ?? ""]
    return [raw.startsWith("\"") ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw]
  }).sort()

const uidSet = (uids: ReadonlyArray<number>): string => uids.join(",")

/**
 * Opens an IMAP session logged in as `user` (LOGIN: plaintext is allowed on
 * the test instances); logs out and closes when the scope closes.
 */
export const imapSession = (
  port: number,
  user: string,
  password: string
): Effect.Effect<ImapClient, ProtocolError, Scope.Scope> =>
  Effect.gen(function*() {
    const wire = yield* openWire(port, "imap")
    const greeting = yield* wire.readLine
    if (!greeting.startsWith("* OK")) {
      return yield* new ProtocolError({ protocol: "imap", command: "greeting", reply: greeting })
    }
    let counter = 0
    const run = (command: string): Effect.Effect<ImapResult, ProtocolError> =>
      Effect.gen(function*() {
        const tag = `T${++counter}`
        yield* wire.write(`${tag} ${command}\r\n`)
        const untagged: Array<ImapResponse> = []
        for (;;) {
          const r = yield* readResponseLine(wire)
          if (r.text.startsWith(`${tag} `)) {
            const rest = r.text.slice(tag.length + 1)
            const status = rest.split(" ", 1)[0] as ImapResult["status"]
            return { status, text: rest, untagged }
          }
          untagged.push(r)
        }
      })
    const ok = (command: string) =>
      run(command).pipe(
        Effect.filterOrFail(
          (r) => r.status === "OK",
          (r) => new ProtocolError({ protocol: "imap", command: command.replace(/^LOGIN .*/, "LOGIN ***"), reply: r.text })
        )
      )
    const unit = (command: string) => Effect.asVoid(ok(command))

    yield* Effect.acquireRelease(
      unit(`LOGIN ${quote(user)} ${quote(password)}`),
      () => withLiveClock(run("LOGOUT").pipe(Effect.timeout("5 seconds"))).pipe(Effect.ignore)
    )

    const client: ImapClient = {
      run,
      ok,
      create: (mb) => unit(`CREATE ${quote(mb)}`),
      delete: (mb) => unit(`DELETE ${quote(mb)}`),
      rename: (from, to) => unit(`RENAME ${quote(from)} ${quote(to)}`),
      setAcl: (mb, id, rights) => unit(`SETACL ${quote(mb)} ${quote(id)} ${quote(rights)}`),
      subscribe: (mb) => unit(`SUBSCRIBE ${quote(mb)}`),
      unsubscribe: (mb) => unit(`UNSUBSCRIBE ${quote(mb)}`),
      select: (mb, readOnly = false) => ok(`${readOnly ? "EXAMINE" : "SELECT"} ${quote(mb)}`),
      uids: ok("UID SEARCH ALL").pipe(
        Effect.map((r) =>
          r.untagged
            .filter((u) => u.text.startsWith("* SEARCH"))
            .flatMap((u) => u.text.slice("* SEARCH".length).trim().split(/\s+/).filter((x) => x !== ""))
            .map(Number)
            .sort((a, b) => a - b)
        )
      ),
      store: (uids, mode, flags) =>
        uids.length === 0 ? Effect.void : unit(`UID STORE ${uidSet(uids)} ${mode}FLAGS.SILENT (${flags.join(" ")})`),
      expunge: unit("EXPUNGE"),
      close: unit("CLOSE"),
      list: (pattern = "*") => ok(`LIST "" ${quote(pattern)}`).pipe(Effect.map((r) => parseMailboxNames(r.untagged, "LIST"))),
      lsub: (pattern = "*") => ok(`LSUB "" ${quote(pattern)}`).pipe(Effect.map((r) => parseMailboxNames(r.untagged, "LSUB"))),
      getAcl: (mb) =>
        ok(`GETACL ${quote(mb)}`).pipe(
          Effect.map((r) => {
            const acl = r.untagged.find((u) => u.text.startsWith("* ACL "))
            const words = (acl?.text ?? "").split(" ").slice(3)
            const pairs: Array<string> = []
            for (let i = 0; i + 1 < words.length; i += 2) pairs.push(`${words[i]} ${words[i + 1]}`)
            return pairs.sort()
          })
        ),
      fetchFlags: ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE)").pipe(
        Effect.map((r) => {
          const out = new Map<number, { flags: ReadonlyArray<string>; size: number }>()
          for (const u of r.untagged) {
            const uid = /UID (\d+)/.exec(u.text)
            if (!/^\* \d+ FETCH/.test(u.text) || uid === null) continue
            const flags = (/FLAGS \(([^)]*)\)/.exec(u.text)?.[1] ?? "").split(" ").filter((f) => f !== "" && f !== "\\Recent")
            out.set(Number(uid[1]), { flags: flags.sort(), size: Number(/RFC822\.SIZE (\d+)/.exec(u.text)?.[1] ?? -1) })
          }
          return out
        })
      ),
      fetchBodies: (uids) =>
        Effect.gen(function*() {
          const out = new Map<number, string>()
          for (let i = 0; i < uids.length; i += 50) {
            const r = yield* ok(`UID FETCH ${uidSet(uids.slice(i, i + 50))} (UID BODY.PEEK[])`)
            for (const u of r.untagged) {
              const uid = /UID (\d+)/.exec(u.text)
              if (uid !== null && u.literals.length > 0) out.set(Number(uid[1]), u.literals[0]!)
            }
          }
          return out
        })
    }
    return client
  })

export interface MailboxSnapshot {
  readonly acl: ReadonlyArray<string>
  /** In uid order: sha1 of the raw message, flags (no \Recent). */
  readonly messages: ReadonlyArray<{ uid: number; sha1: string; flags: ReadonlyArray<string>; size: number }>
}

export interface UserSnapshot {
  readonly user: string
  /** Folder names as the user sees them (INBOX, INBOX.Work, ...). */
  readonly mailboxes: Readonly<Record<string, MailboxSnapshot>>
  readonly subscriptions: ReadonlyArray<string>
}

/** Everything a user owns as seen over IMAP, for source/restore comparisons. */
export const snapshotUser = (port: number, user: string, password: string): Effect.Effect<UserSnapshot, ProtocolError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const imap = yield* imapSession(port, user, password)
      // only the user's own folders: others' shared folders (user.<other>...) belong to their owners
      const names = (yield* imap.list()).filter((n) => n === "INBOX" || n.startsWith("INBOX."))
      const subscriptions = yield* imap.lsub()
      const mailboxes: Record<string, MailboxSnapshot> = {}
      for (const name of names) {
        yield* imap.select(name, true)
        const flags = yield* imap.fetchFlags
        const bodies = yield* imap.fetchBodies([...flags.keys()])
        mailboxes[name] = {
          acl: yield* imap.getAcl(name),
          messages: [...flags.entries()].sort(([a], [b]) => a - b).map(([uid, f]) => ({
            uid,
            sha1: createHash("sha1").update(Buffer.from(bodies.get(uid) ?? "", "latin1")).digest("hex"),
            flags: f.flags,
            size: f.size
          }))
        }
        yield* imap.close
      }
      return { user, mailboxes, subscriptions }
    })
  )
