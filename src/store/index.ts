/**
 * The backup store's front door: everything the session, the service, the tools and the
 * demo use of `src/store/` is exported here, and nothing outside the store imports its
 * folders directly (test/architecture.test.ts holds every module to that).
 *
 * Inside, the store follows the original's split (docs/architecture.md): `locate/` (backups.db,
 * where a user's backup lives), `openBackup.ts` and `dataFileLock.ts` (the one opening
 * sequence), `format/` (the data file's bytes), `index/` (the SQLite index: schema, writes,
 * every read), `read/`, `write/`, `maintain/` (verify, reindex, compact) and `twoskip/`.
 */

// errors
export {
  AppendRejected,
  BackupClosed,
  BackupCorrupt,
  BackupExists,
  BackupIndexError,
  BackupIoError,
  BackupLocked,
  BackupNeedsReindex,
  BackupNotFound,
  StagedFileMismatch,
  type AppendError,
  type OpenError
} from "./errors.js"

// where a backup lives
export {
  BackupMappingExists,
  BackupsDb,
  EmptyBackupPath,
  UnsupportedBackend,
  type BackupLocation,
  type BackupsDbError,
  type BackupsDbOptions,
  type BackupsDbService,
  type LocateResult
} from "./locate/BackupsDb.js"
export { BackupLocateError, UserBackups, type UserBackupOpenError, type UserBackupsShape } from "./locate/UserBackups.js"
export { makeUserBackups, userBackupsLayer, type WriterExtras } from "./locate/userBackupsLive.js"

// opening
export { isHeldInProcess, lockDataFile, type LockedDataFile, type LockOptions } from "./dataFileLock.js"
export { checkIndexPresent, dataFileSize, indexPathOf, lockBackup, openBackup, type BackupFiles } from "./openBackup.js"

// reading
export { indexSummaryOf, readIndexSnapshot, type ChunkFigures, type IndexSnapshot, type IndexSummary } from "./index/summary.js"
export { indexQueries, type IndexQueries } from "./index/queries.js"
export type { ChunkRow, MailboxRow, MessageRow, RecordRow, SeenRow, SieveRow, SubscriptionRow } from "./index/rows.js"
export {
  byStorageOrder,
  makeReader,
  openForRead,
  type BackupReader,
  type SequentialMessages,
  type MailboxWithRecords,
  type OpenForReadOptions,
  type ReadError
} from "./read/BackupReader.js"
export { mailboxDlist, parseStoredList, recordDlist, type MailboxFields, type RecordFields } from "./read/mailboxDlist.js"
export { openAtTime, type PointInTimeOptions, type PointInTimeView } from "./read/pointInTime.js"

// writing
export { openForAppend, type AppendResult, type BackupWriter, type OpenForAppendOptions } from "./write/BackupWriter.js"
export { partDigests, readMemberDigests, type MemberDigestOptions, type MemberDigests } from "./write/MemberDigest.js"
export { renameLines } from "./write/renameLines.js"

// maintenance
export {
  formatProblems,
  verifyBackup,
  verifyFile,
  VERIFY_FULL,
  VERIFY_QUICK,
  type VerifyCheck,
  type VerifyError,
  type VerifyFileOptions,
  type VerifyLevel,
  type VerifyProblem,
  type VerifyReport
} from "./maintain/verify.js"
export {
  rebuildIndex,
  reindexFile,
  type RebuildResult,
  type ReindexError,
  type ReindexOptions,
  type ReindexProblem,
  type ReindexRejection,
  type ReindexReport
} from "./maintain/reindex.js"
export { digestOfSavedState } from "./format/sha1State.js"
export { receiveBackup, type BackupReceiver, type ReceivedBackup, type ReceiveOptions } from "./maintain/receiveBackup.js"
export { compactRequired, type SizeOptions } from "./maintain/compactRules.js"
export {
  compactBackup,
  CompactFailed,
  type CompactError,
  type CompactOptions,
  type CompactReadError,
  type CompactReport
} from "./maintain/compact.js"
