/** The `restore` tool: see docs/restore.md. */
export * from "./errors.js"
export { mailboxItem } from "./mailboxItem.js"
export * from "./options.js"
export * from "./plan.js"
export { describeFailure, runRestore, type RestoreIo } from "./restore.js"
export * from "./syncClient.js"
export * from "./transfer.js"
export * from "./userState.js"
