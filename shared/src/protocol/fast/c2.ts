import { toFixedWidth, type FixedWidthValues } from '../../crypto/codec';
import type { PublicKey, SecretKey } from '../../crypto/paillier';
import { randomBits } from '../../crypto/random';
import { mapConcurrent } from '../../concurrency';
import { invalidInput, protocolState } from '../../errors';
import type { C1Message, C2Message, Contribution, FastC2Body, GroupLayout } from '../messages';
import type { C2Session, C2SessionDeps } from '../module';
import { TopK } from '../ranking';
import type { QueryShares } from './doctor';
import { assertFits, GROUPS_AT_ONCE } from './c1';
import { boundScale, checkShares, FAMILIES, pack, unpack, type BoundLevel, type Family, type PackingParams } from './params';

// The fast protocol, C2's side (docs/PROTOCOLS.md §3.5-§3.6). C2 holds the second replica of the packed
// records under C1's key (it cannot decrypt them) and the doctor's share v of
// the query. It adds a fresh mask t to its half of every inner product (C1 sees
// pack(<x, v> + t): statistically hiding), and decrypts only C1's masked packed
// bounds and distances, one ciphertext per group and level. It drives the
// bound cascade (§3.5a): a queue of groups keyed by their best-known bound,
// coarse at first, refined to the fine bound when a coarse key reaches the front.

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

/** A group in the queue: its smallest masked bound over the occupied slots, at the level it was computed. */
interface QueuedGroup {
  layout: GroupLayout;
  smallestBound: bigint;
  level: BoundLevel;
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
  /** The groups C2 asked C1 to refine, until their fine bounds arrive. */
  private awaitingRefine: Set<number> | undefined;
  private awaiting: number | undefined;
  /** K^2 d_b m and K^2 d_b: the scale of each level's masked bound against a masked distance. */
  private readonly scale: Record<BoundLevel, bigint>;
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
    this.share = Object.fromEntries(FAMILIES.map((f) => [f, toFixedWidth(shares[f], 'share')])) as Record<Family, FixedWidthValues>;
    this.scale = { coarse: boundScale(p, 'coarse'), bound: boundScale(p, 'bound') };
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
      case 'fast-refined':
        return this.refined(body.items);
      case 'fast-distance':
        return this.distance(body.group, body.value);
      case 'finish':
        this.finished = true; // fast results come back sealed from C1: nothing to retrieve here
        return { kind: 'ranking', candidates: this.ranking() };
      case 'fast-open':
        throw protocolState('unexpected fast-open message: the session is open');
    }
  }

  /** Step 1: C2's half of every group's coarse bound (§3.5a). */
  async open(): Promise<FastC2Body> {
    const items = await mapConcurrent([...this.layouts.keys()], GROUPS_AT_ONCE, (group) => this.contribution(group, 'coarse'));
    return { kind: 'fast-contributions', items };
  }

  /** Step 2: all packed masked coarse bounds; order the groups by their smallest coarse bound. */
  async bounds(items: { group: number; value: bigint }[]): Promise<FastC2Body> {
    if (this.queue) throw protocolState('bounds sent twice');
    if (items.length !== this.layouts.size || new Set(items.map((i) => i.group)).size !== items.length)
      throw invalidInput('one bound per group is needed');
    const queue = items.map((item) => {
      const layout = this.layouts.get(item.group);
      if (!layout) throw invalidInput('bound for an unknown group');
      return { layout, smallestBound: this.smallestBound(layout, item.value), level: 'coarse' as const };
    });
    this.queue = queue.sort((a, b) => this.before(a, b));
    return this.advance();
  }

  /** Step 3a: the packed masked fine bounds of the groups C2 asked to refine; each goes back into the queue at its fine key. */
  async refined(items: { group: number; value: bigint }[]): Promise<FastC2Body> {
    const asked = this.awaitingRefine;
    if (!asked || this.awaiting !== undefined) throw protocolState('fine bounds that were not requested');
    if (items.length !== asked.size || new Set(items.map((i) => i.group)).size !== items.length || items.some((i) => !asked.has(i.group)))
      throw invalidInput('one fine bound per group asked to refine is needed');
    for (const item of items) {
      const layout = this.layouts.get(item.group)!;
      this.enqueue({ layout, smallestBound: this.smallestBound(layout, item.value), level: 'bound' });
    }
    this.awaitingRefine = undefined;
    return this.advance();
  }

  /** Step 3b: the packed masked distances of the group C2 asked for. */
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
    if (!this.queue || this.awaiting !== undefined || this.awaitingRefine || this.queue.length > 0)
      throw protocolState('finish before the search is done');
    return this.top.candidates();
  }

  /**
   * Best-first over the cascade (§3.5a, §3.6): the front of the queue has the
   * smallest bound relative to its level's scale. If it exceeds the k-th best
   * distance at that scale, so do all later ones and the search ends. A bound
   * at level L is alpha LB_L + s_L beta with LB_L <= s_L D for every member, and
   * a distance alpha D + beta, so a bound above s_L times a distance means no
   * member is nearer (ties go on, so the upload-order rule decides them).
   * Otherwise a coarse front is refined (with the coarse groups right behind
   * it, up to GROUPS_AT_ONCE, to keep both servers' pools busy) and a fine
   * front has its distances computed.
   */
  private async advance(): Promise<FastC2Body> {
    const queue = this.queue!;
    const worst = this.top.worstKept;
    const prunable = (g: QueuedGroup) => worst !== undefined && g.smallestBound > this.scale[g.level] * worst;
    if (queue.length > 0 && prunable(queue[0])) {
      for (const g of queue.splice(0)) this.rejected += g.layout.members.filter((m) => m >= 0).length;
    }
    if (queue.length === 0) {
      this.prefetched = undefined;
      return { kind: 'fast-next', done: true, rejected: this.rejected };
    }
    if (queue[0].level === 'coarse') {
      const batch: QueuedGroup[] = [];
      while (batch.length < GROUPS_AT_ONCE && queue.length > 0 && queue[0].level === 'coarse' && !prunable(queue[0]))
        batch.push(queue.shift()!);
      this.awaitingRefine = new Set(batch.map((g) => g.layout.group));
      const refine = await mapConcurrent(batch, GROUPS_AT_ONCE, (g) => this.contribution(g.layout.group, 'bound'));
      return { kind: 'fast-next', done: false, refine, rejected: this.rejected };
    }
    const next = queue.shift()!;
    const prefetched = this.prefetched;
    this.prefetched = undefined;
    this.awaiting = next.layout.group;
    const contribution =
      prefetched?.group === next.layout.group ? prefetched.contribution : this.contribution(next.layout.group, 'distance');
    // While C1 works on this group, prepare the one after it in best-first
    // order if its fine bound is known (wasted only if the search stops there
    // or a refined group overtakes it): with C1 and C2 on their own machines,
    // a group then costs one multi-exponentiation of wall time, not two.
    if (queue.length > 0 && queue[0].level === 'bound') {
      const group = queue[0].layout.group;
      const ahead = this.contribution(group, 'distance');
      ahead.catch(() => {}); // a failure surfaces when it is used
      this.prefetched = { group, contribution: ahead };
    }
    return { kind: 'fast-next', done: false, contribution: await contribution, rejected: this.rejected };
  }

  /** a before b in the queue: a.bound / s_a < b.bound / s_b, compared exactly as a.bound s_b < b.bound s_a; ties by group. */
  private before(a: QueuedGroup, b: QueuedGroup): number {
    const left = a.smallestBound * this.scale[b.level];
    const right = b.smallestBound * this.scale[a.level];
    return left < right ? -1 : left > right ? 1 : a.layout.group - b.layout.group;
  }

  /** Into the sorted queue, after every group that is not after it. */
  private enqueue(g: QueuedGroup): void {
    const queue = this.queue!;
    let lo = 0;
    let hi = queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.before(queue[mid], g) <= 0) lo = mid + 1;
      else hi = mid;
    }
    queue.splice(lo, 0, g);
  }

  /** The smallest masked bound over a group's occupied slots: a bound of every member. */
  private smallestBound(layout: GroupLayout, value: bigint): bigint {
    const slots = this.slots(value);
    const occupied = layout.members.flatMap((m, j) => (m >= 0 ? [slots[j]] : []));
    return occupied.reduce((a, b) => (b < a ? b : a), occupied[0] ?? 0n);
  }

  /** E1(pack(<x, v> + t)) and E2(-pack(t)) for one group. */
  private async contribution(group: number, family: Family): Promise<Contribution> {
    const p = this.params;
    const pk1 = this.crypto.pk1;
    const columns = await this.replica.columns(group, family, this.layouts.get(group)!.digest);
    const theirs = await this.crypto.multiExp(columns, this.share[family], pk1.n2);
    const maskBits = p[family].maskBits;
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
