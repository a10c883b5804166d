import { protocolState } from '../errors';
import type { C1Message, C2Message, SessionFamily } from './messages';
import type { C2Session, C2SessionDeps } from './module';
import { sessionOpenedBy } from './registry';

// C2's end of one session stream: the opening message names its family (the
// case of C1Message.protocol), the registry names the protocol module, and
// that module's C2 side answers every message of the session. This file knows
// the rules every session shares (one session id, one family) and nothing of
// any protocol; each family checks its own steps.

export class C2SessionStream {
  private session: C2Session | undefined;
  private family: SessionFamily | undefined;
  private sessionId: string | undefined;

  constructor(private readonly deps: C2SessionDeps) {}

  /** One message in, its one reply out. The session id and family come from the opening message. */
  async handle(message: C1Message): Promise<C2Message> {
    if (this.sessionId === undefined) this.sessionId = message.sessionId;
    if (message.sessionId !== this.sessionId) throw protocolState('message for another session');
    if (this.session) {
      if (message.family !== this.family) throw protocolState(`a ${message.family} message in a ${this.family} session`);
      return this.session.reply(message);
    }
    const protocol = sessionOpenedBy(message.family);
    if (!protocol) throw protocolState(`no protocol opens a ${message.family} session`);
    const { session, reply } = await protocol.c2.open(this.deps, message);
    this.session = session;
    this.family = message.family;
    return reply;
  }

  /** The stream ended (any way): the session gives back what it reserved. */
  close(): void {
    this.session?.close?.();
  }

  get id(): string | undefined {
    return this.sessionId;
  }

  /** The request id C1 gave when it opened the session (for logs across C1 and C2). */
  get requestId(): string {
    return this.session?.requestId ?? '';
  }
}
