import { toFixedWidth, type FixedWidthValues } from '../../crypto/codec';
import type { PublicKey, SecretKey } from '../../crypto/paillier';
import { randomBetween, randomBits } from '../../crypto/random';
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
import { ALPHA_BITS, boundScale, broadcast, checkShares, FAMILIES, shareValue, type Family, type PackingParams } from './params';

// The fast protocol, C1's side (docs/PROTOCOLS.md §3.5-§3.7). Per group of G records and per family (the
// coarse bound for every group, the fine block bound for the groups C2 asks to refine, then the
// distance for the groups C2 asks for: the bound cascade of §3.5a):
//   C1: E2(pack <x, u>) = prod_i E2(P_i)^(u_i)        one multi-exponentiation
//   C2: E1(pack <x, v> + t) = prod_i E1(P'_i)^(v_i) E1(t), and E2(-t)
//   C1: decrypts pack(<x,v> + t) with its own key, re-encrypts under C2's key,
//       adds E2(-t): E2(pack <x, y + O>), then the record and query constants:
//       E2(pack value) with value = |x - y|^2 (or the shifted bound) in every slot.
// C2 decrypts one ciphertext per group, only ever under the per-query mask
// alpha v + beta. Groups are visited best-first by their best-known bound and the
// search stops when the next group's bound exceeds the k-th best distance, so
// most groups never have their fine bounds, and fewer still their distances, computed.

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
export class PackedMask {
  readonly alpha = randomBetween(1n << BigInt(ALPHA_BITS - 1), 1n << BigInt(ALPHA_BITS));
  /** Distances: alpha D + beta. */
  readonly beta: bigint;
  /** Bounds: alpha (LB + Z) + gamma = alpha LB + K^2 d_b beta, so C2 compares bound > K^2 d_b (alpha D + beta). */
  readonly gamma: bigint;
  /** Coarse bounds (§3.5a): alpha (LB_c + Z_c) + gamma_c = alpha LB_c + K^2 d_b m beta; gamma_c = m gamma > 0. */
  readonly gammaCoarse: bigint;

  constructor(p: PackingParams) {
    const scale = boundScale(p, 'bound');
    const shifted = this.alpha * p.boundShift;
    this.beta = shifted / scale + 1n + randomBits(ALPHA_BITS);
    this.gamma = scale * this.beta - shifted;
    this.gammaCoarse = boundScale(p, 'coarse') * this.beta - this.alpha * p.coarseShift;
  }
}

/** One stage of a fast query as C1 saw it (wire LevelStats; §3.5a). */
export interface LevelStats {
  level: 'coarse' | 'fine' | 'distance';
  groupsVisited: number;
  groupsPruned: number;
  recordsVisited: number;
  ms: number;
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
): Promise<Ranking & { levels: LevelStats[] }> {
  const { crypto, peer } = ctx;
  const pk2 = crypto.pk2;
  const p = records.params;
  checkShares(p, query.shares, 'the query shares');
  assertFits(p, pk2, crypto.sk1.publicKey);
  const mask = new PackedMask(p);
  const G = p.groupSize;
  const ones = broadcast(1n, p.slotBits, G);
  const queryConstants: Record<Family, bigint> = {
    distance: query.distanceConstant,
    bound: query.boundConstant,
    coarse: query.coarseConstant,
  };
  const queryConstant = Object.fromEntries(FAMILIES.map((f) => [f, pk2.mulPlain(queryConstants[f], ones)])) as Record<Family, bigint>;
  // In bytes once per query: every group's multi-exponentiation reads them.
  const share = Object.fromEntries(FAMILIES.map((f) => [f, toFixedWidth(query.shares[f], 'share')])) as Record<Family, FixedWidthValues>;
  const offset: Record<Family, bigint> = {
    distance: broadcast(mask.beta, p.slotBits, G),
    bound: broadcast(mask.gamma, p.slotBits, G),
    coarse: broadcast(mask.gammaCoarse, p.slotBits, G),
  };

  /** E2(pack (alpha value + offset)) of one group and family, from C2's contribution (§3.5, §3.5a, §3.6). */
  const maskedValue = async (family: Family, c: Contribution): Promise<bigint> => {
    const { columns, constant } = await records.columns(c.group, family);
    const ours = await crypto.multiExp(columns, share[family], pk2.n2); // E2(pack <x, u>)
    const theirs = pk2.encrypt(crypto.sk1.decrypt(c.masked)); // E2(pack(<x, v> + t))
    const inner = pk2.add(pk2.add(ours, theirs), c.negatedMask); // E2(pack <x, y + O>)
    const value = pk2.add(pk2.add(constant, pk2.mulPlain(inner, -2n)), queryConstant[family]);
    return pk2.addPlain(pk2.mulPlain(value, mask.alpha), offset[family]);
  };

  const occupied = new Map(records.groups.map((g) => [g.group, g.members.filter((m) => m >= 0).length]));
  const stage = {
    coarse: { groups: 0, records: 0, ms: 0 },
    fine: { groups: 0, records: 0, ms: 0 },
    distance: { groups: 0, records: 0, ms: 0 },
  };
  /** Each group at most once per stage: a C2 that asked again would make the search loop. */
  const seen = { fine: new Set<number>(), distance: new Set<number>() };
  const visit = (level: keyof typeof stage, group: number) => {
    const records = occupied.get(group);
    if (records === undefined) throw protocolState('C2 asked for a group that does not exist');
    if (level !== 'coarse') {
      if (seen[level].has(group) || (level === 'distance' && !seen.fine.has(group)))
        throw protocolState(`C2 asked for group ${group} out of turn`);
      seen[level].add(group);
    }
    stage[level].groups++;
    stage[level].records += records;
  };
  // Wall time per stage: C1's own work on a stage, and C2's reply that carries that stage's contributions.
  let clock = Date.now();
  const charge = (level: keyof typeof stage) => {
    const now = Date.now();
    stage[level].ms += now - clock;
    clock = now;
  };

  // Progress counts groups: the unit of work here (one multi-exponentiation and one decryption each).
  const groupCount = records.groups.length;
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
  if (opened.length !== groupCount || new Set(opened.map((c) => c.group)).size !== groupCount)
    throw protocolState('C2 sent bound contributions for other groups');
  for (const c of opened) visit('coarse', c.group);
  // Several groups at once: each is a small multi-exponentiation and a round
  // trip to the worker pool, so one at a time would leave the cores idle.
  let boundsDone = 0;
  const bounds = await mapConcurrent(opened, GROUPS_AT_ONCE, async (c) => {
    const value = await maskedValue('coarse', c);
    onProgress({ phase: 'lower-bounds', done: ++boundsDone, total: groupCount, rejected: 0 });
    return { group: c.group, value };
  });
  charge('coarse');
  onProgress({ phase: 'candidates', done: 0, total: groupCount, rejected: 0 });
  let next = await peer.fastBounds(bounds);
  let last: keyof typeof stage = 'coarse';
  for (;;) {
    last = next.refine ? 'fine' : next.contribution ? 'distance' : last;
    charge(last);
    if (next.done) break;
    onProgress({ phase: 'candidates', done: stage.distance.groups, total: groupCount, rejected: next.rejected });
    if (next.refine) {
      // "refine these groups": their fine bounds, the next level of the cascade (§3.5a).
      if (next.refine.length === 0 || new Set(next.refine.map((c) => c.group)).size !== next.refine.length)
        throw protocolState('C2 asked to refine no group, or one twice');
      for (const c of next.refine) visit('fine', c.group);
      const refined = await mapConcurrent(next.refine, GROUPS_AT_ONCE, async (c) => ({
        group: c.group,
        value: await maskedValue('bound', c),
      }));
      charge('fine');
      next = await peer.fastRefined(refined);
    } else {
      // "distance of group g" (§3.6).
      const c = next.contribution;
      if (!c) throw protocolState('C2 asked for nothing');
      visit('distance', c.group);
      const masked = await maskedValue('distance', c);
      charge('distance');
      next = await peer.fastDistance(c.group, masked);
    }
  }
  // The groups not visited were pruned: every group is settled.
  onProgress({ phase: 'candidates', done: groupCount, total: groupCount, rejected: next.rejected });
  const candidates = await peer.fastFinish();
  const levels: LevelStats[] = [
    {
      level: 'coarse',
      groupsVisited: stage.coarse.groups,
      groupsPruned: stage.coarse.groups - stage.fine.groups,
      recordsVisited: stage.coarse.records,
      ms: stage.coarse.ms,
    },
    {
      level: 'fine',
      groupsVisited: stage.fine.groups,
      groupsPruned: stage.fine.groups - stage.distance.groups,
      recordsVisited: stage.fine.records,
      ms: stage.fine.ms,
    },
    {
      level: 'distance',
      groupsVisited: stage.distance.groups,
      groupsPruned: 0,
      recordsVisited: stage.distance.records,
      ms: stage.distance.ms,
    },
  ];
  return { candidates, rejected: next.rejected, lowerBoundMs: stage.coarse.ms + stage.fine.ms, levels };
}

/** One whole fast query at C1 (§3.5-§3.7): the ranking, and the winners sealed under k; no retrieval at C2. */
export async function answerFastQuery(ctx: C1QueryContext, q: wire.FastQuery): Promise<C1Answer & { ranking: Ranking }> {
  const records = ctx.collection.packedSnapshot();
  const shares = checkShares(
    records.params,
    { distance: q.distanceShare.map(shareValue), bound: q.boundShare.map(shareValue), coarse: q.coarseShare.map(shareValue) },
    'the query shares',
  );
  const pk2 = ctx.fast.pk2;
  const [distanceConstant, boundConstant, coarseConstant] = ctx.codec.fromCiphers([q.distanceConstant, q.boundConstant, q.coarseConstant]);
  if (!pk2.areValidCiphertexts([distanceConstant, boundConstant, coarseConstant])) throw invalidInput('query constant: invalid ciphertext');
  if (records.count === 0) throw invalidInput('the collection is empty');
  const k = Math.min(ctx.k, records.count);
  const peer = new FastPeer(await ctx.openSession(), randomBytes(12).toString('hex'));
  try {
    const query = { shares, distanceConstant, boundConstant, coarseConstant };
    const ranking = await fastSearch({ crypto: ctx.fast, peer }, records, query, q.shareTicket, k, ctx.requestId, ctx.onProgress);
    const neighbours = ranking.candidates.map((c) => ({ encryptedId: records.encryptedId(c), sealedImage: records.sealedImage(c) }));
    return {
      ranking,
      answer: { $case: 'fast', value: { neighbours } },
      stats: {
        total: BigInt(records.count),
        bound: { rejected: BigInt(ranking.rejected), ms: BigInt(ranking.lowerBoundMs ?? 0) },
        levels: ranking.levels.map((l) => ({
          level: l.level,
          groupsVisited: BigInt(l.groupsVisited),
          groupsPruned: BigInt(l.groupsPruned),
          recordsVisited: BigInt(l.recordsVisited),
          ms: BigInt(l.ms),
        })),
      },
    };
  } finally {
    peer.close();
  }
}
