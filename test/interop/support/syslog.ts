/** Moved to src/bench/harness/syslog.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/syslog.js"
