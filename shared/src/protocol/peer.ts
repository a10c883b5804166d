import { protocolState } from '../errors';
import type { C2Body, Contribution, GroupLayout, MaskedScore, SessionTransport, Step } from './messages';

/** C1's typed view of C2 within one session: each call is one message and its one reply. */
export class C2Peer {
  constructor(
    private readonly transport: SessionTransport,
    readonly sessionId: string,
  ) {}

  async open(keyFingerprint: string, k: number, requestId: string): Promise<void> {
    await this.call('open', { kind: 'open', keyFingerprint, k, requestId }, 'opened');
  }

  async square(step: Step, values: bigint[]): Promise<bigint[]> {
    const reply = await this.call(step, { kind: 'square', values }, 'products');
    return this.sameLength(reply.values, values.length);
  }

  async multiply(step: Step, a: bigint[], b: bigint[]): Promise<bigint[]> {
    const reply = await this.call(step, { kind: 'multiply', a, b }, 'products');
    return this.sameLength(reply.values, a.length);
  }

  bounds(step: Step, seeds: MaskedScore[], bounds: MaskedScore[]) {
    return this.call(step, { kind: 'bounds', seeds, bounds }, 'next');
  }

  distance(step: Step, score: MaskedScore) {
    return this.call(step, { kind: 'distance', score }, 'next');
  }

  async fastOpen(
    keyFingerprint: string,
    pk1Fingerprint: string,
    k: number,
    requestId: string,
    shareTicket: string,
    groups: GroupLayout[],
  ): Promise<Contribution[]> {
    const body = { kind: 'fast-open' as const, keyFingerprint, pk1Fingerprint, k, requestId, shareTicket, groups };
    return (await this.call('fast-open', body, 'fast-contributions')).items;
  }

  fastBounds(items: { group: number; value: bigint }[]) {
    return this.call('fast-bounds', { kind: 'fast-bounds', items }, 'fast-next');
  }

  fastDistance(group: number, value: bigint) {
    return this.call('fast-distance', { kind: 'fast-distance', group, value }, 'fast-next');
  }

  async finish(): Promise<number[]> {
    return (await this.call('result', { kind: 'finish' }, 'ranking')).candidates;
  }

  async retrieval(images: bigint[][]): Promise<string> {
    return (await this.call('retrieval', { kind: 'retrieval', images }, 'ticket')).ticket;
  }

  close(): void {
    this.transport.close();
  }

  private async call<K extends C2Body['kind']>(
    step: Step,
    body: Exclude<Parameters<SessionTransport['exchange']>[0]['body'], undefined>,
    expected: K,
  ): Promise<Extract<C2Body, { kind: K }>> {
    const reply = await this.transport.exchange({ sessionId: this.sessionId, step, body });
    if (reply.sessionId !== this.sessionId || reply.step !== step || reply.body.kind !== expected)
      throw protocolState(`C2 answered ${step} out of turn`);
    return reply.body as Extract<C2Body, { kind: K }>;
  }

  private sameLength(values: bigint[], length: number): bigint[] {
    if (values.length !== length) throw protocolState('C2 answered with the wrong number of values');
    return values;
  }
}
