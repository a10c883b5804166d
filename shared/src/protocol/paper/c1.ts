import { randomBytes } from 'node:crypto';
import type * as wire from '@fnn/proto';
import { invalidInput } from '../../errors';
import { residueToBytes } from '../../wire/codec';
import type { C1Answer, C1QueryContext } from '../module';
import { PaperPeer } from './peer';
import type { Ranking } from '../ranking';
import { bf } from './bf';
import { fnn } from './fnn';
import type { EncryptedQuery } from './records';
import { blindForRetrieval } from './retrieval';
import type { C1Context } from './sm';

// The paper's protocols at C1 (docs/PROTOCOLS.md §2.5-§2.7): one whole query,
// from the doctor's PaperQuery to C1's half of the retrieval.

/** Algorithm 3 and the brute-force baseline: the same session, the same retrieval. */
const SEARCHES = { fnn, bf };

/** The doctor's ciphertexts, each checked to be one under pk2. */
function decodeQuery(ctx: C1QueryContext, q: wire.PaperQuery, dimension: number): EncryptedQuery {
  if (q.negatedPixels.length !== dimension) throw invalidInput(`query has ${q.negatedPixels.length} pixels, expected ${dimension}`);
  const pk = ctx.crypto.publicKey;
  const ciphers = (list: Uint8Array[], what: string) => {
    const values = ctx.codec.fromCiphers(list);
    if (!pk.areValidCiphertexts(values)) throw invalidInput(`${what}: invalid ciphertext`);
    return values;
  };
  const [negatedSum, negatedSpread, spread] = ciphers([q.negatedSum, q.negatedSpread, q.spread], 'query statistics');
  return { negatedPixels: ciphers(q.negatedPixels, 'query pixels'), negatedSum, negatedSpread, spread };
}

/** fnn or bf at C1: rank with C2, then blind each winner for retrieval (step 7). */
export async function answerPaperQuery(
  ctx: C1QueryContext,
  name: 'fnn' | 'bf',
  q: wire.PaperQuery,
): Promise<C1Answer & { ranking: Ranking }> {
  const run = SEARCHES[name];
  const shape = ctx.collection.shape();
  const query = decodeQuery(ctx, q, shape ? shape.width * shape.height : 0);
  const records = ctx.collection.snapshot();
  if (records.count === 0) throw invalidInput('the collection is empty');
  const k = Math.min(ctx.k, records.count);
  const peer = new PaperPeer(await ctx.openSession(), randomBytes(12).toString('hex'));
  try {
    const pk = ctx.crypto.publicKey;
    await peer.open(pk.fingerprint(), k, ctx.requestId);
    const session: C1Context = { crypto: ctx.crypto, peer };
    const ranking = await run(session, records, query, k, ctx.onProgress);
    const neighbours: wire.PaperNeighbour[] = [];
    const blinded: bigint[][] = [];
    for (const candidate of ranking.candidates) {
      const b = blindForRetrieval(pk, await records.pixels(candidate));
      neighbours.push({ encryptedId: records.encryptedId(candidate), blinding: b.blinding.map(residueToBytes) });
      blinded.push(b.blinded);
    }
    const retrievalTicket = await peer.retrieval(blinded);
    const bound = ranking.lowerBoundMs === undefined ? undefined : { rejected: BigInt(ranking.rejected), ms: BigInt(ranking.lowerBoundMs) };
    return { ranking, answer: { $case: name, value: { neighbours, retrievalTicket } }, stats: { total: BigInt(records.count), bound } };
  } finally {
    peer.close();
  }
}
