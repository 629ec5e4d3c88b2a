/**
 * The effective imapd.conf of one program run: typed options with Cyrus 3.6 defaults,
 * overflow lookups with the service-prefix rule, and the backup partitions.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Context, Effect, Either, Layer } from "effect"
import { hostname } from "node:os"
import { ConfigError } from "./ConfigError.js"
import { readImapdConf, type ImapdConfEntries, type OpenConfFile } from "./imapdConf.js"
import { optionSpecs } from "./optionTable.js"
import { decodeWith, durationFromString, parseDuration, type DurationUnit, type OptionValue } from "./optionTypes.js"

export const DEFAULT_CONFIG_PATH = "/etc/imapd.conf"
/** The compiled-in Cyrus user of Debian's build, used when neither $CYRUS_USER nor cyrus_user is set. */
export const DEFAULT_CYRUS_USER = "cyrus"

/** `backup_stale_after` when unset: two days. */
export const DEFAULT_STALE_AFTER = 2 * 86400

export type PartitionSelectMode =
  | "random"
  | "freespace-most"
  | "freespace-percent-most"
  | "freespace-percent-weighted"
  | "freespace-percent-weighted-delta"
export type BackupDbBackend = "skiplist" | "sql" | "twoskip" | "zeroskip"
export type VirtDomains = "off" | "userid" | "on"

/** Settings of a sync channel as `sync_client`/`restore` resolve them. */
export interface ChannelSyncSettings {
  readonly host: string | undefined
  readonly port: string | undefined
  readonly authname: string | undefined
  readonly password: string | undefined
  readonly realm: string | undefined
  readonly tryImap: boolean
}

export interface CyrusConfig {
  /** The configuration file named by the caller (before any $CYRUS_PREFIX). */
  readonly path: string
  /** Every file read, the top-level one first, then @includes in order. */
  readonly files: ReadonlyArray<string>
  /** The service name used for `<service>_` overrides. */
  readonly service: string
  /** Deprecation notices Cyrus would log at LOG_WARNING. */
  readonly warnings: ReadonlyArray<string>

  readonly configDirectory: string
  readonly serverName: string
  readonly admins: string
  readonly proxyServers: string | undefined
  readonly loginRealms: string
  /** Seconds (unitless = seconds). backupd enforces a 3 s minimum itself. */
  readonly syncTimeout: number
  /** Seconds. */
  readonly failedLoginPause: number
  readonly allowPlaintext: boolean
  readonly allowAnonymousLogin: boolean
  readonly saslMinimumLayer: number
  readonly saslMaximumLayer: number
  readonly tlsServerCert: string | undefined
  readonly tlsServerKey: string | undefined
  readonly tlsClientCaFile: string | undefined
  readonly tlsVersions: string
  readonly tlsCiphers: string

  /** `backuppartition-<name>` → path, from generic keys only (as Cyrus enumerates them). */
  readonly partitions: ReadonlyMap<string, string>
  readonly partitionSelectMode: PartitionSelectMode
  readonly partitionSelectExclude: string | undefined
  /** partition_select_exclude split on space, comma and tab. */
  readonly partitionSelectExcluded: ReadonlyArray<string>
  readonly partitionSelectSoftUsageLimit: number
  readonly partitionSelectUsageReinit: number

  readonly backupDb: BackupDbBackend
  /** backup_db_path, or `<configdirectory>/backups.db`. */
  readonly backupDbPath: string
  /** backup_staging_path, or `<temp_path>/backup`. */
  readonly backupStagingPath: string
  readonly tempPath: string
  /** Seconds (unitless = days). backup_retention_days feeds it when backup_retention is unset. */
  readonly backupRetention: number
  /** As configured, in kB. */
  readonly backupCompactMinsize: number
  readonly backupCompactMaxsize: number
  readonly backupCompactWorkThreshold: number
  /** What compaction uses: max(0, 1024·kB), max(0, 1024·kB), max(1, threshold). */
  readonly backupCompactMinBytes: number
  readonly backupCompactMaxBytes: number
  readonly backupCompactEffectiveWorkThreshold: number
  readonly backupKeepPrevious: boolean
  /**
   * `backup_stale_after` (our extension key, an overflow entry; bare = days, default 2d), in
   * seconds: a backup whose last chunk ended longer ago than this is stale (ctl_backups
   * metrics, health, list -j, stat -j).
   */
  readonly backupStaleAfter: number

  readonly fulldirhash: boolean
  readonly deletedPrefix: string
  readonly defaultDomain: string | undefined
  readonly virtDomains: VirtDomains
  readonly usernameToLower: boolean
  readonly unixHierarchySep: boolean
  /** $CYRUS_USER, else cyrus_user, else "cyrus". */
  readonly cyrusUser: string
  readonly telemetryBySessionId: boolean
  readonly maxWord: number
  readonly maxQuoted: number
  readonly literalMinus: boolean
  readonly debug: boolean
  readonly debugCommand: string | undefined
  readonly debugWritefailGuid: string | undefined
  readonly syslogPrefix: string | undefined
  readonly syslogFacility: string | undefined
  /** The umask option text. */
  readonly umaskText: string
  /** Its value: octal digits accumulated, any other character skipped (as Cyrus does). */
  readonly umask: number
  readonly lockDebugTime: string | undefined

  readonly syncAuthname: string | undefined
  readonly syncPassword: string | undefined
  readonly syncRealm: string | undefined
  readonly syncHost: string | undefined
  readonly syncPort: string | undefined
  readonly syncTryImap: boolean

  /** Any known option by its Cyrus name: typed value, default applied; undefined when unset without default or unknown. */
  readonly option: (name: string) => OptionValue | undefined
  /** The effective text of a known option (after {configdirectory}); undefined when it has none. */
  readonly optionText: (name: string) => string | undefined
  /** Whether a known option was set in the file (directly or through its deprecated alias). */
  readonly isSet: (name: string) => boolean
  /** A duration option in seconds, a bare number taking `defaultUnit`. */
  readonly duration: (name: string, defaultUnit: DurationUnit) => number | undefined
  /** Overflow lookup: `<service>_<key>` first, then `<key>`. */
  readonly overflow: (key: string) => string | undefined
  /** Every overflow entry as written. */
  readonly overflowEntries: ReadonlyMap<string, string>
  /** `<channel>_sync_*` overflow values first, then the sync_* options (restore: no channel). */
  readonly channelSync: (channel: string | undefined) => ChannelSyncSettings
}

export interface ConfigSourceOptions {
  /** imapd.conf to read; default /etc/imapd.conf. */
  readonly path?: string | undefined
  /** The program's name; used as service unless $CYRUS_SERVICE is set (and serviceFromEnv is not false). */
  readonly service: string
  /** Take $CYRUS_SERVICE over `service` (true by default; Cyrus's command-line tools ignore it). */
  readonly serviceFromEnv?: boolean | undefined
  /** Environment to consult for CYRUS_SERVICE, CYRUS_PREFIX, CYRUS_USER; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

export interface FromStringOptions extends ConfigSourceOptions {
  /** Contents of files that @include may name; any other include fails as not found. */
  readonly files?: Readonly<Record<string, string>> | undefined
}

// --- building the effective configuration ------------------------------------------

const CONFIGDIRECTORY_PREFIX = "{configdirectory}"

const strerror: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  EMFILE: "Too many open files",
  ENFILE: "Too many open files in system",
  EIO: "Input/output error",
  ENXIO: "No such device or address"
}

/** strerror-style text for a failed read. */
export const describeReadFailure = (e: unknown): string => {
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === "string" && strerror[code] !== undefined) return strerror[code]!
  const reason = (e as { reason?: unknown } | null)?.reason
  if (reason === "NotFound") return strerror.ENOENT!
  if (reason === "PermissionDenied") return strerror.EACCES!
  const cause = (e as { cause?: unknown } | null)?.cause
  if (cause !== undefined && cause !== e) return describeReadFailure(cause)
  return typeof code === "string" ? code : "Input/output error"
}

const parseUmask = (text: string): number => {
  let v = 0
  for (const c of text) if (c >= "0" && c <= "7") v = ((v << 3) + (c.charCodeAt(0) - 48)) | 0
  return v
}

// C atoi: leading space, sign, digits; anything else stops (so "yes" is 0)
const atoi = (s: string): number => {
  const m = /^[ \t\n\v\f\r]*([+-]?[0-9]+)/.exec(s)
  return m === null ? 0 : Number(BigInt.asIntN(32, BigInt(m[1]!)))
}

/** Builds the effective configuration from what the reader found. */
export const resolveConfig = (
  entries: ImapdConfEntries,
  context: { readonly path: string; readonly service: string; readonly env: Readonly<Record<string, string | undefined>> }
): Either.Either<CyrusConfig, ConfigError> => {
  const configDirSetting = entries.known.get("configdirectory")
  if (configDirSetting === undefined) {
    return Either.left(
      new ConfigError({
        reason: "missing",
        file: context.path,
        line: undefined,
        option: undefined,
        detail: "configdirectory option not specified in configuration file"
      })
    )
  }
  const configDirectory = configDirSetting.raw

  // effective raw text per option: file value or default, then {configdirectory}
  const text = new Map<string, string>()
  const values = new Map<string, OptionValue>()
  const setNames = new Set<string>()
  for (const spec of optionSpecs.values()) {
    const s = entries.known.get(spec.name)
    if (s !== undefined) {
      setNames.add(spec.name)
      text.set(spec.name, s.raw)
      values.set(spec.name, s.value)
    } else if (spec.default !== null) {
      if (spec.kind === "switch") {
        values.set(spec.name, spec.default !== 0)
        text.set(spec.name, String(spec.default))
      } else if (spec.kind === "int") {
        values.set(spec.name, spec.default as number)
        text.set(spec.name, String(spec.default))
      } else {
        const raw = String(spec.default)
        text.set(spec.name, raw)
        values.set(spec.name, spec.kind === "bitfield" ? raw.split(" ").filter((w) => w !== "") : raw)
      }
    }
    const t = text.get(spec.name)
    if (
      spec.kind === "string" &&
      spec.name !== "configdirectory" &&
      t !== undefined &&
      t.slice(0, CONFIGDIRECTORY_PREFIX.length).toLowerCase() === CONFIGDIRECTORY_PREFIX
    ) {
      const v = configDirectory + t.slice(CONFIGDIRECTORY_PREFIX.length)
      text.set(spec.name, v)
      values.set(spec.name, v)
    }
  }

  // deprecated options hand their value to the preferred one unless that was set too
  const warnings: Array<string> = []
  for (const spec of optionSpecs.values()) {
    if (spec.deprecatedSince === null || !setNames.has(spec.name)) continue
    if (spec.preferred === null) {
      warnings.push(`Option '${spec.name}' is deprecated in version ${spec.deprecatedSince}.`)
      continue
    }
    warnings.push(
      `Option '${spec.name}' is deprecated in favor of '${spec.preferred}' since version ${spec.deprecatedSince}.`
    )
    if (setNames.has(spec.preferred)) continue
    setNames.add(spec.preferred)
    const t = text.get(spec.name)
    const v = values.get(spec.name)
    if (t !== undefined) text.set(spec.preferred, t)
    if (v !== undefined) values.set(spec.preferred, v)
  }

  // defaultpartition must be alphanumeric; Cyrus lower-cases it
  const defPart = text.get("defaultpartition")
  if (defPart !== undefined) {
    if (!/^[A-Za-z0-9]*$/.test(defPart)) {
      const s = entries.known.get("defaultpartition")
      return Either.left(
        new ConfigError({
          reason: "value",
          file: s?.file ?? context.path,
          line: s?.line,
          option: "defaultpartition",
          detail: "defaultpartition option contains non-alphanumeric character"
        })
      )
    }
    text.set("defaultpartition", defPart.toLowerCase())
    values.set("defaultpartition", defPart.toLowerCase())
  }

  const str = (name: string): string | undefined => text.get(name)
  const strOr = (name: string, fallback: string): string => text.get(name) ?? fallback
  const int = (name: string): number => values.get(name) as number
  const sw = (name: string): boolean => values.get(name) as boolean
  const duration = (name: string, unit: DurationUnit): number | undefined => {
    const t = text.get(name)
    if (t === undefined) return optionSpecs.get(name)?.kind === "duration" ? 0 : undefined
    return parseDuration(t, unit)
  }
  const durationOr0 = (name: string, unit: DurationUnit) => duration(name, unit) ?? 0

  const service = context.service
  const overflow = (key: string): string | undefined =>
    entries.overflow.get(`${service}_${key}`.toLowerCase()) ?? entries.overflow.get(key)

  const partitions = new Map<string, string>()
  for (const [k, v] of entries.overflow) {
    if (k.startsWith("backuppartition-") && k.length > "backuppartition-".length) {
      partitions.set(k.slice("backuppartition-".length), v)
    }
  }

  const tempPath = strOr("temp_path", "/tmp")
  const partitionSelectExclude = str("partition_select_exclude")
  const minsize = int("backup_compact_minsize")
  const maxsize = int("backup_compact_maxsize")
  const threshold = int("backup_compact_work_threshold")

  const channelSync = (channel: string | undefined): ChannelSyncSettings => {
    const get = (key: string) => (channel !== undefined ? overflow(`${channel}_${key}`) : undefined) ?? str(key)
    let tryImap = -1
    if (channel !== undefined) {
      const t = overflow(`${channel}_sync_try_imap`)
      if (t !== undefined) tryImap = atoi(t)
    }
    return {
      host: get("sync_host"),
      port: get("sync_port"),
      authname: get("sync_authname"),
      password: get("sync_password"),
      realm: get("sync_realm"),
      tryImap: tryImap === -1 ? sw("sync_try_imap") : tryImap !== 0
    }
  }

  const umaskText = strOr("umask", "077")

  const staleText = overflow("backup_stale_after")?.trim()
  const backupStaleAfter = staleText === undefined || staleText === "" ? DEFAULT_STALE_AFTER : parseDuration(staleText, "d")
  if (backupStaleAfter === undefined || backupStaleAfter <= 0) {
    return Either.left(
      new ConfigError({
        reason: "value",
        file: context.path,
        line: undefined,
        option: "backup_stale_after",
        detail: `invalid duration "${staleText}" (e.g. 2d, 36h)`
      })
    )
  }

  return Either.right({
    path: context.path,
    files: entries.files,
    service,
    warnings,
    configDirectory,
    serverName: str("servername") ?? hostname(),
    admins: strOr("admins", ""),
    proxyServers: str("proxyservers"),
    loginRealms: strOr("loginrealms", ""),
    syncTimeout: durationOr0("sync_timeout", "s"),
    failedLoginPause: durationOr0("failedloginpause", "s"),
    allowPlaintext: sw("allowplaintext"),
    allowAnonymousLogin: sw("allowanonymouslogin"),
    saslMinimumLayer: int("sasl_minimum_layer"),
    saslMaximumLayer: int("sasl_maximum_layer"),
    tlsServerCert: str("tls_server_cert"),
    tlsServerKey: str("tls_server_key"),
    tlsClientCaFile: str("tls_client_ca_file"),
    tlsVersions: strOr("tls_versions", ""),
    tlsCiphers: strOr("tls_ciphers", ""),
    partitions,
    partitionSelectMode: values.get("partition_select_mode") as PartitionSelectMode,
    partitionSelectExclude,
    partitionSelectExcluded: (partitionSelectExclude ?? "").split(/[ ,\t]+/).filter((w) => w !== ""),
    partitionSelectSoftUsageLimit: int("partition_select_soft_usage_limit"),
    partitionSelectUsageReinit: int("partition_select_usage_reinit"),
    backupDb: values.get("backup_db") as BackupDbBackend,
    backupDbPath: str("backup_db_path") ?? `${configDirectory}/backups.db`,
    backupStagingPath: str("backup_staging_path") ?? `${tempPath}/backup`,
    tempPath,
    backupRetention: durationOr0("backup_retention", "d"),
    backupCompactMinsize: minsize,
    backupCompactMaxsize: maxsize,
    backupCompactWorkThreshold: threshold,
    backupCompactMinBytes: Math.max(0, 1024 * minsize),
    backupCompactMaxBytes: Math.max(0, 1024 * maxsize),
    backupCompactEffectiveWorkThreshold: Math.max(1, threshold),
    backupKeepPrevious: sw("backup_keep_previous"),
    backupStaleAfter,
    fulldirhash: sw("fulldirhash"),
    deletedPrefix: strOr("deletedprefix", "DELETED"),
    defaultDomain: str("defaultdomain"),
    virtDomains: values.get("virtdomains") as VirtDomains,
    usernameToLower: sw("username_tolower"),
    unixHierarchySep: sw("unixhierarchysep"),
    cyrusUser: context.env.CYRUS_USER ?? str("cyrus_user") ?? DEFAULT_CYRUS_USER,
    telemetryBySessionId: sw("telemetry_bysessionid"),
    maxWord: int("maxword"),
    maxQuoted: int("maxquoted"),
    literalMinus: sw("literalminus"),
    debug: sw("debug"),
    debugCommand: str("debug_command"),
    debugWritefailGuid: str("debug_writefail_guid"),
    syslogPrefix: str("syslog_prefix"),
    syslogFacility: str("syslog_facility"),
    umaskText,
    umask: parseUmask(umaskText),
    lockDebugTime: str("lock_debugtime"),
    syncAuthname: str("sync_authname"),
    syncPassword: str("sync_password"),
    syncRealm: str("sync_realm"),
    syncHost: str("sync_host"),
    syncPort: str("sync_port"),
    syncTryImap: sw("sync_try_imap"),
    option: (name) => values.get(name.toLowerCase()),
    optionText: (name) => text.get(name.toLowerCase()),
    isSet: (name) => setNames.has(name.toLowerCase()),
    duration: (name, unit) => duration(name.toLowerCase(), unit),
    overflow,
    overflowEntries: entries.overflow,
    channelSync
  })
}

// --- sources --------------------------------------------------------------------

const effectiveService = (opts: ConfigSourceOptions, env: Readonly<Record<string, string | undefined>>) =>
  opts.serviceFromEnv !== false && env.CYRUS_SERVICE !== undefined && env.CYRUS_SERVICE !== ""
    ? env.CYRUS_SERVICE
    : opts.service

/** Tries `$CYRUS_PREFIX<path>` first, then `<path>`, as Cyrus does for every file it reads. */
const withPrefix =
  (open: OpenConfFile, prefix: string | undefined): OpenConfFile =>
  (path) =>
    prefix === undefined ? open(path) : Effect.orElse(open(prefix + path), () => open(path))

const build = (
  open: OpenConfFile,
  opts: ConfigSourceOptions
): Effect.Effect<CyrusConfig, ConfigError> =>
  Effect.suspend(() => {
    const env = opts.env ?? process.env
    const path = opts.path ?? DEFAULT_CONFIG_PATH
    const service = effectiveService(opts, env)
    return Effect.flatMap(
      readImapdConf({ path, service, open: withPrefix(open, env.CYRUS_PREFIX) }),
      (entries) => resolveConfig(entries, { path, service, env })
    )
  })

/** Reads files through @effect/platform's FileSystem, as byte strings. */
const openWithFileSystem = (fs: FileSystem.FileSystem): OpenConfFile => (path) =>
  Effect.mapBoth(fs.readFile(path), {
    onFailure: describeReadFailure,
    onSuccess: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")
  })

const openFromRecord =
  (files: Readonly<Record<string, string>>): OpenConfFile =>
  (path) =>
    Object.hasOwn(files, path) ? Effect.succeed(files[path]!) : Effect.fail(strerror.ENOENT!)

/** The configuration of this run. */
export class Config extends Context.Tag("Config")<Config, CyrusConfig>() {
  /** Reads the file (default /etc/imapd.conf) from disk. */
  static load(opts: ConfigSourceOptions): Effect.Effect<CyrusConfig, ConfigError, FileSystem.FileSystem> {
    return Effect.flatMap(FileSystem.FileSystem, (fs) => build(openWithFileSystem(fs), opts))
  }

  /** Parses `text` as the top-level file; @include targets come from `opts.files`. */
  static fromString(text: string, opts: FromStringOptions): Effect.Effect<CyrusConfig, ConfigError> {
    const path = opts.path ?? DEFAULT_CONFIG_PATH
    const files = { ...opts.files, [path]: text }
    // the in-memory top-level file must not be shadowed by $CYRUS_PREFIX
    const env = { ...(opts.env ?? process.env), CYRUS_PREFIX: undefined }
    return build(openFromRecord(files), { ...opts, path, env })
  }

  static layer(opts: ConfigSourceOptions): Layer.Layer<Config, ConfigError, FileSystem.FileSystem> {
    return Layer.effect(Config, Config.load(opts))
  }

  static layerFromString(text: string, opts: FromStringOptions): Layer.Layer<Config, ConfigError> {
    return Layer.effect(Config, Config.fromString(text, opts))
  }
}

/** Reads one duration text the way a Cyrus caller with `defaultUnit` would. */
export const decodeDuration = (text: string, defaultUnit: DurationUnit): Either.Either<number, string> =>
  decodeWith(durationFromString(defaultUnit), text)
