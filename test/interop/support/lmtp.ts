/** Moved to src/bench/harness/lmtp.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/lmtp.js"
