import { protocolState } from '../../errors';
import { OrderMask } from './masking';
import type { Ranking } from '../ranking';
import type { ProgressListener } from '../progress';
import type { EncryptedQuery, RecordSource } from './records';
import { ssed } from './ssed';
import type { C1Context } from './sm';

/** bf, the paper's baseline (docs/PROTOCOLS.md §2.6): SSED for every record; C2 keeps the k smallest. */
export async function bf(
  ctx: C1Context,
  records: RecordSource,
  query: EncryptedQuery,
  k: number,
  onProgress: ProgressListener = () => {},
): Promise<Ranking> {
  const mask = new OrderMask(ctx.crypto.publicKey, records.dimension);
  const distances = [];
  const n = records.count;
  onProgress({ phase: 'distances', done: 0, total: n, rejected: 0 });
  for (let candidate = 0; candidate < n; candidate++) {
    const distance = await ssed(ctx, 'ssed-sm', await records.pixels(candidate), query);
    distances.push({ candidate, value: mask.distance(distance) });
    onProgress({ phase: 'distances', done: candidate + 1, total: n, rejected: 0 });
  }
  const next = await ctx.peer.bounds('bf-distance', distances, []);
  if (!next.done) throw protocolState('C2 asked for a candidate in brute force');
  return { candidates: await ctx.peer.finish(), rejected: 0 };
}
