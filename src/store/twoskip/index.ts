/** Cyrus 3.6 twoskip databases (the format of backups.db). */
export * from "./db.js"
export * from "./errors.js"
