/** Moved to src/bench/harness/saslauthd.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/saslauthd.js"
