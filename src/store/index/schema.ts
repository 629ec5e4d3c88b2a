/**
 * The SQLite index next to each data file (`<data>.index`): Cyrus 3.6.1's schema, exactly, plus
 * one table of our own (`backupd_chunk_state`) that records the acknowledged end of the data
 * file. The Cyrus tools only query their own tables by name, so the extra table is invisible
 * to them; `ctl_backups reindex` simply drops it (we then rebuild it by hashing once).
 */

/** Cyrus's init SQL, in its source layout; executed with whitespace collapsed like the C macro does. */
const CYRUS_INIT_SQL = `
    CREATE TABLE chunk(
        id INTEGER PRIMARY KEY ASC,
        ts_start INTEGER,
        ts_end INTEGER,
        offset INTEGER unique,
        length INTEGER,
        file_sha1 TEXT,
        data_sha1 TEXT
    );

    CREATE TABLE message(
        id INTEGER PRIMARY KEY ASC,
        guid CHAR UNIQUE NOT NULL,
        partition CHAR,
        chunk_id INTEGER REFERENCES chunk(id),
        offset INTEGER,
        size INTEGER
    );
    CREATE INDEX IF NOT EXISTS idx_msg_guid ON message(guid);

    CREATE TABLE mailbox(
        id INTEGER PRIMARY KEY ASC,
        last_chunk_id INTEGER NOT NULL REFERENCES chunk(id),
        uniqueid CHAR UNIQUE NOT NULL,
        mboxname CHAR NOT NULL,
        mboxtype CHAR,
        last_uid INTEGER,
        highestmodseq INTEGER,
        recentuid INTEGER,
        recenttime INTEGER,
        last_appenddate INTEGER,
        pop3_last_login INTEGER,
        pop3_show_after INTEGER,
        uidvalidity INTEGER,
        partition CHAR,
        acl CHAR,
        options CHAR,
        sync_crc INTEGER,
        sync_crc_annot INTEGER,
        quotaroot CHAR,
        xconvmodseq INTEGER,
        annotations CHAR,
        deleted INTEGER
    );
    CREATE INDEX IF NOT EXISTS idx_bmb_uid ON mailbox(uniqueid);

    CREATE TABLE mailbox_message(
        id INTEGER PRIMARY KEY ASC,
        mailbox_id INTEGER NOT NULL REFERENCES mailbox(id),
        message_id INTEGER NOT NULL REFERENCES message(id),
        last_chunk_id INTEGER NOT NULL REFERENCES chunk(id),
        uid INTEGER NOT NULL,
        modseq INTEGER,
        last_updated INTEGER,
        flags CHAR,
        internaldate INTEGER,
        annotations CHAR,
        expunged INTEGER,
        UNIQUE (mailbox_id, message_id)
    );
    CREATE INDEX IF NOT EXISTS idx_mbr_uid ON mailbox_message(uid);

    CREATE TABLE subscription(
        id INTEGER PRIMARY KEY ASC,
        last_chunk_id INTEGER NOT NULL REFERENCES chunk(id),
        mboxname CHAR UNIQUE NOT NULL,
        unsubscribed INTEGER
    );
    CREATE INDEX IF NOT EXISTS idx_sub_mbx ON subscription(mboxname);

    CREATE TABLE seen(
        id INTEGER PRIMARY KEY ASC,
        last_chunk_id INTEGER NOT NULL REFERENCES chunk(id),
        uniqueid CHAR UNIQUE NOT NULL,
        lastread INTEGER,
        lastuid INTEGER,
        lastchange INTEGER,
        seenuids CHAR
    );
    CREATE INDEX IF NOT EXISTS idx_seen_unq ON seen(uniqueid);

    CREATE TABLE sieve(
        id INTEGER PRIMARY KEY ASC,
        chunk_id INTEGER NOT NULL REFERENCES chunk(id),
        last_update INTEGER,
        filename CHAR NOT NULL,
        guid CHAR NOT NULL,
        offset INTEGER,
        deleted INTEGER
    );
    CREATE INDEX IF NOT EXISTS idx_siv_fn ON sieve(filename);
`

/** Cyrus's upgrade steps for indexes at user_version 1 or 2 (keyed by the version they bring). */
const CYRUS_UPGRADES: ReadonlyArray<readonly [version: number, sql: string]> = [
  [2, sliceTable("subscription")],
  [3, sliceTable("seen")],
  [4, sliceTable("sieve")]
]

function sliceTable(name: string): string {
  const start = CYRUS_INIT_SQL.indexOf(`CREATE TABLE ${name}(`)
  const next = CYRUS_INIT_SQL.indexOf("CREATE TABLE", start + 1)
  return CYRUS_INIT_SQL.slice(start, next === -1 ? undefined : next)
}

/** Split into single statements, each with whitespace runs collapsed (the C macro's effect). */
const statements = (sql: string): ReadonlyArray<string> =>
  sql
    .replace(/\s+/g, " ")
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => `${s};`)

/** The version Cyrus writes into new indexes (even though they already hold the v4 table). */
export const CYRUS_INDEX_VERSION = 3

export const cyrusInitStatements: ReadonlyArray<string> = statements(CYRUS_INIT_SQL)

export const cyrusUpgradeStatements = (fromVersion: number): ReadonlyArray<readonly [number, ReadonlyArray<string>]> =>
  CYRUS_UPGRADES.filter(([v]) => v > fromVersion).map(([v, sql]) => [v, statements(sql)] as const)

/** Pragmas every Cyrus tool sets on open (rollback journal: never WAL). */
export const connectionPragmas: ReadonlyArray<string> = [
  "PRAGMA busy_timeout = 20000;",
  "PRAGMA foreign_keys = ON;",
  "PRAGMA secure_delete = OFF;",
  "PRAGMA temp_store = 2;"
]

/**
 * Our single-row table: the state of the data file at the last acknowledged point.
 * `end_offset` is where the acknowledged bytes end; when `sealed` = 0 the last chunk's gzip
 * member is still open there (byte-aligned after a sync flush) and `crc32`/`length` are what
 * its trailer will need. The two SHA-1 states are hash-wasm `save()` blobs (hex): the chunk's
 * uncompressed data so far, and the whole data file up to `end_offset`.
 */
export const chunkStateTableStatements: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS backupd_chunk_state( id INTEGER PRIMARY KEY CHECK (id = 1), chunk_id INTEGER, sealed INTEGER NOT NULL, end_offset INTEGER NOT NULL, length INTEGER NOT NULL, crc32 INTEGER NOT NULL, data_sha1_state TEXT NOT NULL, file_sha1_state TEXT NOT NULL, last_ts INTEGER NOT NULL );`
]
