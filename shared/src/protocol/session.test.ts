import { beforeAll, describe, expect, it } from 'vitest';
import { localC2Crypto } from '../crypto/backend';
import { generateKeyPair, type PublicKey, type SecretKey } from '../crypto/paillier';
import { isFnnError, type FnnErrorKind } from '../errors';
import type { C1Message } from './messages';
import { RetrievalStore } from './paper/retrieval';
import { C2SessionStream } from './session';

// C2's session state machines in-process (no gRPC, no daemon): the stream's
// own rules (one session id, one family), the paper family's steps and
// phases, and a fast session at a C2 without a replica. Each case sends its
// messages in order: all but the last are answered, the last is refused with
// the error kind and reason a C1 would see. (The same over gRPC, with codes:
// server-c2/src/session.test.ts and client/src/c2-malformed-input.e2e.test.ts.)

let pk: PublicKey;
let sk: SecretKey;

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
});

const S = 'session-1';
const paper = (
  body: Extract<C1Message, { family: 'paper' }>['body'],
  step: Extract<C1Message, { family: 'paper' }>['step'],
  sessionId = S,
): C1Message => ({
  sessionId,
  family: 'paper',
  step,
  body,
});
const open =
  (k = 1, keyFingerprint = () => pk.fingerprint()) =>
  () =>
    paper({ kind: 'open', keyFingerprint: keyFingerprint(), k, requestId: 'r' }, 'open');
const square =
  (step: 'ssed-sm' | 'open' = 'ssed-sm', sessionId = S) =>
  () =>
    paper({ kind: 'square', values: [pk.encrypt(3n)] }, step as 'ssed-sm', sessionId);
const finish = () => () => paper({ kind: 'finish' }, 'result');
const fastBounds = (): (() => C1Message) => () => ({ sessionId: S, family: 'fast', body: { kind: 'fast-bounds', items: [] } });
const fastOpen = (): (() => C1Message) => () => ({
  sessionId: S,
  family: 'fast',
  body: {
    kind: 'fast-open',
    keyFingerprint: pk.fingerprint(),
    pk1Fingerprint: '',
    k: 1,
    requestId: 'r',
    shareTicket: 't',
    groups: [],
    collectionId: Buffer.alloc(0),
  },
});

const stream = () => new C2SessionStream({ crypto: localC2Crypto(sk), retrievals: new RetrievalStore() });

async function refusal(messages: (() => C1Message)[]): Promise<{ kind: FnnErrorKind; message: string; answered: number }> {
  const s = stream();
  let answered = 0;
  for (const m of messages) {
    try {
      await s.handle(m());
      answered++;
    } catch (error) {
      if (!isFnnError(error)) throw error;
      return { kind: error.kind, message: error.message, answered };
    }
  }
  throw new Error(`all ${messages.length} messages were answered`);
}

describe('C2SessionStream in-process', () => {
  it('answers a paper session in order: open, then SM squarings, each with its session id, family and step', async () => {
    const s = stream();
    const opened = await s.handle(open()());
    expect(opened).toEqual({ sessionId: S, family: 'paper', step: 'open', body: { kind: 'opened' } });
    const products = await s.handle(square()());
    expect([products.family, products.family === 'paper' && products.step, products.body.kind]).toEqual(['paper', 'ssed-sm', 'products']);
    expect(s.requestId, 'the request id C1 gave when opening').toBe('r');
  });

  it.each([
    ['a square before open', [square()], 'protocol-state', /unexpected square message in phase new/],
    ['open twice', [open(), open()], 'protocol-state', /unexpected open message/],
    ['a message for another session', [open(), square('ssed-sm', 'other')], 'protocol-state', /another session/],
    ['a square labelled step open', [open(), square('open')], 'protocol-state', /does not belong to step open/],
    ['finish before any bound', [open(), finish()], 'protocol-state', /unexpected finish message in phase open/],
    ['a fast message in a paper session', [open(), fastBounds()], 'protocol-state', /a fast message in a paper session/],
    ['open under another key', [open(1, () => 'another-key')], 'invalid-input', /different Paillier keys/],
    ['open with k = 0', [open(0)], 'invalid-input', /k must be a positive integer/],
    ['a fast session at a C2 without a replica', [fastOpen()], 'protocol-state', /no replica for the fast protocol/],
  ] as const)('refuses %s, after answering what came before it', async (_what, messages, kind, reason) => {
    const r = await refusal([...messages]);
    expect([r.kind, r.answered], r.message).toEqual([kind, messages.length - 1]);
    expect(r.message).toMatch(reason);
  });
});
