import { protocolState } from '../../errors';
import type { SessionTransport } from '../messages';
import type { Contribution, FastC1Body, FastC2Body, GroupLayout } from './messages';

/** C1's typed view of C2 in a fast session: each call is one message and its one reply. */
export class FastPeer {
  constructor(
    private readonly transport: SessionTransport,
    readonly sessionId: string,
  ) {}

  // ----- the fast protocol (PROTOCOLS.md §3.5-§3.6) -----

  async fastOpen(
    keyFingerprint: string,
    pk1Fingerprint: string,
    k: number,
    requestId: string,
    shareTicket: string,
    groups: GroupLayout[],
    collectionId: Buffer,
  ): Promise<Contribution[]> {
    const body = { kind: 'fast-open' as const, keyFingerprint, pk1Fingerprint, k, requestId, shareTicket, groups, collectionId };
    return (await this.fast(body, 'fast-contributions')).items;
  }

  fastBounds(items: { group: number; value: bigint }[]) {
    return this.fast({ kind: 'fast-bounds', items }, 'fast-next');
  }

  fastRefined(items: { group: number; value: bigint }[]) {
    return this.fast({ kind: 'fast-refined', items }, 'fast-next');
  }

  fastDistance(group: number, value: bigint) {
    return this.fast({ kind: 'fast-distance', group, value }, 'fast-next');
  }

  async fastFinish(): Promise<number[]> {
    return (await this.fast({ kind: 'finish' }, 'ranking')).candidates;
  }

  close(): void {
    this.transport.close();
  }

  private async fast<K extends FastC2Body['kind']>(body: FastC1Body, expected: K): Promise<Extract<FastC2Body, { kind: K }>> {
    const reply = await this.transport.exchange({ sessionId: this.sessionId, family: 'fast', body });
    if (reply.sessionId !== this.sessionId || reply.family !== 'fast' || reply.body.kind !== expected)
      throw protocolState(`C2 answered ${body.kind} out of turn`);
    return reply.body as Extract<FastC2Body, { kind: K }>;
  }
}
