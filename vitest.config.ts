import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Child processes rather than worker threads: each test file gets its own copy of the native addon and its
    // engine threads, and a crash in one file cannot take the others down.
    pool: 'forks',
    // Two cores: more parallel files only make each slower.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
