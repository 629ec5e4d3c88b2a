import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One throwaway Ceph (S3) for the whole run, started by the first file that needs it.
    globalSetup: ["test/support/cephGlobalSetup.ts"],
    // Interop tests start real Cyrus processes; give them room.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: keep heavy interop files from fighting over them.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ["default"]
  }
})
