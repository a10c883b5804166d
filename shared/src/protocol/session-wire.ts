import type * as wire from '@fnn/proto';
import { invalidInput } from '../errors';
import type { WireCodec } from '../wire/codec';
import type { C1Message, C2Message } from './messages';
import { sessionOpenedBy } from './registry';

// A session's messages to and from the wire: the session id here, the rest by
// the family's own SessionWire (paper/wire.ts, fast/wire.ts), found through the
// registry. C1's link to C2 and C2's session service call these.

function familyWire(family: string) {
  const protocol = sessionOpenedBy(family as C1Message['family']);
  if (!protocol) throw invalidInput('a session message of no known protocol');
  return protocol.c2.wire;
}

export function c1MessageToWire(codec: WireCodec, m: C1Message): wire.C1Message {
  return { sessionId: m.sessionId, protocol: familyWire(m.family).c1ToWire(codec, m) };
}

export function c1MessageFromWire(codec: WireCodec, m: wire.C1Message): C1Message {
  if (!m.protocol) throw invalidInput('message without a protocol');
  return familyWire(m.protocol.$case).c1FromWire(codec, m.sessionId, m.protocol);
}

export function c2MessageToWire(codec: WireCodec, m: C2Message): wire.C2Message {
  return { sessionId: m.sessionId, protocol: familyWire(m.family).c2ToWire(codec, m) };
}

export function c2MessageFromWire(codec: WireCodec, m: wire.C2Message): C2Message {
  if (!m.protocol) throw invalidInput('reply without a protocol');
  return familyWire(m.protocol.$case).c2FromWire(codec, m.sessionId, m.protocol);
}
