import { defineConfig } from 'vitest/config';

// `make soak`: the fault and load tests (*.soak.test.ts): daemons killed with
// SIGKILL mid-query and mid-upload, concurrent clients. Not in `make test`.
export default defineConfig({
  test: {
    include: ['{shared,server-c1,server-c2,client}/**/*.soak.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    // 20 kills with restarts take ~1 min on CI but 15 min on a loaded shared
    // machine (seen): the limit is there to end a hang, not to time the test.
    testTimeout: 2_400_000,
    hookTimeout: 120_000,
    // One at a time: each kills and restarts daemons and wants the cores.
    fileParallelism: false,
  },
});
