import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: two test files at a time, each running ORT on one thread (see test/helpers/engine.ts).
    maxWorkers: 2,
  },
});
