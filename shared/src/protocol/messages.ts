import type { FastMessages } from './fast/messages';
import type { PaperMessages } from './paper/messages';

// The C1 <-> C2 conversation as plain TypeScript values (ciphertexts as
// bigints). Each session belongs to one family of protocols (the case of
// C1Message.protocol on the wire): the paper's fnn and bf share one, the fast
// protocol has its own. Each family declares its messages in its folder
// (messages.ts) and converts them to and from the wire there (wire.ts); this
// file only joins the families into the union the transports carry. The
// in-process transport passes these values as they are.

/** Every family's messages, by family name (a new family adds its interface here). */
type Families = PaperMessages & FastMessages;

/** A session's family: the case of C1Message.protocol and C2Message.protocol on the wire. */
export type SessionFamily = keyof Families;

export type C1Message = { [F in SessionFamily]: { sessionId: string; family: F } & Families[F]['c1'] }[SessionFamily];
export type C2Message = { [F in SessionFamily]: { sessionId: string; family: F } & Families[F]['c2'] }[SessionFamily];

/** A message's body, whatever its family. */
export type C1Body = C1Message['body'];
export type C2Body = C2Message['body'];

/**
 * How C1 reaches C2 for one session: each message gets exactly one reply, in
 * order. Implemented in-process (tests) and over a gRPC bidirectional stream.
 */
export interface SessionTransport {
  exchange(message: C1Message): Promise<C2Message>;
  close(): void;
}

export type * from './paper/messages';
export type * from './fast/messages';
