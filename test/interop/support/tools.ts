/** Moved to src/bench/harness/tools.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/tools.js"
