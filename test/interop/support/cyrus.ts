/** Moved to src/bench/harness/cyrus.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/cyrus.js"
