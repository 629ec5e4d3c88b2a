/** Moved to src/bench/harness/cyrus.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../../src/bench/harness/cyrus.js"
