import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'vitest';
import * as wire from '@fnn/proto';
import {
  CollectionWriter,
  generateKeyPair,
  generateSymmetricKey,
  INSECURE,
  localC2Crypto,
  multiExpFixed,
  packingParams,
  RecordKey,
  residueToBytes,
  shareQuery,
  silentLogger,
  WireCodec,
  type FixedWidthValues,
  type GroupOutcome,
  type OwnerLink,
  type PublicKey,
  type RunningDaemon,
  type SecretKey,
} from '@fnn/shared';
import { startC2 } from '../main';

// What C2's tests share: C2 as a real gRPC daemon on 127.0.0.1:0, alone (C2
// does not depend on C1: these tests play C1 themselves). Its replica is
// written by the owner's real CollectionWriter over a link whose C1 side
// answers as an empty C1 does and stores nothing; the C2 side is C2's
// Replica.PutGroup. Every wire C1Message of C2's tests is built by the
// builders below, so a change of those messages is made here only.

export const WIDTH = 4;
export const HEIGHT = 4;
export const D = WIDTH * HEIGHT;
export const MAX_VALUE = 255;
export const KEY_BITS = 512;
export const PARAMS = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE);
/** Records per group at these sizes (4). */
export const G = PARAMS.groupSize;
export const RPC_DEADLINE_MS = 60_000;
export const UNKNOWN_TICKET = '00112233445566778899aabbccddeeff';

export function randomImage(d = D): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (MAX_VALUE + 1)));
}

type Callback<Res> = (error: ServiceError | null, reply: Res) => void;

export function rpc<Res>(invoke: (metadata: Metadata, options: { deadline: Date }, cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) =>
    invoke(new Metadata(), { deadline: new Date(Date.now() + RPC_DEADLINE_MS) }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    ),
  );
}

export function expectCode(error: ServiceError, expected: Code, what: string): void {
  expect(
    Code[error.code],
    `${what}: expected ${Code[expected]}, got ${Code[error.code]} ("${error.details}")`,
  ).toBe(Code[expected]);
}

const localMultiExp = async (bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint) => multiExpFixed(bases, exponents, modulus);

/** C2 started on fresh keys with `records` random images in its replica (group 0 first, G per group). */
export async function startC2Fixture(records: number): Promise<C2Fixture> {
  const keys = await generateKeyPair(KEY_BITS);
  const keys1 = await generateKeyPair(KEY_BITS);
  const f = new C2Fixture(keys.publicKey, keys.secretKey, keys1.publicKey);
  try {
    await f.start(records);
  } catch (e) {
    await f.stop();
    throw e;
  }
  return f;
}

export class C2Fixture {
  readonly recordKey = new RecordKey(generateSymmetricKey());
  readonly codec: WireCodec;
  readonly root = mkdtempSync(join(tmpdir(), 'fnn-c2-test-'));
  c2?: RunningDaemon;
  secure!: wire.SecureComputationClient;
  retrieval!: wire.RetrievalClient;
  replica!: wire.ReplicaClient;

  constructor(
    /** C2's key: the collection's key. */
    readonly pk: PublicKey,
    readonly sk: SecretKey,
    /** C1's key: C2's replica is under it. */
    readonly pk1: PublicKey,
  ) {
    this.codec = new WireCodec(pk.cipherBytes);
  }

  async start(records: number): Promise<void> {
    this.c2 = await startC2({
      listen: '127.0.0.1:0',
      dbPath: join(this.root, 'c2.db'),
      crypto: localC2Crypto(this.sk),
      fast: { sk2: this.sk, pk1: this.pk1, multiExp: localMultiExp },
      log: silentLogger,
      transport: INSECURE,
    });
    this.secure = new wire.SecureComputationClient(this.c2.address, credentials.createInsecure());
    this.retrieval = new wire.RetrievalClient(this.c2.address, credentials.createInsecure());
    this.replica = new wire.ReplicaClient(this.c2.address, credentials.createInsecure());
    const outcomes: GroupOutcome[] = [];
    await this.writer().upload(
      Array.from({ length: records }, (_, i) => ({ id: `patient-${i}`, image: { width: WIDTH, height: HEIGHT, maxValue: MAX_VALUE, pixels: randomImage() } })),
      (o) => outcomes.push(o),
    );
    for (const o of outcomes) if (!o.ok) throw o.error;
  }

  async stop(): Promise<void> {
    for (const client of [this.secure, this.retrieval, this.replica]) client?.close();
    await this.c2?.stop();
    rmSync(this.root, { recursive: true, force: true });
  }

  keyHolderStatus() {
    return rpc<wire.KeyHolderStatus>((m, o, cb) => this.retrieval.status({}, m, o, cb));
  }

  putShare(share: wire.QueryShare) {
    return rpc<wire.ShareTicket>((m, o, cb) => this.retrieval.putShare(share, m, o, cb));
  }

  /** A valid share of a random query deposited at C2 (C2's half, as the doctor sends it): its ticket. */
  async depositedShare(): Promise<string> {
    const shares = await shareQuery(randomImage(), PARAMS, async (values) => values.map((v) => this.pk.encrypt(v)));
    const { ticket } = await this.putShare({ distance: shares.forC2.distance.map(residueToBytes), bound: shares.forC2.bound.map(residueToBytes) });
    return ticket;
  }

  /** The owner's writer whose C1 is empty and stores nothing: only C2's replica is written. */
  private writer(): CollectionWriter {
    const noC1 = (): Promise<never> => Promise.reject(new Error("C2's tests have no C1"));
    const link: OwnerLink = {
      status: noC1,
      allocateSlots: async (req) => {
        const fresh = [...new Set(req.lookupTags.map((t) => Buffer.from(t).toString('hex')))];
        return {
          slots: req.lookupTags.map((t) => {
            const i = fresh.indexOf(Buffer.from(t).toString('hex'));
            return { group: Math.floor(i / G), slot: i % G, stored: false };
          }),
        };
      },
      getGroup: async () => ({ version: Buffer.alloc(0), members: [] }),
      upload: async (req) => ({ stored: req.records.length, replaced: 0, total: 0n }),
      delete: noC1,
      putReplicaGroup: (req) => rpc<wire.ReplicaReply>((m, o, cb) => this.replica.putGroup(req, m, o, cb)),
    };
    const encrypt = (key: PublicKey) => async (values: bigint[]) => values.map((v) => key.encrypt(v));
    return new CollectionWriter(
      link,
      { pk2: this.pk, pk1: this.pk1, recordKey: this.recordKey },
      { underPk2: encrypt(this.pk), underPk1: encrypt(this.pk1) },
      ['packed'],
    );
  }

  // ----- a C1's session messages (the only places a C1Message is built) -----

  readonly validCipher = () => this.codec.cipher(this.pk.encrypt(3n));

  open(sessionId: string, keyFingerprint = this.pk.fingerprint()): wire.C1Message {
    return {
      sessionId,
      step: wire.Step.STEP_OPEN,
      body: { $case: 'open', value: { keyFingerprint, k: 1, requestId: 'test' } },
    };
  }

  square(sessionId: string, values: Buffer[]): wire.C1Message {
    return { sessionId, step: wire.Step.STEP_SSED_SM, body: { $case: 'square', value: { values } } };
  }

  distance(sessionId: string): wire.C1Message {
    return {
      sessionId,
      step: wire.Step.STEP_FNN_DISTANCE,
      body: { $case: 'distance', value: { candidate: 0, value: this.codec.cipher(this.pk.encrypt(5n)) } },
    };
  }

  bounds(sessionId: string): wire.C1Message {
    return {
      sessionId,
      step: wire.Step.STEP_FNN_BOUNDS,
      body: {
        $case: 'bounds',
        value: { seeds: [{ candidate: 0, value: this.codec.cipher(this.pk.encrypt(5n)) }], bounds: [] },
      },
    };
  }

  fastOpen(sessionId: string, shareTicket: string, groups: wire.GroupLayout[], pk1 = this.pk1): wire.C1Message {
    return {
      sessionId,
      step: wire.Step.STEP_FAST_OPEN,
      body: {
        $case: 'fastOpen',
        value: {
          keyFingerprint: this.pk.fingerprint(),
          pk1Fingerprint: pk1.fingerprint(),
          k: 1,
          requestId: 'test',
          shareTicket,
          groups,
        },
      },
    };
  }

  fastBounds(sessionId: string): wire.C1Message {
    return {
      sessionId,
      step: wire.Step.STEP_FAST_BOUNDS,
      body: { $case: 'fastBounds', value: { items: [{ group: 0, value: this.codec.cipher(this.pk.encrypt(5n)) }] } },
    };
  }

  /** Opens a raw SecureComputation session as a (misbehaving) C1 would; sends each message after the previous reply. */
  rawSession(messages: wire.C1Message[]): Promise<{ replies: wire.C2Message[]; error?: ServiceError }> {
    return new Promise((resolve) => {
      const call = this.secure.session({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
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
}
