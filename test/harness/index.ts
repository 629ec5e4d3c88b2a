/**
 * The interop harness for real Cyrus 3.6.1 (docs/testing.md): instances under master on
 * loopback, mail, clients, tool runners and the test-only csync client and backup inspection.
 * Tests and `npm run bench:sync` (bench/sync.ts) import it from here; steps.ts, which asserts
 * with vitest's `expect`, is imported on its own by the tests that use it.
 */
export * from "./backupState.js"
export * from "./csync.js"
export * from "./cyrus.js"
export * from "./imap.js"
export * from "./instances.js"
export * from "./lmtp.js"
export * from "./mail.js"
export * from "./managesieve.js"
export * from "./populate.js"
export * from "./saslauthd.js"
export * from "./syslog.js"
export * from "./telemetryLog.js"
export * from "./tools.js"
export { asCyrusArgv, CYRUS_BIN, cyrusIds, cyrusProgram, SETPRIV } from "../support/cyrus.js"
export * from "./Wire.js"
