/** Finding a user's backup: backups.db (userid → data file path). */
export * from "./BackupsDb.js"
