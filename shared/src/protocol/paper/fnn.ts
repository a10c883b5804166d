import { protocolState } from '../../errors';
import type { Ranking } from '../ranking';
import { OrderMask } from './masking';
import type { ProgressListener } from '../progress';
import type { EncryptedQuery, RecordSource } from './records';
import { ssed } from './ssed';
import { ssedlb } from './ssedlb';
import type { C1Context } from './sm';

/**
 * fnn: Algorithm 3 (docs/PROTOCOLS.md §2.5), C1's side, for the k nearest neighbours. C2 drives the
 * loop of step 5: after each distance it names the next candidate whose bound
 * does not exceed the current k-th best, or says it is done.
 */
export async function fnn(
  ctx: C1Context,
  records: RecordSource,
  query: EncryptedQuery,
  k: number,
  onProgress: ProgressListener = () => {},
): Promise<Ranking> {
  const mask = new OrderMask(ctx.crypto.publicKey, records.dimension);
  const n = records.count;
  onProgress({ phase: 'lower-bounds', done: 0, total: n, rejected: 0 });
  // Step 2: the seeds are the first k records (the tie rule favours them anyway).
  const seedCount = Math.min(k, records.count);
  const seeds = [];
  for (let candidate = 0; candidate < seedCount; candidate++) {
    const distance = await ssed(ctx, 'ssed-sm', await records.pixels(candidate), query);
    seeds.push({ candidate, value: mask.distance(distance) });
    onProgress({ phase: 'lower-bounds', done: candidate + 1, total: n, rejected: 0 });
  }
  // Step 3: bounds for every other record.
  const boundsStarted = Date.now();
  const stats = (await records.stats()).slice(seedCount);
  const bounds = (await ssedlb(ctx, stats, query)).map((b, i) => ({
    candidate: seedCount + i,
    value: mask.bound(b),
  }));
  // Step 4, then step 5 as C2 asks.
  const lowerBoundMs = Date.now() - boundsStarted;
  onProgress({ phase: 'lower-bounds', done: n, total: n, rejected: 0 });
  // A record is settled once its distance is computed or C2 rejected it by its bound.
  let distances = seedCount;
  const settled = (rejected: number) => onProgress({ phase: 'candidates', done: Math.min(n, distances + rejected), total: n, rejected });
  settled(0);
  let next = await ctx.peer.bounds('fnn-bounds', seeds, bounds);
  while (!next.done) {
    if (next.candidate < seedCount || next.candidate >= records.count) throw protocolState('C2 asked for a candidate that does not exist');
    settled(next.rejected);
    const distance = await ssed(ctx, 'ssed-sm', await records.pixels(next.candidate), query);
    distances++;
    next = await ctx.peer.distance('fnn-distance', { candidate: next.candidate, value: mask.distance(distance) });
  }
  settled(next.rejected);
  // Step 6.
  return { candidates: await ctx.peer.finish(), rejected: next.rejected, lowerBoundMs };
}
