import { toFixedWidth, type FixedWidthValues } from '../../crypto/codec';
import type { PublicKey, SecretKey } from '../../crypto/paillier';
import { randomBetween, randomBits } from '../../crypto/random';
import { SPREAD_SCALE } from '../../encoding/lower-bound';
import { mapConcurrent } from '../../concurrency';
import { invalidInput, protocolState } from '../../errors';
import type * as wire from '@fnn/proto';
import type { C1Answer, C1QueryContext } from '../module';
import type { Ranking } from '../ranking';
import type { Contribution, GroupLayout } from './messages';
import { FastPeer } from './peer';
import { randomBytes } from 'node:crypto';
import type { ProgressListener } from '../progress';
import type { FastQueryForC1 } from './doctor';
import { ALPHA_BITS, broadcast, checkShares, shareValue, type Family, type PackingParams } from './params';

// The fast protocol, C1's side (docs/PROTOCOLS.md §3.5-§3.7). Per group of G records and per family (the
// block bound, then the distance):
//   C1: E2(pack <x, u>) = prod_i E2(P_i)^(u_i)        one multi-exponentiation
//   C2: E1(pack <x, v> + t) = prod_i E1(P'_i)^(v_i) E1(t), and E2(-t)
//   C1: decrypts pack(<x,v> + t) with its own key, re-encrypts under C2's key,
//       adds E2(-t): E2(pack <x, y + O>), then the record and query constants:
//       E2(pack value) with value = |x - y|^2 (or the shifted bound) in every slot.
// C2 decrypts one ciphertext per group, only ever under the per-query mask
// alpha v + beta. Groups are visited best-first by their smallest bound and the
// search stops when the next group's smallest bound exceeds the k-th best
// distance, so most groups never have their distances computed.

/** C1's packed records: the groups in slot order, and their columns under C2's key. */
export interface PackedRecordSource {
  params: PackingParams;
  /** Records in the collection (candidates are numbered 0..count-1 in upload order). */
  count: number;
  groups: GroupLayout[];
  /** The collection's id (empty before its first upload), so C2 can refuse a replica of another collection. */
  collectionId: Buffer;
  /** A group's columns as stored (bytes, one ciphertext per coordinate) and its constant. */
  columns(group: number, family: Family): Promise<{ columns: FixedWidthValues; constant: bigint }>;
}

/** C1's crypto for the fast protocol: C2's public key, C1's own key pair, and the heavy multi-exponentiation. */
export interface FastC1Crypto {
  pk2: PublicKey; // pk2
  sk1: SecretKey; // sk1
  multiExp(bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint): Promise<bigint>;
}

/** The per-query order-preserving mask, in the form that keeps every slot non-negative. */
class PackedMask {
  readonly alpha = randomBetween(1n << BigInt(ALPHA_BITS - 1), 1n << BigInt(ALPHA_BITS));
  /** Distances: alpha D + beta. */
  readonly beta: bigint;
  /** Bounds: alpha (LB + Z) + gamma = alpha LB + K^2 d_b beta, so C2 compares bound > K^2 d_b (alpha D + beta). */
  readonly gamma: bigint;

  constructor(p: PackingParams) {
    const scale = SPREAD_SCALE * SPREAD_SCALE * BigInt(p.blockSize);
    const shifted = this.alpha * p.boundShift;
    this.beta = shifted / scale + 1n + randomBits(ALPHA_BITS);
    this.gamma = scale * this.beta - shifted;
  }
}

/** A packed value must stay below N/2 of both keys, or the answer would wrap and be wrong. */
export function assertFits(p: PackingParams, ...keys: PublicKey[]): void {
  for (const key of keys)
    if (p.groupSize * p.slotBits > key.bits - 2)
      throw invalidInput(`the collection's packing needs ${p.groupSize * p.slotBits + 2}-bit keys, this key has ${key.bits}`);
}

/** Groups whose bounds are computed at once (C1 and C2): enough to keep a pool of a few threads busy. */
export const GROUPS_AT_ONCE = 4;

export async function fastSearch(
  ctx: { crypto: FastC1Crypto; peer: FastPeer },
  records: PackedRecordSource,
  query: FastQueryForC1,
  shareTicket: string,
  k: number,
  requestId: string,
  onProgress: ProgressListener = () => {},
): Promise<Ranking> {
  const { crypto, peer } = ctx;
  const pk2 = crypto.pk2;
  const p = records.params;
  checkShares(p, query.shares, 'the query shares');
  assertFits(p, pk2, crypto.sk1.publicKey);
  const mask = new PackedMask(p);
  const G = p.groupSize;
  const ones = broadcast(1n, p.slotBits, G);
  const queryConstant: Record<Family, bigint> = {
    distance: pk2.mulPlain(query.distanceConstant, ones),
    bound: pk2.mulPlain(query.boundConstant, ones),
  };
  // In bytes once per query: every group's multi-exponentiation reads them.
  const share: Record<Family, FixedWidthValues> = {
    distance: toFixedWidth(query.shares.distance, 'share'),
    bound: toFixedWidth(query.shares.bound, 'share'),
  };

  /** E2(pack value) of one group and family, from C2's contribution. */
  const packedValue = async (family: Family, c: Contribution): Promise<bigint> => {
    const { columns, constant } = await records.columns(c.group, family);
    const ours = await crypto.multiExp(columns, share[family], pk2.n2); // E2(pack <x, u>)
    const theirs = pk2.encrypt(crypto.sk1.decrypt(c.masked)); // E2(pack(<x, v> + t))
    const inner = pk2.add(pk2.add(ours, theirs), c.negatedMask); // E2(pack <x, y + O>)
    return pk2.add(pk2.add(constant, pk2.mulPlain(inner, -2n)), queryConstant[family]);
  };

  // Progress counts groups: the unit of work here (one multi-exponentiation and one decryption each).
  const groupCount = records.groups.length;
  const boundsStarted = Date.now();
  onProgress({ phase: 'lower-bounds', done: 0, total: groupCount, rejected: 0 });
  const opened = await peer.fastOpen(
    pk2.fingerprint(),
    crypto.sk1.publicKey.fingerprint(),
    k,
    requestId,
    shareTicket,
    records.groups,
    records.collectionId,
  );
  if (opened.length !== records.groups.length) throw protocolState('C2 sent bound contributions for other groups');
  // Several groups at once: each is a small multi-exponentiation and a round
  // trip to the worker pool, so one at a time would leave the cores idle.
  let boundsDone = 0;
  const bounds = await mapConcurrent(opened, GROUPS_AT_ONCE, async (c) => {
    const value = await packedValue('bound', c);
    onProgress({ phase: 'lower-bounds', done: ++boundsDone, total: groupCount, rejected: 0 });
    return { group: c.group, value: pk2.addPlain(pk2.mulPlain(value, mask.alpha), broadcast(mask.gamma, p.slotBits, G)) };
  });
  const lowerBoundMs = Date.now() - boundsStarted;
  let visited = 0;
  onProgress({ phase: 'candidates', done: 0, total: groupCount, rejected: 0 });
  let next = await peer.fastBounds(bounds);
  while (!next.done) {
    onProgress({ phase: 'candidates', done: visited, total: groupCount, rejected: next.rejected });
    const c = next.contribution;
    if (!c || !records.groups.some((g) => g.group === c.group)) throw protocolState('C2 asked for a group that does not exist');
    const value = await packedValue('distance', c);
    const masked = pk2.addPlain(pk2.mulPlain(value, mask.alpha), broadcast(mask.beta, p.slotBits, G));
    next = await peer.fastDistance(c.group, masked);
    visited++;
  }
  // The groups not visited were pruned: every group is settled.
  onProgress({ phase: 'candidates', done: groupCount, total: groupCount, rejected: next.rejected });
  return { candidates: await peer.fastFinish(), rejected: next.rejected, lowerBoundMs };
}

/** One whole fast query at C1 (§3.5-§3.7): the ranking, and the winners sealed under k; no retrieval at C2. */
export async function answerFastQuery(ctx: C1QueryContext, q: wire.FastQuery): Promise<C1Answer & { ranking: Ranking }> {
  const records = ctx.collection.packedSnapshot();
  const shares = checkShares(
    records.params,
    { distance: q.distanceShare.map(shareValue), bound: q.boundShare.map(shareValue) },
    'the query shares',
  );
  const pk2 = ctx.fast.pk2;
  const [distanceConstant, boundConstant] = ctx.codec.fromCiphers([q.distanceConstant, q.boundConstant]);
  if (!pk2.areValidCiphertexts([distanceConstant, boundConstant])) throw invalidInput('query constant: invalid ciphertext');
  if (records.count === 0) throw invalidInput('the collection is empty');
  const k = Math.min(ctx.k, records.count);
  const peer = new FastPeer(await ctx.openSession(), randomBytes(12).toString('hex'));
  try {
    const query = { shares, distanceConstant, boundConstant };
    const ranking = await fastSearch({ crypto: ctx.fast, peer }, records, query, q.shareTicket, k, ctx.requestId, ctx.onProgress);
    const neighbours = ranking.candidates.map((c) => ({ encryptedId: records.encryptedId(c), sealedImage: records.sealedImage(c) }));
    return {
      ranking,
      answer: { $case: 'fast', value: { neighbours } },
      stats: { total: BigInt(records.count), bound: { rejected: BigInt(ranking.rejected), ms: BigInt(ranking.lowerBoundMs ?? 0) } },
    };
  } finally {
    peer.close();
  }
}
