import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Interop tests start real Cyrus processes; give them room.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: keep heavy interop files from fighting over them.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ["default"]
  }
})
