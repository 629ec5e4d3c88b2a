/**
 * What the uploader needs of the store beyond the lock registry, in a module of its own so
 * that Uploader.ts can load it on first use: a static import would bring SQLite and the index
 * code into every backupd start, whether object storage is configured or not.
 */
export { dataFileSize, openBackup } from "../store/index.js"
