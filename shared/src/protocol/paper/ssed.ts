import type { PaperStep } from './messages';
import type { EncryptedQuery } from './records';
import { smSquare, type C1Context } from './sm';

/**
 * ssed (docs/PROTOCOLS.md §2.3): E(|x - q|^2) at C1, from d independent squarings batched into
 * ceil(d / MAX_VALUES_PER_MESSAGE) round trips.
 */
export async function ssed(ctx: C1Context, step: PaperStep, record: bigint[], query: EncryptedQuery): Promise<bigint> {
  const pk = ctx.crypto.publicKey;
  const differences = record.map((x, i) => pk.add(x, query.negatedPixels[i])); // E(x_i - q_i)
  const squares = await smSquare(ctx, step, differences);
  return squares.reduce((acc, c) => pk.add(acc, c));
}
