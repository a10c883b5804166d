import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{shared,server-c1,server-c2,client,demo}/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
