/** Moved to src/bench/harness/wire.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/wire.js"
