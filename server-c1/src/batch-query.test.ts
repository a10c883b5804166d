import { describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { plaintextNearest } from '@fnn/shared';
import { BATCH_CONCURRENCY } from './database-service';
import {
  batchQuery,
  paperRequest,
  query,
  randomImage,
  RPC_DEADLINE_MS,
  useFixture,
  UNKNOWN_TICKET,
  withFast,
  withTag,
  type Fixture,
  failureOf,
  BF,
} from './testing/fixtures';

// BatchQuery on real C1 and C2 daemons: FAST and FNN queries on one stream,
// one failed query reported in its own reply, and a long batch limited to
// BATCH_CONCURRENCY queries at once so another doctor's query is not starved.

let f: Fixture;

useFixture({}, (started) => (f = started));

describe('BatchQuery', () => {
  it('answers FAST and FNN queries on one BatchQuery stream, and reports a failed one in its reply', async () => {
    const images = [randomImage(), randomImage()];
    const requests = [
      withTag(await f.fastRequest(images[0]), 'fast'),
      withTag(await f.paperQuery(images[1]), 'fnn'),
      withTag(withFast(await f.fastRequest(images[0]), { shareTicket: UNKNOWN_TICKET }), 'bad-ticket'),
    ];
    const replies = await batchQuery(f.main.db, requests);
    const byTagOf = new Map(replies.map((r) => [r.tag, r]));
    expect([...byTagOf.keys()].sort(), 'one reply per query').toEqual(['bad-ticket', 'fast', 'fnn']);
    const fast = byTagOf.get('fast')!;
    expect(failureOf(fast), 'fast: no failure').toBeUndefined();
    expect(f.openResults(fast).map((r) => r.id)).toEqual([plaintextNearest(f.main.collection, images[0], 1)[0].id]);
    const fnn = byTagOf.get('fnn')!;
    expect(failureOf(fnn), 'fnn: no failure').toBeUndefined();
    expect((await f.redeem(fnn)).map((r) => r.id)).toEqual([plaintextNearest(f.main.collection, images[1], 1)[0].id]);
    const bad = byTagOf.get('bad-ticket')!;
    expect(failureOf(bad)?.code, 'an unknown share ticket fails that query only').toBe('NOT_FOUND');
    expect(bad.stats, 'a failed query reports no search').toBeUndefined();
  });

  it("does not let a long batch starve another doctor's query: at most BATCH_CONCURRENCY of a stream run at once", async () => {
    const size = 6;
    const images = Array.from({ length: size }, () => randomImage());
    const requests: wire.QueryRequest[] = [];
    for (const [i, pixels] of images.entries()) requests.push(withTag(await f.paperQuery(pixels, BF), `batch-${i}`));
    const order: string[] = [];
    let other: Promise<void> | undefined;
    const otherImage = randomImage();
    await new Promise<void>((resolve, reject) => {
      const call = f.main.db.batchQuery({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
      call.on('data', (r: wire.QueryReply) => {
        expect(failureOf(r), `${r.tag}: no failure`).toBeUndefined();
        order.push(r.tag);
        // Once the batch is under way, another doctor asks one query.
        other ??= f
          .wireQuery(otherImage)
          .then((q) => query(f.main.db, paperRequest(q, BF)))
          .then(async (reply) => {
            order.push('other');
            expect(
              (await f.redeem(reply)).map((n) => n.id),
              'the other query is exact',
            ).toEqual([plaintextNearest(f.main.collection, otherImage, 1)[0].id]);
          });
      });
      call.on('error', reject);
      call.on('end', () => resolve());
      for (const r of requests) call.write(r);
      call.end();
    });
    await other;
    expect(order.filter((t) => t.startsWith('batch')).length, 'every batch query answered').toBe(size);
    const after = order.length - 1 - order.indexOf('other');
    // The other query runs beside at most BATCH_CONCURRENCY batch queries; the ones queued behind those finish after it
    // (without the limit it finishes last: every batch query started before it and they all advance together).
    expect(after, `replies after the other doctor's query (order: ${order.join(', ')})`).toBeGreaterThanOrEqual(
      size - 2 - BATCH_CONCURRENCY,
    );
  });
});
