import { protocolState } from '../errors';
import { OrderMask } from './masking';
import type { Ranking } from './fnn';
import type { EncryptedQuery, RecordSource } from './records';
import { ssed } from './ssed';
import type { EvaluatorContext } from './sm';

/** The paper's baseline: SSED for every record; C2 keeps the k smallest. */
export async function bf(
  ctx: EvaluatorContext,
  records: RecordSource,
  query: EncryptedQuery,
  k: number,
): Promise<Ranking> {
  const mask = new OrderMask(ctx.crypto.publicKey, records.dimension);
  const distances = [];
  for (let candidate = 0; candidate < records.count; candidate++) {
    const distance = await ssed(ctx, 'ssed-sm', await records.pixels(candidate), query);
    distances.push({ candidate, value: mask.distance(distance) });
  }
  const next = await ctx.peer.bounds('bf-distance', distances, []);
  if (!next.done) throw protocolState('C2 asked for a candidate in brute force');
  return { candidates: await ctx.peer.finish(), rejected: 0 };
}
