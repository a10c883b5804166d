import { SPREAD_SCALE } from '../../encoding/lower-bound';
import type { EncryptedQuery, EncryptedStats } from './records';
import { smSquare, type C1Context } from './sm';

/**
 * ssedlb (Algorithm 2, docs/PROTOCOLS.md §2.4) for many records at once: E(LBint(x, q)) with
 * LBint = K^2 (S_x - S_q)^2 + (T_x - T_q)^2 - 2 (T_x + T_q) - 1 <= K^2 d |x - q|^2
 * (see encoding/lower-bound.ts for why this integer form never rejects the
 * true neighbour). All 2n squarings go to C2 in one batch.
 */
export async function ssedlb(ctx: C1Context, records: EncryptedStats[], query: EncryptedQuery): Promise<bigint[]> {
  const pk = ctx.crypto.publicKey;
  const differences = records.flatMap((r) => [
    pk.add(r.sum, query.negatedSum), // E(S_x - S_q)
    pk.add(r.spread, query.negatedSpread), // E(T_x - T_q)
  ]);
  const squares = await smSquare(ctx, 'ssedlb-sm', differences);
  const scale = SPREAD_SCALE * SPREAD_SCALE;
  return records.map((r, i) => {
    const sumTerm = pk.mulPlain(squares[2 * i], scale);
    const spreadTerm = squares[2 * i + 1];
    const slack = pk.mulPlain(pk.add(r.spread, query.spread), -2n); // E(-2 (T_x + T_q))
    return pk.addPlain(pk.add(pk.add(sumTerm, spreadTerm), slack), -1n);
  });
}
