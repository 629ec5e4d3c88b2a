/** Backup partitions: selection for new backups, hashed directories, new data files. */
export * from "./dirHash.js"
export * from "./errors.js"
export * from "./Partitions.js"
export * from "./selection.js"
