import { randomBytes } from 'node:crypto';
import type * as wire from '@fnn/proto';
import type { PublicKey } from '../../crypto/paillier';
import { invalidInput, protocolState } from '../../errors';
import { valuesPerMessage } from '../../wire/message-limit';
import type { C1Answer, C1QueryContext } from '../module';
import { PaperPeer } from './peer';
import type { Ranking } from '../ranking';
import { bf } from './bf';
import { fnn } from './fnn';
import type { EncryptedQuery } from './records';
import { blindedChunks, newBlindingSeed, retrievalChunks, type RetrievalImages } from './retrieval';
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

/**
 * Step 7 at C1 (§2.7): the winners' E(m + r) to C2 chunk by chunk, each below
 * the message limit; C2's answer to the last chunk is the doctor's ticket.
 */
async function sendRetrieval(peer: PaperPeer, pk: PublicKey, results: RetrievalImages, chunkValues: number): Promise<string> {
  const chunks = await peer.retrievalOpen(results.images.length, results.pixels, chunkValues);
  const expected = retrievalChunks(results.images.length * results.pixels, chunkValues);
  if (chunks !== expected) throw protocolState(`C2 expects ${chunks} retrieval chunks, not ${expected}`);
  let index = 0;
  let ticket: string | undefined;
  for await (const chunk of blindedChunks(pk, results, chunkValues)) {
    ticket = await peer.retrievalChunk(index, chunk, index === chunks - 1);
    index++;
  }
  if (ticket === undefined) throw protocolState('C2 gave no retrieval ticket');
  return ticket;
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
    const images = ranking.candidates.map((candidate) => ({ load: () => records.pixels(candidate), seed: newBlindingSeed() }));
    const chunkValues = ctx.retrievalChunkValues ?? valuesPerMessage(pk.cipherBytes);
    const retrievalTicket = await sendRetrieval(peer, pk, { pixels: query.negatedPixels.length, images }, chunkValues);
    const neighbours: wire.PaperNeighbour[] = ranking.candidates.map((candidate, i) => ({
      encryptedId: records.encryptedId(candidate),
      blindingSeed: images[i].seed,
      // C1 names the winners to the doctor anyway (E_k(ID)); their sealed records carry the metadata.
      sealedImage: records.sealedImage(candidate),
    }));
    const bound = ranking.lowerBoundMs === undefined ? undefined : { rejected: BigInt(ranking.rejected), ms: BigInt(ranking.lowerBoundMs) };
    return { ranking, answer: { $case: name, value: { neighbours, retrievalTicket } }, stats: { total: BigInt(records.count), bound } };
  } finally {
    peer.close();
  }
}
