import { protocolState } from '../../errors';
import type { SessionTransport } from '../messages';
import type { MaskedScore, PaperC1Body, PaperC2Body, PaperStep } from './messages';

/** C1's typed view of C2 in a session of the paper's protocols: each call is one message and its one reply. */
export class PaperPeer {
  constructor(
    private readonly transport: SessionTransport,
    readonly sessionId: string,
  ) {}

  // ----- the paper's protocols (PROTOCOLS.md §2) -----

  async open(keyFingerprint: string, k: number, requestId: string): Promise<void> {
    await this.paper('open', { kind: 'open', keyFingerprint, k, requestId }, 'opened');
  }

  async square(step: PaperStep, values: bigint[]): Promise<bigint[]> {
    const reply = await this.paper(step, { kind: 'square', values }, 'products');
    return this.sameLength(reply.values, values.length);
  }

  async multiply(step: PaperStep, a: bigint[], b: bigint[]): Promise<bigint[]> {
    const reply = await this.paper(step, { kind: 'multiply', a, b }, 'products');
    return this.sameLength(reply.values, a.length);
  }

  bounds(step: PaperStep, seeds: MaskedScore[], bounds: MaskedScore[]) {
    return this.paper(step, { kind: 'bounds', seeds, bounds }, 'next');
  }

  distance(step: PaperStep, score: MaskedScore) {
    return this.paper(step, { kind: 'distance', score }, 'next');
  }

  async finish(): Promise<number[]> {
    return (await this.paper('result', { kind: 'finish' }, 'ranking')).candidates;
  }

  /** Step 7's opening: the retrieval's size; C2 reserves the space and says how many chunks it expects. */
  async retrievalOpen(images: number, pixels: number, chunkValues: number): Promise<number> {
    const reply = await this.paper('retrieval', { kind: 'retrieval-open', images, pixels, chunkValues }, 'accepted');
    if (reply.next !== 0) throw protocolState('C2 answered the retrieval out of turn');
    return reply.chunks;
  }

  /** One chunk of E(m + r); the last one's answer is the doctor's ticket. */
  async retrievalChunk(index: number, values: bigint[], last: boolean): Promise<string | undefined> {
    const body = { kind: 'retrieval-chunk', index, values } as const;
    if (last) return (await this.paper('retrieval', body, 'ticket')).ticket;
    const reply = await this.paper('retrieval', body, 'accepted');
    if (reply.next !== index + 1) throw protocolState('C2 answered the retrieval out of turn');
    return undefined;
  }

  close(): void {
    this.transport.close();
  }

  private async paper<K extends PaperC2Body['kind']>(
    step: PaperStep,
    body: PaperC1Body,
    expected: K,
  ): Promise<Extract<PaperC2Body, { kind: K }>> {
    const reply = await this.transport.exchange({ sessionId: this.sessionId, family: 'paper', step, body });
    if (reply.sessionId !== this.sessionId || reply.family !== 'paper' || reply.step !== step || reply.body.kind !== expected)
      throw protocolState(`C2 answered ${step} out of turn`);
    return reply.body as Extract<PaperC2Body, { kind: K }>;
  }

  private sameLength(values: bigint[], length: number): bigint[] {
    if (values.length !== length) throw protocolState('C2 answered with the wrong number of values');
    return values;
  }
}
