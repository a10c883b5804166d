// ESLint (flat config) with typescript-eslint: run by `make lint` (and so by `make test`).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/', '**/dist/', 'proto/src/generated/', 'shared/build/', 'data/', 'demo/work/', 'bench/work/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // Unused values are mistakes; a leading underscore marks one kept on purpose (a callback's unused argument).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Off on purpose: a caught error may carry a secret (a bigint, a key, a path) in its message, so FNN's
      // errors replace it with their own one-line reason instead of chaining it (shared/src/errors.ts).
      'preserve-caught-error': 'off',
    },
  },
  {
    // The viewer's page runs in the browser (plain scripts, no bundler).
    files: ['client/viewer/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
  },
  {
    // The CLI's bin shim is CommonJS: npm links it before anything is built.
    files: ['client/bin/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
