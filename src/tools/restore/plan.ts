/**
 * What a restore will send: the mailboxes (each with the records to restore), the message
 * GUIDs to offer per destination partition, and the folder names RESERVE may look in.
 * Built from a backup reader with Cyrus 3.6.1 restore's rules: objects are uniqueids (24
 * or 36 characters), GUIDs (40 hex digits) or mailbox names; `-r` adds submailboxes; `-M`,
 * `-P`, `-A` override; without `-U` uniqueid, highestmodseq and uidvalidity are dropped so
 * the destination numbers messages afresh; the deleted prefix is trimmed unless `-D`;
 * `-X`/`-x` filter expunged records; entries for the same name are merged.
 */
import { Effect, Option } from "effect"
import type { BackupReader, MailboxFields, MailboxWithRecords, ReadError, RecordFields, RecordRow } from "../../store/index.js"
import type { RestoreOptions } from "./options.js"

export type PlannedRecord = RecordFields

export interface PlannedMailbox extends MailboxFields {
  readonly records: ReadonlyArray<PlannedRecord>
  /** The mailbox's uniqueid in the backup (null for a folder made up by `-M`). */
  readonly sourceUniqueid: string | null
}

/** The command-line choices the plan follows, and what the configuration adds. */
export interface PlanOptions
  extends Pick<
    RestoreOptions,
    "overrideAcl" | "overrideMboxname" | "overridePartition" | "expunged" | "submailboxes" | "keepUidvalidity" | "trimDeletedPrefix"
  > {
  readonly deletedPrefix: string
  /** unixhierarchysep: names on the command line use `/`. */
  readonly unixHierarchySep: boolean
  readonly defaultPartition: string
  readonly log: (line: string) => void
}

export interface RestorePlan {
  readonly mailboxes: ReadonlyArray<PlannedMailbox>
  /** Destination partition → GUIDs to offer, in first-seen order. */
  readonly reserve: ReadonlyMap<string, ReadonlyArray<string>>
  /** Folder names the destination may find reserved messages in. */
  readonly reserveFolders: ReadonlyArray<string>
  /** Objects that named nothing in the backup. */
  readonly notFound: ReadonlyArray<string>
}

const ID_CHARS = /^[0-9a-z]+$/
const UUID_CHARS = /^[-0-9a-z]+$/
const GUID = /^[0-9a-fA-F]{40}$/

export type ObjectKind = "uniqueid" | "guid" | "mboxname"

/** How restore reads an object name. */
export const classifyObject = (name: string): ObjectKind =>
  (name.length === 24 && ID_CHARS.test(name)) || (name.length === 36 && UUID_CHARS.test(name))
    ? "uniqueid"
    : GUID.test(name)
    ? "guid"
    : "mboxname"

/** Command-line (admin namespace) name → internal name. */
export const internalName = (name: string, unixHierarchySep: boolean): string =>
  unixHierarchySep ? name.replace(/[./]/g, (c) => (c === "/" ? "." : "^")) : name

/** `DELETED.user.anne.Trash.5F3A1B2C` → `user.anne.Trash` (domain prefix kept). */
export const trimDeletedPrefix = (name: string, deletedPrefix: string): string => {
  const bang = name.indexOf("!")
  const domain = bang >= 0 ? name.slice(0, bang + 1) : ""
  const parts = name.slice(domain.length).split(".")
  if (parts.length >= 3 && parts[0] === deletedPrefix) return domain + parts.slice(1, -1).join(".")
  return name
}

const toRecord = (r: RecordRow): PlannedRecord => ({
  uid: r.uid,
  modseq: r.modseq,
  lastUpdated: r.lastUpdated,
  internaldate: r.internaldate,
  guid: r.guid,
  size: r.size,
  flags: r.flags,
  annotations: r.annotations,
  expunged: r.expunged !== null
})

const fromRow = (m: MailboxWithRecords, records: ReadonlyArray<RecordRow> = m.records): PlannedMailbox => ({
  uniqueid: m.uniqueid,
  mboxname: m.mboxname,
  mboxtype: m.mboxtype,
  lastUid: m.lastUid,
  highestmodseq: m.highestmodseq,
  recentuid: m.recentuid,
  recenttime: m.recenttime,
  lastAppenddate: m.lastAppenddate,
  pop3LastLogin: m.pop3LastLogin,
  pop3ShowAfter: m.pop3ShowAfter,
  uidvalidity: m.uidvalidity,
  partition: m.partition,
  acl: m.acl,
  options: m.options,
  syncCrc: m.syncCrc,
  syncCrcAnnot: m.syncCrcAnnot,
  quotaroot: m.quotaroot,
  xconvmodseq: m.xconvmodseq,
  annotations: m.annotations,
  records: records.map(toRecord),
  sourceUniqueid: m.uniqueid
})

/** A folder made up for `-M` (everything zero, as restore's zeroed struct). */
const emptyMailbox = (): PlannedMailbox => ({
  uniqueid: null,
  mboxname: "",
  mboxtype: null,
  lastUid: 0,
  highestmodseq: 0n,
  recentuid: 0,
  recenttime: 0,
  lastAppenddate: 0,
  pop3LastLogin: 0,
  pop3ShowAfter: 0,
  uidvalidity: 0,
  partition: null,
  acl: null,
  options: null,
  syncCrc: 0,
  syncCrcAnnot: 0,
  quotaroot: null,
  xconvmodseq: 0n,
  annotations: "",
  records: [],
  sourceUniqueid: null
})

/** restore's apply_mailbox_options. */
export const applyMailboxOptions = (mb: PlannedMailbox, o: PlanOptions): PlannedMailbox => {
  let out: { -readonly [K in keyof PlannedMailbox]: PlannedMailbox[K] } = { ...mb }
  if (o.overrideMboxname !== undefined) {
    o.log(`${out.mboxname}: overriding mboxname with ${o.overrideMboxname}`)
    out.mboxname = o.overrideMboxname
  }
  if (o.overridePartition !== undefined) {
    o.log(`${out.mboxname}: overriding partition with ${o.overridePartition} (was ${out.partition ?? "(null)"})`)
    out.partition = o.overridePartition
  }
  if (o.overrideAcl !== undefined) {
    o.log(`${out.mboxname}: overriding acl with '${o.overrideAcl}' (was '${out.acl ?? "(null)"}')`)
    // an empty -A means no ACL: the destination gives its owner the default
    out.acl = o.overrideAcl === "" ? null : o.overrideAcl
  }
  if (!o.keepUidvalidity) {
    o.log(`${out.mboxname}: not trying to keep uidvalidity`)
    out = { ...out, uniqueid: null, highestmodseq: 0n, uidvalidity: 0 }
  } else {
    o.log(`${out.mboxname}: trying to keep uidvalidity(${out.uidvalidity}), uniqueid(${out.uniqueid ?? "(null)"}), highestmodseq(${out.highestmodseq})`)
  }
  if (o.trimDeletedPrefix) {
    const trimmed = trimDeletedPrefix(out.mboxname, o.deletedPrefix)
    if (trimmed !== out.mboxname) {
      o.log(`${trimmed}: removing deletedprefix (was ${out.mboxname})`)
      out.mboxname = trimmed
    }
  }
  if (o.expunged !== "include") {
    const keepExpunged = o.expunged === "only"
    out.records = out.records.filter((r) => {
      if (r.expunged === keepExpunged) return true
      o.log(`${out.mboxname}: excluding ${r.expunged ? "expunged" : "unexpunged"} message: ${r.guid}`)
      return false
    })
  }
  return out
}

/** Accumulates the plan as objects are added. */
class PlanBuilder {
  readonly mailboxes: Array<PlannedMailbox> = []
  readonly reserve = new Map<string, Set<string>>()
  readonly folders: Array<string> = []
  readonly notFound: Array<string> = []

  constructor(readonly o: PlanOptions, folders: ReadonlyArray<string>) {
    for (const f of folders) this.addFolder(f)
  }

  addFolder(name: string): void {
    if (!this.folders.includes(name)) this.folders.push(name)
  }

  reserveGuid(partition: string | null, guid: string): void {
    const p = partition ?? this.o.defaultPartition
    let set = this.reserve.get(p)
    if (set === undefined) this.reserve.set(p, (set = new Set()))
    set.add(guid)
  }

  /** restore's my_mailbox_list_add: a second entry for a name only adds its records. */
  addToList(mb: PlannedMailbox): void {
    const at = this.mailboxes.findIndex((m) => m.mboxname === mb.mboxname)
    if (at < 0) this.mailboxes.push(mb)
    else if (mb.records.length > 0) this.mailboxes[at] = { ...this.mailboxes[at]!, records: [...this.mailboxes[at]!.records, ...mb.records] }
  }

  addMailbox(row: MailboxWithRecords, records?: ReadonlyArray<RecordRow>): void {
    const clone = applyMailboxOptions(fromRow(row, records), this.o)
    for (const r of clone.records) this.reserveGuid(clone.partition, r.guid)
    if (this.o.overrideMboxname !== undefined) this.addFolder(clone.mboxname)
    this.addToList(clone)
  }

  build(): RestorePlan {
    return {
      mailboxes: this.mailboxes,
      reserve: new Map([...this.reserve].map(([p, s]) => [p, [...s]])),
      reserveFolders: this.folders,
      notFound: this.notFound
    }
  }
}

export type PlanRequest =
  | { readonly _tag: "All" }
  | { readonly _tag: "Objects"; readonly names: ReadonlyArray<string> }

/** Builds the plan for `-a` or a list of objects. */
export const buildPlan = (reader: BackupReader, request: PlanRequest, o: PlanOptions): Effect.Effect<RestorePlan, ReadError> =>
  Effect.gen(function*() {
    const all = yield* reader.mailboxes({ withRecords: true })
    const b = new PlanBuilder(o, all.map((m) => m.mboxname))
    if (request._tag === "All") {
      for (const m of all) b.addMailbox(m)
      return b.build()
    }
    for (const name of request.names) {
      const kind = classifyObject(name)
      if (kind === "guid") {
        const guid = name.toLowerCase()
        const message = yield* reader.messageByGuid(guid)
        if (Option.isNone(message)) {
          b.notFound.push(name)
          continue
        }
        const holders = all.flatMap((m) => {
          const recs = m.records.filter((r) => r.guid === guid)
          return recs.length === 0 ? [] : [{ m, recs }]
        })
        if (o.overrideMboxname !== undefined) {
          // a folder holding just this message; its date and flags from where the backup saw it
          const seenIn = holders[0]?.recs[0]
          let mb = applyMailboxOptions(emptyMailbox(), o)
          if (mb.partition === null) mb = { ...mb, partition: message.value.partition }
          const record: PlannedRecord = {
            uid: 0,
            modseq: 0n,
            lastUpdated: 0,
            internaldate: seenIn?.internaldate ?? 0,
            guid,
            size: message.value.size,
            flags: seenIn?.flags ?? "",
            annotations: "",
            expunged: false
          }
          mb = { ...mb, records: [record] }
          b.reserveGuid(mb.partition, guid)
          b.addFolder(mb.mboxname)
          b.addToList(mb)
        } else {
          for (const h of holders) b.addMailbox(h.m, h.recs)
        }
        continue
      }
      const found = kind === "uniqueid"
        ? yield* reader.mailboxByUniqueid(name, { withRecords: true })
        : yield* reader.mailboxByName(internalName(name, o.unixHierarchySep), { withRecords: true })
      if (Option.isNone(found)) {
        b.notFound.push(name)
        continue
      }
      b.addMailbox(found.value)
      if (o.submailboxes) {
        const prefix = `${found.value.mboxname}.`
        for (const m of all) if (m.mboxname.startsWith(prefix)) b.addMailbox(m)
      }
    }
    return b.build()
  })
