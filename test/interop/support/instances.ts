/** Moved to src/bench/harness/instances.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/instances.js"
