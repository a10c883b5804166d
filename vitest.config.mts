import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{shared,server-common,server-c1,server-c2,client,demo,docs}/**/*.test.ts'],
    // *.soak.test.ts: faults and load, run by `make soak` (vitest.soak.config.mts).
    exclude: ['**/node_modules/**', '**/dist/**', '**/*.soak.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
