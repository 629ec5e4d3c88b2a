/**
 * Which backups a tool's arguments name, as Cyrus's tools resolve them: userids
 * (`mbname_from_userid`), mailbox names in the admin namespace (`mbname_from_extname`),
 * file names, or — through backups.db — every backup, those of some domains, or those
 * whose userid starts with a prefix.
 */
import { Effect, Option } from "effect"
import type { CyrusConfig } from "../config/Config.js"
import { canonicalUserid, useridOfMboxname, SHARED_KEY, type NamingOptions } from "../protocol/mboxname.js"
import type { BackupsDbError, BackupsDbService } from "../store/index.js"

export type TargetMode = "all" | "domain" | "prefix" | "file" | "mboxname" | "userid"

export interface Target {
  /** The userid the backup belongs to, when it was found through backups.db. */
  readonly userid: string | undefined
  readonly dataPath: string
}

export const namingOf = (config: CyrusConfig): NamingOptions => ({
  defaultDomain: config.defaultDomain ?? "",
  deletedPrefix: config.deletedPrefix
})

/** An external (admin namespace) mailbox name as the internal name. */
export const internalMboxname = (config: CyrusConfig, extname: string): string => {
  let name = extname
  let domain: string | undefined
  if (config.virtDomains !== "off") {
    const at = name.lastIndexOf("@")
    if (at >= 0) {
      domain = name.slice(at + 1)
      name = name.slice(0, at)
      if (domain === "" || domain === config.defaultDomain) domain = undefined
    }
  }
  if (config.unixHierarchySep) name = name.replaceAll(".", "^").replaceAll("/", ".")
  return domain === undefined ? name : `${domain}!${name}`
}

/** The backups.db key of a userid as `mbname_from_userid` + `mbname_userid` give it. */
export const useridKey = (config: CyrusConfig, userid: string): string =>
  config.virtDomains === "off" ? userid : canonicalUserid(userid, namingOf(config))

/** The backups.db key (and the userid, unless shared) for a mailbox name argument. */
export const mboxnameKey = (config: CyrusConfig, extname: string): { readonly key: string; readonly userid: string | undefined } => {
  const userid = useridOfMboxname(internalMboxname(config, extname), namingOf(config))
  return { key: userid ?? SHARED_KEY, userid }
}

/** The domain of a userid for `-D` (the default domain when it has none). */
export const domainOfUserid = (config: CyrusConfig, userid: string): string | undefined => {
  if (config.virtDomains !== "off") {
    const at = userid.lastIndexOf("@")
    if (at >= 0) return userid.slice(at + 1)
  }
  return config.defaultDomain
}

/** Looks a userid / mailbox argument up; None when backups.db has no entry. */
export const lookupNamed = (
  db: BackupsDbService,
  config: CyrusConfig,
  mode: "userid" | "mboxname",
  arg: string
): Effect.Effect<Option.Option<Target>, BackupsDbError> => {
  const { key, userid } = mode === "userid" ? { key: useridKey(config, arg), userid: useridKey(config, arg) } : mboxnameKey(config, arg)
  return Effect.map(db.lookup(key), Option.map((loc) => ({ userid, dataPath: loc.dataPath })))
}

/** Every backups.db entry selected by `-A`, `-D domain...` or `-P prefix...`, in key order per argument. */
export const listFromDb = (
  db: BackupsDbService,
  config: CyrusConfig,
  mode: "all" | "domain" | "prefix",
  args: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Target>, BackupsDbError> =>
  Effect.map(db.list, (entries) => {
    const targets = (keep: (key: string) => boolean) =>
      entries.filter((e) => e.userid.length > 0 && keep(e.userid)).map((e) => ({ userid: e.userid, dataPath: e.dataPath }))
    if (mode === "all") return targets(() => true)
    if (mode === "prefix") return args.flatMap((p) => targets((k) => k.startsWith(p)))
    return args.flatMap((d) => targets((k) => domainOfUserid(config, k) === d))
  })
