import type { KeyHolderCrypto } from '../crypto/backend';
import { invalidInput, protocolState } from '../errors';
import type { C1Body, C1Message, C2Body, C2Message, MaskedScore, Step } from './messages';
import { TopK } from './ranking';
import type { QueryShares } from './fast/doctor';
import { FastKeyHolder, type FastKeyHolderCrypto, type ReplicaSource } from './fast/key-holder';
import type { RetrievalStore } from './retrieval';
import type { TicketStore } from './ticket-store';

// C2's half of one query session. C2 keeps nothing beyond its key across
// sessions: this object lives as long as the session's stream, and only the
// retrieval store outlives it (until the doctor fetches the result or it expires).
//
// What C2 sees: values blinded by C1's random masks (SM), and distances and
// bounds under one order-preserving mask alpha * v + beta per session, so it
// can compare them without learning them.

/** Which steps each kind of message may belong to. */
const STEPS_OF: Record<C1Body['kind'], Step[]> = {
  open: ['open'],
  square: ['ssed-sm', 'ssedlb-sm'],
  multiply: ['ssed-sm', 'ssedlb-sm'],
  bounds: ['fnn-bounds', 'bf-distance'],
  distance: ['fnn-distance'],
  finish: ['result'],
  retrieval: ['retrieval'],
  'fast-open': ['fast-open'],
  'fast-bounds': ['fast-bounds'],
  'fast-distance': ['fast-distance'],
};

/** What C2 needs for the fast protocol: its replica, C1's public key, the doctors' shares. */
export interface FastKeyHolderDeps {
  crypto: FastKeyHolderCrypto;
  /** Read when a fast session opens: the replica as it is at that moment. */
  replica: () => ReplicaSource;
  shares: TicketStore<QueryShares>;
}

type Phase = 'new' | 'open' | 'ranking' | 'fast' | 'finished' | 'closed';

export class KeyHolderSession {
  private phase: Phase = 'new';
  private top!: TopK;
  private queue: MaskedScore[] = [];
  private awaiting: number | undefined;
  private rejected = 0;
  private ranking: number[] = [];
  private fast: FastKeyHolder | undefined;
  private sessionId: string | undefined;
  requestId = '';

  constructor(
    private readonly crypto: KeyHolderCrypto,
    private readonly retrievals: RetrievalStore,
    private readonly fastDeps?: FastKeyHolderDeps,
  ) {}

  /** One message in, its one reply out. The session id comes from the 'open' message. */
  async handle(message: C1Message): Promise<C2Message> {
    if (this.sessionId === undefined) this.sessionId = message.sessionId;
    if (message.sessionId !== this.sessionId) throw protocolState('message for another session');
    if (!STEPS_OF[message.body.kind].includes(message.step))
      throw protocolState(`a ${message.body.kind} message does not belong to step ${message.step}`);
    return { sessionId: this.sessionId, step: message.step, body: await this.reply(message.body) };
  }

  get id(): string | undefined {
    return this.sessionId;
  }

  private async reply(body: C1Body): Promise<C2Body> {
    switch (body.kind) {
      case 'open':
        this.expect('new', 'open');
        if (body.keyFingerprint !== this.crypto.publicKey.fingerprint())
          throw invalidInput('C1 and C2 use different Paillier keys');
        if (!Number.isInteger(body.k) || body.k < 1) throw invalidInput('k must be a positive integer');
        this.top = new TopK(body.k);
        this.requestId = body.requestId;
        this.phase = 'open';
        return { kind: 'opened' };
      case 'square':
        this.expectComputing('square');
        return { kind: 'products', values: await this.crypto.squareBlinded(this.checked(body.values)) };
      case 'multiply':
        this.expectComputing('multiply');
        if (body.a.length !== body.b.length) throw invalidInput('multiply needs pairs of equal length');
        return {
          kind: 'products',
          values: await this.crypto.multiplyBlinded(this.checked(body.a), this.checked(body.b)),
        };
      case 'bounds':
        return this.receiveBounds(body.seeds, body.bounds);
      case 'distance':
        return this.receiveDistance(body.score);
      case 'finish':
        if (this.phase === 'fast') {
          this.ranking = this.fast!.ranking();
          this.phase = 'closed'; // fast results come back sealed from C1: nothing to retrieve here
          return { kind: 'ranking', candidates: this.ranking };
        }
        this.expect('ranking', 'finish');
        if (this.awaiting !== undefined || this.queue.length > 0) throw protocolState('finish before all candidates');
        this.ranking = this.top.candidates();
        this.phase = 'finished';
        return { kind: 'ranking', candidates: this.ranking };
      case 'fast-open':
        return this.openFast(body);
      case 'fast-bounds':
        this.expect('fast', 'fast-bounds');
        return this.fast!.bounds(body.items);
      case 'fast-distance':
        this.expect('fast', 'fast-distance');
        return this.fast!.distance(body.group, body.value);
      case 'retrieval':
        return this.receiveRetrieval(body.images);
    }
  }

  private openFast(body: Extract<C1Body, { kind: 'fast-open' }>): Promise<C2Body> {
    this.expect('new', 'fast-open');
    if (!this.fastDeps) throw protocolState('this C2 has no replica for the fast protocol');
    const { crypto, replica, shares } = this.fastDeps;
    if (body.keyFingerprint !== this.crypto.publicKey.fingerprint() || body.evaluatorKeyFingerprint !== crypto.evaluatorKey.fingerprint())
      throw invalidInput('C1 and C2 use different Paillier keys');
    if (!Number.isInteger(body.k) || body.k < 1) throw invalidInput('k must be a positive integer');
    this.requestId = body.requestId;
    this.fast = new FastKeyHolder(crypto, replica(), shares.take(body.shareTicket), body.k, body.groups);
    this.phase = 'fast';
    return this.fast.open();
  }

  /** Algorithm 3 step 4/5: decrypt the seeds' distances and every bound. */
  private async receiveBounds(seeds: MaskedScore[], bounds: MaskedScore[]): Promise<C2Body> {
    this.expect('open', 'bounds');
    if (seeds.length === 0) throw invalidInput('at least one seed distance is needed');
    const all = [...seeds, ...bounds];
    if (new Set(all.map((s) => s.candidate)).size !== all.length) throw invalidInput('candidate listed twice');
    const plain = await this.decryptSigned(all.map((s) => s.value));
    seeds.forEach((s, i) => this.top.offer({ candidate: s.candidate, value: plain[i] }));
    this.queue = bounds.map((b, i) => ({ candidate: b.candidate, value: plain[seeds.length + i] }));
    this.phase = 'ranking';
    return this.advance();
  }

  /** Algorithm 3 step 5: the distance of the candidate C2 asked for. */
  private async receiveDistance(score: MaskedScore): Promise<C2Body> {
    this.expect('ranking', 'distance');
    if (this.awaiting === undefined || score.candidate !== this.awaiting)
      throw protocolState('distance for a candidate that was not requested');
    const [value] = await this.decryptSigned([score.value]);
    this.top.offer({ candidate: score.candidate, value });
    this.awaiting = undefined;
    return this.advance();
  }

  /**
   * Take bounds in the paper's order; reject each whose bound exceeds the
   * current k-th best distance. Deviation from paper: the paper rejects on
   * LB >= D_min; we reject only on LB > D_min, so a record that ties the best
   * distance still gets its distance computed and the tie rule (upload order)
   * decides, as in BF and the plaintext reference.
   */
  private advance(): C2Body {
    while (this.queue.length > 0) {
      const next = this.queue.shift()!;
      const worst = this.top.worstKept;
      if (worst !== undefined && next.value > worst) {
        this.rejected++;
        continue;
      }
      this.awaiting = next.candidate;
      return { kind: 'next', done: false, candidate: next.candidate, rejected: this.rejected };
    }
    return { kind: 'next', done: true, candidate: 0, rejected: this.rejected };
  }

  /** Algorithm 3 step 7: decrypt E(m + r) for each winner; the doctor fetches it with the ticket. */
  private async receiveRetrieval(images: bigint[][]): Promise<C2Body> {
    this.expect('finished', 'retrieval');
    if (images.length !== this.ranking.length) throw invalidInput('one blinded image per result is needed');
    const flat = await this.crypto.decrypt(this.checked(images.flat()));
    const blinded: bigint[][] = [];
    let offset = 0;
    for (const image of images) {
      blinded.push(flat.slice(offset, offset + image.length));
      offset += image.length;
    }
    this.phase = 'closed';
    return { kind: 'ticket', ticket: this.retrievals.put(blinded) };
  }

  private async decryptSigned(values: bigint[]): Promise<bigint[]> {
    const pk = this.crypto.publicKey;
    return (await this.crypto.decrypt(this.checked(values))).map((v) => pk.decodeSigned(v));
  }

  private checked(values: bigint[]): bigint[] {
    const pk = this.crypto.publicKey;
    if (!pk.areValidCiphertexts(values)) throw invalidInput('invalid ciphertext');
    return values;
  }

  private expect(phase: Phase, what: string): void {
    if (this.phase !== phase) throw protocolState(`unexpected ${what} message in phase ${this.phase}`);
  }

  private expectComputing(what: string): void {
    if (this.phase !== 'open' && this.phase !== 'ranking')
      throw protocolState(`unexpected ${what} message in phase ${this.phase}`);
  }
}
