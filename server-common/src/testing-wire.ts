import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { strict as assert } from 'node:assert';
import * as wire from '@fnn/proto';
import { generateKeyPair, multiExpFixed, type FixedWidthValues, type PublicKey, type SecretKey, type WireCodec } from '@fnn/shared';

// What C1's and C2's daemon tests share on the wire: the small collection they
// upload, gRPC calls as promises, the expected-code check, and the C1 messages
// a test sends to C2 by hand (playing a C1, or a misbehaving one). Exported
// through '@fnn/server-common/testing'.

/** The test collections' images: 4x4, 8-bit; 512-bit keys (4 records per group). */
export const TEST_WIDTH = 4;
export const TEST_HEIGHT = 4;
export const TEST_MAX_VALUE = 255;
export const TEST_KEY_BITS = 512;
/** The same facts under the names the daemons' tests use. */
export { TEST_WIDTH as WIDTH, TEST_HEIGHT as HEIGHT, TEST_MAX_VALUE as MAX_VALUE, TEST_KEY_BITS as KEY_BITS };
export const RPC_DEADLINE_MS = 60_000;
/** A well-formed ticket nobody was given. */
export const UNKNOWN_TICKET = '00112233445566778899aabbccddeeff';

/** A deployment's two key pairs at TEST_KEY_BITS: C2's (pk2, sk2: C1's records are under it) and C1's own (pk1, sk1: C2's replica). */
export async function testKeyPairs(): Promise<Record<'c1' | 'c2', { publicKey: PublicKey; secretKey: SecretKey }>> {
  return { c2: await generateKeyPair(TEST_KEY_BITS), c1: await generateKeyPair(TEST_KEY_BITS) };
}

/** `fixture` once `start` has run; if it throws, whatever it had started is stopped and the error thrown. */
export async function started<T extends { stop(): Promise<void> }>(fixture: T, start: (f: T) => Promise<void>): Promise<T> {
  try {
    await start(fixture);
  } catch (e) {
    await fixture.stop();
    throw e;
  }
  return fixture;
}

export function randomImage(d = TEST_WIDTH * TEST_HEIGHT, max = TEST_MAX_VALUE): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (max + 1)));
}

/** The multi-exponentiation in-process (the daemons' tests run without worker threads). */
export const localMultiExp = async (bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint) =>
  multiExpFixed(bases, exponents, modulus);

type Callback<Res> = (error: ServiceError | null, reply: Res) => void;

/** A unary call as a promise, with a deadline. */
export function rpc<Res>(invoke: (metadata: Metadata, options: { deadline: Date }, cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) =>
    invoke(new Metadata(), { deadline: new Date(Date.now() + RPC_DEADLINE_MS) }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    ),
  );
}

/** A refusal's gRPC code is the one expected (node:assert, not vitest: this module is loaded as compiled CommonJS). */
export function expectCode(error: ServiceError, expected: Code, what: string): void {
  assert.equal(Code[error.code], Code[expected], `${what}: expected ${Code[expected]}, got ${Code[error.code]} ("${error.details}")`);
}

/** C1's session messages as a test sends them (the only places a C1Message is built by hand). */
export class SessionMessages {
  constructor(
    private readonly pk2: PublicKey,
    private readonly pk1: PublicKey,
    private readonly codec: WireCodec,
  ) {}

  /** A valid ciphertext under pk2. */
  readonly validCipher = () => this.codec.cipher(this.pk2.encrypt(3n));

  open(sessionId: string, keyFingerprint = this.pk2.fingerprint()): wire.C1Message {
    return paper(sessionId, wire.PaperStep.PAPER_STEP_OPEN, { $case: 'open', value: { keyFingerprint, k: 1, requestId: 'test' } });
  }

  square(sessionId: string, values: Buffer[]): wire.C1Message {
    return paper(sessionId, wire.PaperStep.PAPER_STEP_SSED_SM, { $case: 'square', value: { values } });
  }

  distance(sessionId: string): wire.C1Message {
    const value = this.codec.cipher(this.pk2.encrypt(5n));
    return paper(sessionId, wire.PaperStep.PAPER_STEP_FNN_DISTANCE, { $case: 'distance', value: { candidate: 0, value } });
  }

  bounds(sessionId: string): wire.C1Message {
    const seeds = [{ candidate: 0, value: this.codec.cipher(this.pk2.encrypt(5n)) }];
    return paper(sessionId, wire.PaperStep.PAPER_STEP_FNN_BOUNDS, { $case: 'bounds', value: { seeds, bounds: [] } });
  }

  /** `collectionId`: none by default (a C1 before its first upload), so only the digests decide. */
  fastOpen(
    sessionId: string,
    shareTicket: string,
    groups: wire.GroupLayout[],
    pk1 = this.pk1,
    collectionId = Buffer.alloc(0),
  ): wire.C1Message {
    const value = {
      keyFingerprint: this.pk2.fingerprint(),
      pk1Fingerprint: pk1.fingerprint(),
      k: 1,
      requestId: 'test',
      shareTicket,
      groups,
      collectionId,
    };
    return fast(sessionId, { $case: 'open', value });
  }

  fastBounds(sessionId: string): wire.C1Message {
    const items = [{ group: 0, value: this.codec.cipher(this.pk2.encrypt(5n)) }];
    return fast(sessionId, { $case: 'bounds', value: { items } });
  }
}

const paper = (sessionId: string, step: wire.PaperStep, body: wire.PaperC1Message['body']): wire.C1Message => ({
  sessionId,
  protocol: { $case: 'paper', value: { step, body } },
});
const fast = (sessionId: string, body: wire.FastC1Message['body']): wire.C1Message => ({
  sessionId,
  protocol: { $case: 'fast', value: { body } },
});

/** Opens a raw SecureComputation session as a (misbehaving) C1 would; sends each message after the previous reply. */
export function rawSession(
  secure: wire.SecureComputationClient,
  messages: wire.C1Message[],
): Promise<{ replies: wire.C2Message[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const call = secure.session({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
    const replies: wire.C2Message[] = [];
    let sent = 0;
    const next = () => (sent < messages.length ? call.write(messages[sent++]) : call.end());
    call.on('data', (m: wire.C2Message) => {
      replies.push(m);
      next();
    });
    call.on('error', (error: ServiceError) => resolve({ replies, error }));
    call.on('status', (s) => {
      if (s.code === Code.OK) resolve({ replies });
    });
    next();
  });
}

/** The body of C2's reply in a session of the paper's protocols (undefined for another family's). */
export const paperReply = (m: wire.C2Message) => (m.protocol?.$case === 'paper' ? m.protocol.value.body : undefined);
