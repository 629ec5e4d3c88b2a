/** Moved to src/bench/harness/mail.ts (shared with `npm run bench:sync`); re-exported for the tests. */
export * from "../../harness/mail.js"
