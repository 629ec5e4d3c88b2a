/** Moved to src/bench/harness/managesieve.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/managesieve.js"
