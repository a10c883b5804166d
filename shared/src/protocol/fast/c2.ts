import { toFixedWidth, type FixedWidthValues } from '../../crypto/codec';
import type { PublicKey, SecretKey } from '../../crypto/paillier';
import { randomBits } from '../../crypto/random';
import { SPREAD_SCALE } from '../../encoding/lower-bound';
import { mapConcurrent } from '../../concurrency';
import { invalidInput, protocolState } from '../../errors';
import type { C1Message, C2Message, Contribution, FastC2Body, GroupLayout } from '../messages';
import type { C2Session, C2SessionDeps } from '../module';
import { TopK } from '../ranking';
import type { QueryShares } from './doctor';
import { assertFits, GROUPS_AT_ONCE } from './c1';
import { checkShares, pack, unpack, type Family, type PackingParams } from './params';

// The fast protocol, C2's side (docs/PROTOCOLS.md §3.5-§3.6). C2 holds the second replica of the packed
// records under C1's key (it cannot decrypt them) and the doctor's share v of
// the query. It adds a fresh mask t to its half of every inner product (C1 sees
// pack(<x, v> + t): statistically hiding), and decrypts only C1's masked packed
// bounds and distances, one ciphertext per group.

/** C2's replica: the same groups as C1, columns under C1's key. */
export interface ReplicaSource {
  params: PackingParams;
  /**
   * Settles the replica against what C1 presents at session open: its
   * collection id (refused if the replica belongs to another collection) and
   * the digest of every group with members. C2 then serves, per group, the
   * version with that digest, a pending change C1 has taken included
   * (docs/ARCHITECTURE.md, "Replica changes"). Returns the groups it cannot serve so.
   */
  agree(collectionId: Uint8Array, groups: readonly { group: number; digest: string }[]): number[];
  /** A group's packed columns, refused if the group no longer has `expectedDigest` (it changed mid-query). */
  columns(group: number, family: Family, expectedDigest: string): Promise<FixedWidthValues>;
}

export interface FastC2Crypto {
  sk2: SecretKey; // sk2
  pk1: PublicKey; // pk1
  multiExp(bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint): Promise<bigint>;
}

interface QueuedGroup {
  layout: GroupLayout;
  smallestBound: bigint;
}

/** The session's opening message (kind 'fast-open', §3.5): both keys, k, the doctor's share and C1's group layouts. */
export async function openFastSession(deps: C2SessionDeps, message: C1Message): Promise<{ session: C2Session; reply: C2Message }> {
  if (message.family !== 'fast') throw protocolState(`a ${message.family} message in a fast session`);
  const body = message.body;
  if (body.kind !== 'fast-open') throw protocolState(`unexpected ${body.kind} message in phase new`);
  if (!deps.fast) throw protocolState('this C2 has no replica for the fast protocol');
  const { crypto, replica, shares } = deps.fast;
  if (body.keyFingerprint !== deps.crypto.publicKey.fingerprint() || body.pk1Fingerprint !== crypto.pk1.fingerprint())
    throw invalidInput('C1 and C2 use different Paillier keys');
  if (!Number.isInteger(body.k) || body.k < 1) throw invalidInput('k must be a positive integer');
  const session = new FastC2Session(
    crypto,
    replica(),
    shares.take(body.shareTicket),
    body.k,
    body.groups,
    body.requestId,
    body.collectionId,
  );
  return { session, reply: { sessionId: message.sessionId, family: 'fast', body: await session.open() } };
}

export class FastC2Session implements C2Session {
  private readonly top: TopK;
  private finished = false;
  private readonly params: PackingParams;
  private readonly layouts = new Map<number, GroupLayout>();
  private queue: QueuedGroup[] | undefined;
  private awaiting: number | undefined;
  /** The contribution of the group likely asked for next, computed ahead. */
  private prefetched: { group: number; contribution: Promise<Contribution> } | undefined;
  private rejected = 0;
  /** The doctor's share v in bytes, once: every group's multi-exponentiation reads it. */
  private readonly share: Record<Family, FixedWidthValues>;

  constructor(
    private readonly crypto: FastC2Crypto,
    private readonly replica: ReplicaSource,
    shares: QueryShares,
    k: number,
    groups: GroupLayout[],
    readonly requestId = '',
    collectionId: Uint8Array = new Uint8Array(0),
  ) {
    this.params = replica.params;
    this.top = new TopK(k);
    const p = this.params;
    assertFits(p, crypto.pk1, crypto.sk2.publicKey);
    checkShares(p, shares);
    this.share = { distance: toFixedWidth(shares.distance, 'share'), bound: toFixedWidth(shares.bound, 'share') };
    for (const g of groups) {
      if (this.layouts.has(g.group)) throw invalidInput('group listed twice');
      if (g.members.length !== p.groupSize) throw invalidInput('group layout of the wrong size');
      this.layouts.set(g.group, g);
    }
    const differ = this.replica.agree(collectionId, groups);
    if (differ.length > 0)
      throw protocolState(
        `the replicas of group ${differ[0]} differ between C1 and C2${differ.length > 1 ? ` (and ${differ.length - 1} more groups)` : ''}; \`fnn repair\` rewrites them`,
      );
  }

  async reply(message: C1Message): Promise<C2Message> {
    if (message.family !== 'fast') throw protocolState(`a ${message.family} message in a fast session`);
    return { sessionId: message.sessionId, family: 'fast', body: await this.answer(message.body) };
  }

  private async answer(body: Extract<C1Message, { family: 'fast' }>['body']): Promise<FastC2Body> {
    if (this.finished) throw protocolState(`unexpected ${body.kind} message after the result`);
    switch (body.kind) {
      case 'fast-bounds':
        return this.bounds(body.items);
      case 'fast-distance':
        return this.distance(body.group, body.value);
      case 'finish':
        this.finished = true; // fast results come back sealed from C1: nothing to retrieve here
        return { kind: 'ranking', candidates: this.ranking() };
      case 'fast-open':
        throw protocolState('unexpected fast-open message: the session is open');
    }
  }

  /** Step 1: C2's half of every group's bound. */
  async open(): Promise<FastC2Body> {
    const items = await mapConcurrent([...this.layouts.keys()], GROUPS_AT_ONCE, (group) => this.contribution(group, 'bound'));
    return { kind: 'fast-contributions', items };
  }

  /** Step 2: all packed masked bounds; order the groups by their smallest bound. */
  async bounds(items: { group: number; value: bigint }[]): Promise<FastC2Body> {
    if (this.queue) throw protocolState('bounds sent twice');
    if (items.length !== this.layouts.size || new Set(items.map((i) => i.group)).size !== items.length)
      throw invalidInput('one bound per group is needed');
    this.queue = items.map((item) => {
      const layout = this.layouts.get(item.group);
      if (!layout) throw invalidInput('bound for an unknown group');
      const slots = this.slots(item.value);
      const occupied = layout.members.flatMap((m, j) => (m >= 0 ? [slots[j]] : []));
      const smallestBound = occupied.reduce((a, b) => (b < a ? b : a), occupied[0] ?? 0n);
      return { layout, smallestBound };
    });
    this.queue.sort((a, b) =>
      a.smallestBound < b.smallestBound ? -1 : a.smallestBound > b.smallestBound ? 1 : a.layout.group - b.layout.group,
    );
    return this.advance();
  }

  /** Step 3: the packed masked distances of the group C2 asked for. */
  async distance(group: number, value: bigint): Promise<FastC2Body> {
    if (this.awaiting === undefined || group !== this.awaiting) throw protocolState('distance for a group that was not requested');
    const layout = this.layouts.get(group)!;
    const slots = this.slots(value);
    layout.members.forEach((candidate, j) => {
      if (candidate >= 0) this.top.offer({ candidate, value: slots[j] });
    });
    this.awaiting = undefined;
    return this.advance();
  }

  ranking(): number[] {
    if (!this.queue || this.awaiting !== undefined || this.queue.length > 0) throw protocolState('finish before the search is done');
    return this.top.candidates();
  }

  /**
   * Best-first: the next group unless its smallest bound already exceeds the
   * k-th best distance, in which case so do all later ones and the search ends.
   * Bounds are alpha LB + K^2 d_b beta and distances alpha D + beta, so a bound
   * above K^2 d_b times a distance means LB > K^2 d_b D: the group cannot hold
   * anything nearer (ties go on, so the upload-order rule decides them).
   */
  private async advance(): Promise<FastC2Body> {
    const queue = this.queue!;
    const worst = this.top.worstKept;
    const scale = SPREAD_SCALE * SPREAD_SCALE * BigInt(this.params.blockSize);
    if (queue.length > 0 && worst !== undefined && queue[0].smallestBound > scale * worst) {
      for (const g of queue.splice(0)) this.rejected += g.layout.members.filter((m) => m >= 0).length;
    }
    const next = queue.shift();
    const prefetched = this.prefetched;
    this.prefetched = undefined;
    if (!next) return { kind: 'fast-next', done: true, rejected: this.rejected };
    this.awaiting = next.layout.group;
    const contribution =
      prefetched?.group === next.layout.group ? prefetched.contribution : this.contribution(next.layout.group, 'distance');
    // While C1 works on this group, prepare the one after it in best-first
    // order (wasted only if the search stops there): with C1 and C2 on their
    // own machines, a group then costs one multi-exponentiation of wall time, not two.
    if (queue.length > 0) {
      const group = queue[0].layout.group;
      const ahead = this.contribution(group, 'distance');
      ahead.catch(() => {}); // a failure surfaces when it is used
      this.prefetched = { group, contribution: ahead };
    }
    return { kind: 'fast-next', done: false, contribution: await contribution, rejected: this.rejected };
  }

  /** E1(pack(<x, v> + t)) and E2(-pack(t)) for one group. */
  private async contribution(group: number, family: Family): Promise<Contribution> {
    const p = this.params;
    const pk1 = this.crypto.pk1;
    const columns = await this.replica.columns(group, family, this.layouts.get(group)!.digest);
    const theirs = await this.crypto.multiExp(columns, this.share[family], pk1.n2);
    const maskBits = family === 'bound' ? p.bound.maskBits : p.distance.maskBits;
    const t = pack(
      Array.from({ length: p.groupSize }, () => randomBits(maskBits)),
      p.slotBits,
    );
    return {
      group,
      masked: pk1.add(theirs, pk1.encrypt(t)),
      negatedMask: this.crypto.sk2.encrypt(-t),
    };
  }

  private slots(value: bigint): bigint[] {
    if (!this.crypto.sk2.publicKey.isValidCiphertext(value)) throw invalidInput('invalid ciphertext');
    return unpack(this.crypto.sk2.decrypt(value), this.params.slotBits, this.params.groupSize);
  }
}
