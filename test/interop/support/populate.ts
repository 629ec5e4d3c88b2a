/** Moved to src/bench/harness/populate.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/populate.js"
