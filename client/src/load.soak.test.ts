import { describe, expect, it } from 'vitest';
import { runLoad } from './bench/load';

// `npm run bench:load`, small: 8 concurrent clients mixing `fnn upload` and
// `fnn query` against one daemon pair. Every operation must succeed and every
// answer must be the plaintext nearest neighbours of what was stored when the
// query started. Timing is reported by the bench, never asserted here.

describe('8 concurrent clients uploading and querying', () => {
  it('every upload succeeds and every answer is exact', async () => {
    const run = await runLoad({ bits: 512, clients: 8, ops: 4, size: 8, anchors: 6 });
    const failed = run.operations.filter((o) => !o.ok).map((o) => `client ${o.client} ${o.kind} (${o.detail}): ${o.error}`);
    expect(failed, 'operations that failed under load').toEqual([]);
    const inexact = run.operations.filter((o) => o.exact === false).map((o) => `client ${o.client} (${o.detail}): ${o.error}`);
    expect(inexact, 'answers that differ from the plaintext reference').toEqual([]);
    const queries = run.operations.filter((o) => o.kind === 'query');
    const uploads = run.operations.filter((o) => o.kind === 'upload');
    expect([queries.length, uploads.length], 'queries and uploads were both run').toEqual([21, 11]);
    expect(
      queries.some((q) => q.detail.startsWith('an uploaded image')),
      'some queries look for an image uploaded under load',
    ).toBe(true);
    expect(run.recordsAtEnd, 'every upload is in the collection').toBe(6 + uploads.length);
  });
});
