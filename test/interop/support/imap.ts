/** Moved to src/bench/harness/imap.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/imap.js"
