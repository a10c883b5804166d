import { randomBytes } from 'node:crypto';
import type { EvaluatorCrypto } from '../crypto/backend';
import { invalidInput } from '../errors';
import { bf } from './bf';
import type { FastQueryForC1 } from './fast/doctor';
import { fastSearch, type FastEvaluatorCrypto, type PackedRecordSource } from './fast/fast';
import { fnn } from './fnn';
import type { SessionTransport } from './messages';
import { KeyHolderPeer } from './peer';
import type { ProgressListener } from './progress';
import type { EncryptedQuery, RecordSource } from './records';
import { blindForRetrieval } from './retrieval';

export type ProtocolName = 'fast' | 'fnn' | 'bf';

export interface SearchResult {
  /** Candidate positions of the neighbours, nearest first. */
  candidates: number[];
  /** Step 7: C1's half of each neighbour image (r); C2 holds m + r under the ticket. */
  blindings: bigint[][];
  ticket: string;
  rejected: number;
  total: number;
  lowerBoundMs?: number;
}

/** One whole query at C1: open a session with C2, search, and prepare retrieval. */
export async function search(options: {
  crypto: EvaluatorCrypto;
  transport: SessionTransport;
  records: RecordSource;
  query: EncryptedQuery;
  protocol: ProtocolName;
  k: number;
  requestId: string;
  /** Phase and counts as the search runs (never values: see progress.ts). */
  onProgress?: ProgressListener;
}): Promise<SearchResult> {
  const { crypto, records, query, protocol } = options;
  if (records.count === 0) throw invalidInput('the collection is empty');
  if (query.negatedPixels.length !== records.dimension)
    throw invalidInput(`query has ${query.negatedPixels.length} pixels, the collection ${records.dimension}`);
  const k = Math.min(options.k, records.count);
  const peer = new KeyHolderPeer(options.transport, randomBytes(12).toString('hex'));
  try {
    await peer.open(crypto.publicKey.fingerprint(), k, options.requestId);
    const ctx = { crypto, peer };
    if (protocol === 'fast') throw invalidInput('the fast protocol is run by searchPacked');
    const ranking =
      protocol === 'fnn' ? await fnn(ctx, records, query, k, options.onProgress) : await bf(ctx, records, query, k, options.onProgress);
    const blindings: bigint[][] = [];
    const blinded: bigint[][] = [];
    for (const candidate of ranking.candidates) {
      const b = blindForRetrieval(crypto.publicKey, await records.pixels(candidate));
      blindings.push(b.blinding);
      blinded.push(b.blinded);
    }
    const ticket = await peer.retrieval(blinded);
    return { candidates: ranking.candidates, blindings, ticket, rejected: ranking.rejected, total: records.count, lowerBoundMs: ranking.lowerBoundMs };
  } finally {
    peer.close();
  }
}

/** One whole fast query at C1: the ranking; the results go back sealed under k, with no retrieval step at C2. */
export async function searchPacked(options: {
  crypto: FastEvaluatorCrypto;
  transport: SessionTransport;
  records: PackedRecordSource;
  query: FastQueryForC1;
  shareTicket: string;
  k: number;
  requestId: string;
  onProgress?: ProgressListener;
}): Promise<{ candidates: number[]; rejected: number; total: number; lowerBoundMs?: number }> {
  const { records } = options;
  if (records.count === 0) throw invalidInput('the collection is empty');
  const k = Math.min(options.k, records.count);
  const peer = new KeyHolderPeer(options.transport, randomBytes(12).toString('hex'));
  try {
    const ranking = await fastSearch({ crypto: options.crypto, peer }, records, options.query, options.shareTicket, k, options.requestId, options.onProgress);
    return { candidates: ranking.candidates, rejected: ranking.rejected, total: records.count, lowerBoundMs: ranking.lowerBoundMs };
  } finally {
    peer.close();
  }
}
