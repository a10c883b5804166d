import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  CollectionWriter,
  generateSymmetricKey,
  INSECURE,
  localC2Crypto,
  packingParams,
  RecordKey,
  residueToBytes,
  shareQuery,
  silentLogger,
  WireCodec,
} from '@fnn/shared';
import type { GroupOutcome, Logger, OwnerLink, PublicKey, SecretKey } from '@fnn/shared';
// The daemons' shared test kit: the wire (calls, C1's messages by hand), then keys, images and start-up.
import { localMultiExp, rawSession, rpc, SessionMessages } from '@fnn/server-common/testing';
import { randomImage, started, testKeyPairs, TEST_HEIGHT, TEST_KEY_BITS, TEST_MAX_VALUE, TEST_WIDTH } from '@fnn/server-common/testing';
import { startC2, type C2Limits, type RunningC2 } from '../main';

// What C2's tests share: C2 as a real gRPC daemon on 127.0.0.1:0, alone (C2
// does not depend on C1: these tests play C1 themselves). Its replica is
// written by the owner's real CollectionWriter over a link whose C1 side
// answers as an empty C1 does and stores nothing; the C2 side is C2's
// Replica.PutGroup. Every wire C1Message of C2's tests is built by
// SessionMessages (@fnn/server-common/testing), shared with C1's tests.

// This file is the daemon's one testing entry point: the shared kit, under the names its tests use.
export * from '@fnn/server-common/testing';
export const D = TEST_WIDTH * TEST_HEIGHT;
export const PARAMS = packingParams(TEST_KEY_BITS, TEST_WIDTH, TEST_HEIGHT, TEST_MAX_VALUE);
/** Records per group at these sizes (4). */
export const G = PARAMS.groupSize;

/** C2 started on fresh keys with `records` random images in its replica (group 0 first, G per group), with `limits` or the defaults, logging to `log` (default: nowhere). */
export async function startC2Fixture(records: number, limits?: Partial<C2Limits>, log: Logger = silentLogger): Promise<C2Fixture> {
  const { c2, c1 } = await testKeyPairs();
  return started(new C2Fixture(c2.publicKey, c2.secretKey, c1.publicKey, limits, log), (f) => f.start(records));
}

export class C2Fixture {
  readonly recordKey = new RecordKey(generateSymmetricKey());
  /** The collection id a C1 would have fixed: every replica change of these tests carries it. */
  readonly collectionId = randomBytes(16);
  readonly codec: WireCodec;
  readonly root = mkdtempSync(join(tmpdir(), 'fnn-c2-test-'));
  /** C2's replica file. */
  readonly dbPath = join(this.root, 'c2.db');
  c2?: RunningC2;
  secure!: wire.SecureComputationClient;
  retrieval!: wire.RetrievalClient;
  replica!: wire.ReplicaClient;

  /** The C1 messages these tests send C2 by hand. */
  readonly messages: SessionMessages;

  constructor(
    /** C2's key: the collection's key. */
    readonly pk: PublicKey,
    readonly sk: SecretKey,
    /** C1's key: C2's replica is under it. */
    readonly pk1: PublicKey,
    private readonly limits?: Partial<C2Limits>,
    private readonly log: Logger = silentLogger,
  ) {
    this.codec = new WireCodec(pk.cipherBytes);
    this.messages = new SessionMessages(pk, pk1, this.codec);
  }

  async start(records: number): Promise<void> {
    this.c2 = await startC2({
      listen: '127.0.0.1:0',
      dbPath: this.dbPath,
      crypto: localC2Crypto(this.sk),
      fast: { sk2: this.sk, pk1: this.pk1, multiExp: localMultiExp },
      log: this.log,
      transport: INSECURE,
      limits: this.limits,
    });
    this.secure = new wire.SecureComputationClient(this.c2.address, credentials.createInsecure());
    this.retrieval = new wire.RetrievalClient(this.c2.address, credentials.createInsecure());
    this.replica = new wire.ReplicaClient(this.c2.address, credentials.createInsecure());
    const outcomes: GroupOutcome[] = [];
    await this.writer().upload(
      Array.from({ length: records }, (_, i) => ({
        id: `patient-${i}`,
        image: { width: TEST_WIDTH, height: TEST_HEIGHT, maxValue: TEST_MAX_VALUE, pixels: randomImage() },
      })),
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
    const { ticket } = await this.putShare({
      distance: shares.forC2.distance.map(residueToBytes),
      bound: shares.forC2.bound.map(residueToBytes),
      coarse: shares.forC2.coarse.map(residueToBytes),
    });
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
          collectionId: this.collectionId,
        };
      },
      getGroup: async () => ({ version: Buffer.alloc(0), members: [] }),
      upload: async (req) => ({ stored: req.records.length, replaced: 0, total: 0n }),
      delete: noC1,
      listGroups: noC1,
      putReplicaGroup: (req) => rpc<wire.ReplicaReply>((m, o, cb) => this.replica.putGroup(req, m, o, cb)),
      commitReplicaGroup: (req) => rpc<wire.CommitGroupReply>((m, o, cb) => this.replica.commitGroup(req, m, o, cb)),
      listReplicaGroups: () => rpc<wire.GroupList>((m, o, cb) => this.replica.listGroups({}, m, o, cb)),
    };
    const encrypt = (key: PublicKey) => async (values: bigint[]) => values.map((v) => key.encrypt(v));
    return new CollectionWriter(
      link,
      { pk2: this.pk, pk1: this.pk1, recordKey: this.recordKey },
      { underPk2: encrypt(this.pk), underPk1: encrypt(this.pk1) },
      ['packed'],
    );
  }

  /** Opens a raw SecureComputation session as a (misbehaving) C1 would. */
  rawSession(messages: wire.C1Message[]) {
    return rawSession(this.secure, messages);
  }
}
