import { protocolState } from '../errors';
import type { C1Body, C1Message, C2Message, Step } from './messages';
import type { C2Session, C2SessionDeps } from './module';
import { sessionOpenedBy } from './registry';

// C2's end of one session stream: the opening message names the protocol
// (through the registry), and that protocol's C2 side answers the rest. This
// file knows the message rules every protocol shares (one session id, each
// message in a step it belongs to) and nothing of any protocol.

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

export class C2SessionStream {
  private session: C2Session | undefined;
  private sessionId: string | undefined;

  constructor(private readonly deps: C2SessionDeps) {}

  /** One message in, its one reply out. The session id comes from the opening message. */
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

  /** The request id C1 gave when it opened the session (for logs across C1 and C2). */
  get requestId(): string {
    return this.session?.requestId ?? '';
  }

  private async reply(body: C1Body) {
    if (this.session) return this.session.reply(body);
    const protocol = sessionOpenedBy(body.kind);
    if (!protocol) throw protocolState(`unexpected ${body.kind} message in phase new`);
    const { session, reply } = await protocol.c2.open(this.deps, body);
    this.session = session;
    return reply;
  }
}
