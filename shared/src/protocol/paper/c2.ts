import type { C2Crypto } from '../../crypto/backend';
import { invalidInput, protocolState } from '../../errors';
import type { C1Message, C2Message, MaskedScore, PaperC1Body, PaperC2Body, PaperStep } from '../messages';
import type { C2Session, C2SessionDeps } from '../module';
import { TopK } from '../ranking';
import { bigintBytes, type Reservation } from '../ticket-store';
import { retrievalChunks, type RetrievalStore } from './retrieval';

// C2's half of one session of the paper's protocols (fnn and bf,
// docs/PROTOCOLS.md §2.2-§2.7). C2 keeps nothing beyond its key across
// sessions: this object lives as long as the session's stream, and only the
// retrieval store outlives it (until the doctor fetches the result or it expires):
// the space a retrieval reserved there is given back if the session ends before its last chunk.
//
// What C2 sees: values blinded by C1's random masks (sm), and distances and
// bounds under one order-preserving mask alpha * v + beta per session, so it
// can compare them without learning them.

type Phase = 'open' | 'ranking' | 'finished' | 'retrieving' | 'closed';

/** A retrieval under way (§2.7): its announced size, its reserved space and what has arrived. */
interface Retrieval {
  total: number;
  chunkValues: number;
  chunks: number;
  next: number;
  values: bigint[];
  reservation: Reservation<bigint[]>;
}

/** Which steps each kind of message may belong to (§2.5: the step numbers of Algorithm 3). */
const STEPS_OF: Record<PaperC1Body['kind'], PaperStep[]> = {
  open: ['open'],
  square: ['ssed-sm', 'ssedlb-sm'],
  multiply: ['ssed-sm', 'ssedlb-sm'],
  bounds: ['fnn-bounds', 'bf-distance'],
  distance: ['fnn-distance'],
  finish: ['result'],
  'retrieval-open': ['retrieval'],
  'retrieval-chunk': ['retrieval'],
};

/** A paper message, checked to belong to its step. */
function paperMessage(message: C1Message): { step: PaperStep; body: PaperC1Body } {
  if (message.family !== 'paper') throw protocolState(`a ${message.family} message in a session of the paper's protocols`);
  if (!STEPS_OF[message.body.kind].includes(message.step))
    throw protocolState(`a ${message.body.kind} message does not belong to step ${message.step}`);
  return message;
}

/** The session's opening message (kind 'open'): C2 checks the key and k. */
export async function openPaperSession(deps: C2SessionDeps, message: C1Message): Promise<{ session: C2Session; reply: C2Message }> {
  const { step, body } = paperMessage(message);
  if (body.kind !== 'open') throw protocolState(`unexpected ${body.kind} message in phase new`);
  if (body.keyFingerprint !== deps.crypto.publicKey.fingerprint()) throw invalidInput('C1 and C2 use different Paillier keys');
  if (!Number.isInteger(body.k) || body.k < 1) throw invalidInput('k must be a positive integer');
  const session = new PaperSession(deps.crypto, deps.retrievals, body.k, body.requestId);
  return { session, reply: { sessionId: message.sessionId, family: 'paper', step, body: { kind: 'opened' } } };
}

export class PaperSession implements C2Session {
  private phase: Phase = 'open';
  private readonly top: TopK;
  private queue: MaskedScore[] = [];
  private awaiting: number | undefined;
  private rejected = 0;
  private ranking: number[] = [];
  private retrieval: Retrieval | undefined;

  constructor(
    private readonly crypto: C2Crypto,
    private readonly retrievals: RetrievalStore,
    k: number,
    readonly requestId: string,
  ) {
    this.top = new TopK(k);
  }

  async reply(message: C1Message): Promise<C2Message> {
    const { step, body } = paperMessage(message);
    return { sessionId: message.sessionId, family: 'paper', step, body: await this.answer(body) };
  }

  private async answer(body: PaperC1Body): Promise<PaperC2Body> {
    switch (body.kind) {
      case 'square':
        this.expectComputing('square');
        return { kind: 'products', values: await this.crypto.squareBlinded(this.checked(body.values)) };
      case 'multiply':
        this.expectComputing('multiply');
        if (body.a.length !== body.b.length) throw invalidInput('multiply needs pairs of equal length');
        return { kind: 'products', values: await this.crypto.multiplyBlinded(this.checked(body.a), this.checked(body.b)) };
      case 'bounds':
        return this.receiveBounds(body.seeds, body.bounds);
      case 'distance':
        return this.receiveDistance(body.score);
      case 'finish':
        this.expect('ranking', 'finish');
        if (this.awaiting !== undefined || this.queue.length > 0) throw protocolState('finish before all candidates');
        this.ranking = this.top.candidates();
        this.phase = 'finished';
        return { kind: 'ranking', candidates: this.ranking };
      case 'retrieval-open':
        return this.openRetrieval(body.images, body.pixels, body.chunkValues);
      case 'retrieval-chunk':
        return this.receiveChunk(body.index, body.values);
      case 'open':
        throw protocolState(`unexpected open message in phase ${this.phase}`);
    }
  }

  /** Algorithm 3 step 4/5 (§2.5): decrypt the seeds' distances and every bound. */
  private async receiveBounds(seeds: MaskedScore[], bounds: MaskedScore[]): Promise<PaperC2Body> {
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

  /** Algorithm 3 step 5 (§2.5): the distance of the candidate C2 asked for. */
  private async receiveDistance(score: MaskedScore): Promise<PaperC2Body> {
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
   * decides, as in BF and the plaintext reference. Cost: one more SSED per
   * record whose bound ties the best distance (§2.8).
   */
  private advance(): PaperC2Body {
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

  /**
   * Algorithm 3 step 7 (§2.7), opening: C1 announces k images of d values in
   * chunks of chunkValues. The whole result's space is reserved now (at the
   * largest size m + r mod N can take), so a result that cannot fit is refused
   * (RESOURCE_EXHAUSTED) before C1 blinds or C2 decrypts any of it.
   */
  private openRetrieval(images: number, pixels: number, chunkValues: number): PaperC2Body {
    this.expect('finished', 'retrieval');
    if (images !== this.ranking.length) throw invalidInput('one blinded image per result is needed');
    if (!Number.isInteger(pixels) || pixels < 1) throw invalidInput('a retrieval needs at least one pixel per image');
    if (!Number.isInteger(chunkValues) || chunkValues < 1) throw invalidInput('a retrieval chunk needs at least one value');
    const total = images * pixels;
    const reservation = this.retrievals.reserve(total * bigintBytes(this.crypto.publicKey.n - 1n));
    const chunks = retrievalChunks(total, chunkValues);
    this.retrieval = { total, chunkValues, chunks, next: 0, values: [], reservation };
    this.phase = 'retrieving';
    return { kind: 'accepted', next: 0, chunks };
  }

  /** Step 7, one chunk: strictly in order, exactly the announced size; the last one's answer is the doctor's ticket. */
  private async receiveChunk(index: number, values: bigint[]): Promise<PaperC2Body> {
    const r = this.retrieval;
    if (r && index >= r.chunks) throw protocolState(`retrieval chunk ${index} is beyond the ${r.chunks} announced`);
    this.expect('retrieving', 'retrieval chunk');
    if (!r) throw protocolState('a retrieval chunk before the retrieval was opened');
    if (index !== r.next) throw protocolState(`retrieval chunk ${index} is out of order: chunk ${r.next} is next`);
    const expected = Math.min(r.chunkValues, r.total - r.values.length);
    if (values.length !== expected) throw invalidInput(`retrieval chunk ${index} holds ${values.length} values, expected ${expected}`);
    const plain = await this.crypto.decrypt(this.checked(values));
    for (const v of plain) r.values.push(v);
    r.next++;
    if (r.next < r.chunks) return { kind: 'accepted', next: r.next, chunks: r.chunks };
    this.phase = 'closed';
    const ticket = r.reservation.fill(r.values);
    r.values = [];
    return { kind: 'ticket', ticket };
  }

  /** The session ended: an unfinished retrieval's reserved space goes back to the store. */
  close(): void {
    this.retrieval?.reservation.release();
  }

  private async decryptSigned(values: bigint[]): Promise<bigint[]> {
    const pk = this.crypto.publicKey;
    return (await this.crypto.decrypt(this.checked(values))).map((v) => pk.decodeSigned(v));
  }

  private checked(values: bigint[]): bigint[] {
    if (!this.crypto.publicKey.areValidCiphertexts(values)) throw invalidInput('invalid ciphertext');
    return values;
  }

  private expect(phase: Phase, what: string): void {
    if (this.phase !== phase) throw protocolState(`unexpected ${what} message in phase ${this.phase}`);
  }

  private expectComputing(what: string): void {
    if (this.phase !== 'open' && this.phase !== 'ranking') throw protocolState(`unexpected ${what} message in phase ${this.phase}`);
  }
}
