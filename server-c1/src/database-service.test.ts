import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import {
  cipherToBytes,
  encryptQuery,
  encryptRecord,
  encryptSlotRecord,
  generateKeyPair,
  generateSymmetricKey,
  localEvaluator,
  localKeyHolder,
  multiExp,
  openSealedImage,
  packingParams,
  plaintextNearest,
  RecordKey,
  residueFromBytes,
  residueToBytes,
  sealImage,
  shareQuery,
  silentLogger,
  WireCodec,
  type PublicKey,
  type RunningDaemon,
  type SecretKey,
} from '@fnn/shared';
import { startC2 } from '@fnn/server-c2';
import { startC1 } from './main';

// C1 and C2 as real gRPC daemons on 127.0.0.1, driven through the generated
// clients exactly as the owner's and the doctor's CLI drive them: uploads go
// AllocateSlot (C1) -> Replica.Store (C2) -> Upload (C1) as in
// client/src/owner-upload.ts, fast queries Status (C1) -> PutShare (C2) ->
// Query (C1) as in client/src/commands/query.ts.

const WIDTH = 4;
const HEIGHT = 4;
const D = WIDTH * HEIGHT;
const MAX_VALUE = 255;
const COLLECTION_SIZE = 8;
const RPC_DEADLINE_MS = 60_000;

let pk: PublicKey; // C2's key: the collection's key, everything at C1 is under it
let sk: SecretKey;
let pk1: PublicKey; // C1's key: C2's replica is under it
let sk1: SecretKey;
let recordKey: RecordKey;
let codec: WireCodec;
let root: string;

let c2: RunningDaemon;
let c1: RunningDaemon; // the collection under test
let c1Empty: RunningDaemon; // a second C1 whose collection stays empty
let db: wire.DatabaseClient;
let dbEmpty: wire.DatabaseClient;
let retrieval: wire.RetrievalClient;
let replica: wire.ReplicaClient;
let secure: wire.SecureComputationClient;

/** One record as the owner prepares it: what C1 is sent and what C2's replica is sent. */
interface OwnerRecord {
  id: string;
  pixels: Uint16Array;
  record: wire.EncryptedRecord;
  replica: wire.ReplicaRecord;
}

/** The plaintext collection, in upload order, with what C1 and C2 were sent for each. */
const collection: OwnerRecord[] = [];
/** Valid records that are never stored: the base of the malformed uploads. */
let spare: OwnerRecord;
let spare5x5: OwnerRecord;

const encrypt2 = async (values: bigint[]) => values.map((v) => pk.encrypt(v));
const encrypt1 = async (values: bigint[]) => values.map((v) => pk1.encrypt(v));
const localMultiExp = async (bases: bigint[], exponents: bigint[], modulus: bigint) => multiExp(bases, exponents, modulus);

function randomImage(d: number): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (MAX_VALUE + 1)));
}

async function wireQuery(pixels: Uint16Array, width = WIDTH, height = HEIGHT): Promise<wire.EncryptedQuery> {
  return codec.queryToWire(await encryptQuery(encrypt2, pixels), pk.fingerprint(), width, height);
}

function uploadRequest(records: wire.EncryptedRecord[], over: Partial<wire.UploadRequest> = {}): wire.UploadRequest {
  return { keyFingerprint: pk.fingerprint(), width: WIDTH, height: HEIGHT, maxValue: MAX_VALUE, records, ...over };
}

/** A copy of a record (the byte arrays are shared; replace, never mutate them). */
const copy = (r: wire.EncryptedRecord, over: Partial<wire.EncryptedRecord> = {}): wire.EncryptedRecord => ({
  ...r,
  pixels: [...r.pixels],
  ...over,
});

function withPixel(r: wire.EncryptedRecord, index: number, bytes: Buffer): wire.EncryptedRecord {
  const out = copy(r);
  out.pixels[index] = bytes;
  return out;
}

/** A copy of a slot record with some fields replaced. */
const slotWith = (s: wire.SlotRecord | undefined, over: Partial<wire.SlotRecord>): wire.SlotRecord => ({ ...s!, ...over });
const withSlotPixel = (s: wire.SlotRecord | undefined, index: number, bytes: Buffer): wire.SlotRecord => {
  const pixels = [...s!.pixels];
  pixels[index] = bytes;
  return slotWith(s, { pixels });
};

// ----- gRPC calls as promises -----

type Callback<Res> = (error: ServiceError | null, reply: Res) => void;

function rpc<Res>(invoke: (metadata: Metadata, options: { deadline: Date }, cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) =>
    invoke(new Metadata(), { deadline: new Date(Date.now() + RPC_DEADLINE_MS) }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    ),
  );
}

const upload = (client: wire.DatabaseClient, req: wire.UploadRequest) =>
  rpc<wire.UploadReply>((m, o, cb) => client.upload(req, m, o, cb));
const remove = (client: wire.DatabaseClient, req: wire.DeleteRequest) =>
  rpc<wire.DeleteReply>((m, o, cb) => client.delete(req, m, o, cb));
const query = (client: wire.DatabaseClient, req: wire.QueryRequest) =>
  rpc<wire.QueryReply>((m, o, cb) => client.query(req, m, o, cb));
const allocateSlot = (client: wire.DatabaseClient, lookupTag: Buffer) =>
  rpc<wire.SlotAssignment>((m, o, cb) => client.allocateSlot({ lookupTag }, m, o, cb));
const databaseStatus = (client: wire.DatabaseClient) =>
  rpc<wire.DatabaseStatus>((m, o, cb) => client.status({}, m, o, cb));
const retrieve = (ticket: string) => rpc<wire.RetrieveReply>((m, o, cb) => retrieval.retrieve({ ticket }, m, o, cb));
const putShare = (share: wire.QueryShare) => rpc<wire.ShareTicket>((m, o, cb) => retrieval.putShare(share, m, o, cb));
const keyHolderStatus = () => rpc<wire.KeyHolderStatus>((m, o, cb) => retrieval.status({}, m, o, cb));
const replicaStore = (req: wire.ReplicaRecord) => rpc<wire.ReplicaReply>((m, o, cb) => replica.store(req, m, o, cb));
const replicaDelete = (req: wire.DeleteRequest) => rpc<wire.ReplicaReply>((m, o, cb) => replica.delete(req, m, o, cb));

/** The call must fail; returns its gRPC error. */
async function grpcError(call: Promise<unknown>, what: string): Promise<ServiceError> {
  let reply: unknown;
  try {
    reply = await call;
  } catch (e) {
    expect(typeof (e as ServiceError).code, `${what}: expected a gRPC error, got ${String(e)}`).toBe('number');
    return e as ServiceError;
  }
  const shown = JSON.stringify(reply, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
  throw new Error(`${what} succeeded (${shown}) but must fail`);
}

function expectCode(error: ServiceError, expected: Code, what: string): void {
  expect(
    Code[error.code],
    `${what}: expected ${Code[expected]}, got ${Code[error.code]} ("${error.details}")`,
  ).toBe(Code[expected]);
}

// ----- the owner, as client/src/owner-upload.ts -----

/**
 * One record encrypted as the owner does: its slot from C1's AllocateSlot, the
 * paper's layout and C1's slot record under C2's key, C2's slot record under
 * C1's key, the sealed image.
 */
async function prepareRecord(id: string, pixels: Uint16Array, width = WIDTH, height = HEIGHT): Promise<OwnerRecord> {
  const lookupTag = recordKey.lookupTag(id);
  const { group, slot } = await allocateSlot(db, lookupTag);
  const params = packingParams(Math.min(pk.bits, pk1.bits), width, height, MAX_VALUE);
  const [owner, slots] = await Promise.all([
    encryptRecord(encrypt2, recordKey, id, pixels),
    encryptSlotRecord(pixels, params, slot, encrypt2, encrypt1),
  ]);
  const shape = { width, height, maxValue: MAX_VALUE };
  return {
    id,
    pixels,
    replica: {
      keyFingerprint: pk.fingerprint(),
      evaluatorKeyFingerprint: pk1.fingerprint(),
      ...shape,
      lookupTag,
      slot: codec.slotToWire(group, slot, slots.forC2),
    },
    record: codec.recordToWire(owner, sealImage(recordKey, { ...shape, pixels }), codec.slotToWire(group, slot, slots.forC1)),
  };
}

/** The owner's whole upload of one record: C2's replica first, then C1 (or C1 only, to make the replicas differ). */
async function ownerUpload(id: string, pixels: Uint16Array, options: { replica?: boolean } = {}) {
  const prepared = await prepareRecord(id, pixels);
  const replicaReply = options.replica === false ? undefined : await replicaStore(prepared.replica);
  const reply = await upload(db, uploadRequest([prepared.record]));
  return { ...prepared, reply, replicaReply };
}

/** The owner's delete: C1 first (the authority), then C2's replica. */
async function ownerDelete(lookupTags: Buffer[]) {
  const reply = await remove(db, { lookupTags });
  const replicaReply = await replicaDelete({ lookupTags });
  return { reply, replicaReply };
}

// ----- the doctor, as client/src/commands/query.ts -----

const paperRequest = (q: wire.EncryptedQuery | undefined, protocol = wire.Protocol.PROTOCOL_FNN, k = 1): wire.QueryRequest => ({
  tag: 'test',
  query: q,
  protocol,
  k,
  fast: undefined,
});

/**
 * A fast query as the doctor builds it: the packing from C1's Status, the
 * query split into shares, v deposited at C2 (PutShare), u and the ticket to C1.
 */
async function fastRequest(
  pixels: Uint16Array,
  options: { protocol?: wire.Protocol; k?: number; c2Share?: (s: wire.QueryShare) => wire.QueryShare } = {},
): Promise<wire.QueryRequest> {
  const status = await databaseStatus(db);
  expect(status.keyFingerprint, 'C1 must hold the collection under the doctor\'s key').toBe(pk.fingerprint());
  const params = packingParams(status.keyBits, status.width, status.height, status.maxValue);
  const shares = await shareQuery(pixels, params, encrypt2);
  const forC2 = { distance: shares.forC2.distance.map(residueToBytes), bound: shares.forC2.bound.map(residueToBytes) };
  const { ticket } = await putShare(options.c2Share ? options.c2Share(forC2) : forC2);
  return {
    tag: 'test',
    protocol: options.protocol ?? wire.Protocol.PROTOCOL_FAST,
    k: options.k ?? 1,
    query: {
      keyFingerprint: pk.fingerprint(),
      width: WIDTH,
      height: HEIGHT,
      negatedPixels: [],
      negatedSum: Buffer.alloc(0),
      negatedSpread: Buffer.alloc(0),
      spread: Buffer.alloc(0),
    },
    fast: {
      distanceShare: shares.forC1.shares.distance.map(residueToBytes),
      boundShare: shares.forC1.shares.bound.map(residueToBytes),
      distanceConstant: codec.cipher(shares.forC1.distanceConstant),
      boundConstant: codec.cipher(shares.forC1.boundConstant),
      shareTicket: ticket,
    },
  };
}

const withFast = (req: wire.QueryRequest, over: Partial<wire.FastQuery>): wire.QueryRequest => ({
  ...req,
  fast: { ...req.fast!, ...over },
});

const isFast = (p: wire.Protocol) => p === wire.Protocol.PROTOCOL_FAST || p === wire.Protocol.PROTOCOL_UNSPECIFIED;

/**
 * The doctor's whole step 7 of the paper protocols: decrypt each E_k(ID), fetch
 * m + r from C2 with the ticket, subtract C1's r mod N; returns the ids and the exact pixels.
 */
async function redeem(reply: wire.QueryReply): Promise<{ id: string; pixels: bigint[] }[]> {
  const fetched = await retrieve(reply.retrievalTicket);
  expect(fetched.images.length, 'C2 must hold one blinded image per result').toBe(reply.results.length);
  return reply.results.map((result, i) => {
    const blinded = fetched.images[i].values;
    expect(blinded.length, `C2's image ${i} must have ${D} pixels`).toBe(D);
    expect(result.blinding.length, `C1's blinding ${i} must have ${D} values`).toBe(D);
    const pixels = blinded.map((v, j) => {
      const m = (residueFromBytes(v) - residueFromBytes(result.blinding[j])) % pk.n;
      return m < 0n ? m + pk.n : m;
    });
    return { id: recordKey.decryptId(result.encryptedId), pixels };
  });
}

/** The fast protocol's results: E_k(ID) and the sealed image, opened with k; nothing to fetch from C2. */
function openResults(reply: wire.QueryReply): { id: string; pixels: bigint[] }[] {
  expect(reply.retrievalTicket, 'a fast query has no retrieval step at C2').toBe('');
  return reply.results.map((result, i) => {
    expect(result.blinding.length, `fast result ${i} carries no blinding`).toBe(0);
    const image = openSealedImage(recordKey, result.sealedImage);
    expect([image.width, image.height, image.maxValue], `sealed image ${i} must be the collection's shape`).toEqual([
      WIDTH,
      HEIGHT,
      MAX_VALUE,
    ]);
    return { id: recordKey.decryptId(result.encryptedId), pixels: Array.from(image.pixels, BigInt) };
  });
}

/** Asks C1 for the k nearest of `pixels` and checks ids and returned images against the plaintext reference. */
async function expectExactNeighbours(pixels: Uint16Array, protocol: wire.Protocol, k: number, what: string) {
  const request = isFast(protocol) ? await fastRequest(pixels, { protocol, k }) : paperRequest(await wireQuery(pixels), protocol, k);
  const reply = await query(db, request);
  const expected = plaintextNearest(collection, pixels, Math.max(k, 1));
  expect(reply.tag, `${what}: the query tag must be echoed`).toBe('test');
  expect(reply.total, `${what}: every record must be searched`).toBe(BigInt(collection.length));
  expect(reply.rejected <= reply.total, `${what}: more records rejected than searched`).toBe(true);
  const protocolRun = isFast(protocol) ? wire.Protocol.PROTOCOL_FAST : protocol;
  expect(wire.Protocol[reply.protocol], `${what}: the reply must name the protocol that ran`).toBe(wire.Protocol[protocolRun]);
  const got = isFast(protocol) ? openResults(reply) : await redeem(reply);
  expect(
    got.map((g) => g.id),
    `${what}: the neighbours (nearest first) differ from the plaintext reference`,
  ).toEqual(expected.map((e) => e.id));
  for (const g of got) {
    const stored = collection.find((c) => c.id === g.id)!;
    expect(g.pixels, `${what}: returned pixels of ${g.id} differ from the stored image`).toEqual(Array.from(stored.pixels, BigInt));
  }
  return reply;
}

/** Opens a raw SecureComputation session as a (misbehaving) C1 would; sends each message after the previous reply. */
function rawSession(messages: wire.C1Message[]): Promise<{ replies: wire.C2Message[]; error?: ServiceError }> {
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

const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

function c2Config(listen: string) {
  return {
    listen,
    dbPath: join(root, 'c2.db'),
    crypto: localKeyHolder(sk),
    fast: { ownSecretKey: sk, evaluatorKey: pk1, multiExp: localMultiExp },
    log: silentLogger,
  };
}

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
  ({ publicKey: pk1, secretKey: sk1 } = await generateKeyPair(512));
  recordKey = new RecordKey(generateSymmetricKey());
  codec = new WireCodec(pk.cipherBytes);
  root = mkdtempSync(join(tmpdir(), 'fnn-db-service-test-'));

  c2 = await startC2(c2Config('127.0.0.1:0'));
  const c1Config = {
    listen: '127.0.0.1:0',
    c2Address: c2.address,
    crypto: localEvaluator(pk),
    fast: { keyHolderKey: pk, ownSecretKey: sk1, multiExp: localMultiExp },
    log: silentLogger,
  };
  c1 = await startC1({ ...c1Config, dbPath: join(root, 'c1.db') });
  c1Empty = await startC1({ ...c1Config, dbPath: join(root, 'c1-empty.db') });
  db = new wire.DatabaseClient(c1.address, credentials.createInsecure());
  dbEmpty = new wire.DatabaseClient(c1Empty.address, credentials.createInsecure());
  retrieval = new wire.RetrievalClient(c2.address, credentials.createInsecure());
  replica = new wire.ReplicaClient(c2.address, credentials.createInsecure());
  secure = new wire.SecureComputationClient(c2.address, credentials.createInsecure());

  for (let i = 0; i < COLLECTION_SIZE; i++) {
    const uploaded = await ownerUpload(`patient-${i}`, randomImage(D));
    expect(uploaded.reply, `the upload of record ${i} must store it`).toEqual({ stored: 1, replaced: 0, total: BigInt(i + 1) });
    expect(uploaded.replicaReply, `C2's replica must hold record ${i}`).toEqual({ total: BigInt(i + 1) });
    collection.push(uploaded);
  }
  spare = await prepareRecord('spare', randomImage(D));
  spare5x5 = await prepareRecord('spare-5x5', randomImage(25), 5, 5);
});

afterAll(async () => {
  for (const client of [db, dbEmpty, retrieval, replica, secure]) client?.close();
  await Promise.all([c1?.stop(), c1Empty?.stop()]);
  await c2?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('Database service: valid requests', () => {
  it('uses groups of at least 2 records at these sizes (so the packing is exercised)', () => {
    expect(packingParams(512, WIDTH, HEIGHT, MAX_VALUE).groupSize).toBeGreaterThanOrEqual(2);
  });

  it('reports the collection in Status: size, shape, key and a reachable C2; C2 reports its replica', async () => {
    const s = await databaseStatus(db);
    expect(s, 'Status does not describe the uploaded collection').toEqual({
      records: BigInt(COLLECTION_SIZE),
      width: WIDTH,
      height: HEIGHT,
      maxValue: MAX_VALUE,
      keyBits: 512,
      keyFingerprint: pk.fingerprint(),
      c2Reachable: true,
    });
    const k = await keyHolderStatus();
    expect(k.keyFingerprint, 'C2 reports its own key').toBe(pk.fingerprint());
    expect(k.replicaRecords, 'C2\'s replica must hold every record').toBe(BigInt(COLLECTION_SIZE));
  });

  it('allocates slots in group order: a stored record its own slot, a new one the first free slot', async () => {
    const G = packingParams(512, WIDTH, HEIGHT, MAX_VALUE).groupSize;
    for (const [i, c] of collection.entries()) {
      const own = await allocateSlot(db, c.record.lookupTag);
      expect(own, `${c.id} must get its own slot back`).toEqual({ group: c.record.slot!.group, slot: c.record.slot!.slot });
      expect(own, `${c.id} was uploaded ${i + 1}th into an empty collection`).toEqual({ group: Math.floor(i / G), slot: i % G });
    }
    // The next free slot after those reserved (allocated, not yet stored) for the spare records.
    expect(await allocateSlot(db, recordKey.lookupTag('nobody-yet')), 'a new record gets the next slot').toEqual({
      group: Math.floor((COLLECTION_SIZE + 2) / G),
      slot: (COLLECTION_SIZE + 2) % G,
    });
    expect(await allocateSlot(db, recordKey.lookupTag('nobody-yet')), 'the same ID is given its reserved slot again').toEqual({
      group: Math.floor((COLLECTION_SIZE + 2) / G),
      slot: (COLLECTION_SIZE + 2) % G,
    });
  });

  it('stores, replaces (by lookup tag) and deletes a record at C1 and C2, reporting counts', async () => {
    const first = await ownerUpload('temporary', randomImage(D));
    expect(first.reply, 'a new record must be stored').toEqual({ stored: 1, replaced: 0, total: BigInt(COLLECTION_SIZE + 1) });
    expect(first.replicaReply, 'C2 must store its replica').toEqual({ total: BigInt(COLLECTION_SIZE + 1) });
    const pixels = randomImage(D);
    const again = await ownerUpload('temporary', pixels);
    expect(again.record.slot, 'a replacement keeps its slot').toEqual(expect.objectContaining({ group: first.record.slot!.group, slot: first.record.slot!.slot }));
    expect(again.reply, 'the same lookup tag must be replaced').toEqual({ stored: 0, replaced: 1, total: BigInt(COLLECTION_SIZE + 1) });
    expect(again.replicaReply, 'C2 must replace its replica').toEqual({ total: BigInt(COLLECTION_SIZE + 1) });
    collection.push(again);
    try {
      // Both replicas hold the new content: a fast self-query finds it.
      await expectExactNeighbours(pixels, wire.Protocol.PROTOCOL_FAST, 1, 'fast self-query of the replaced record');
    } finally {
      collection.pop();
      const deleted = await ownerDelete([first.record.lookupTag]);
      expect(deleted.reply, 'delete by lookup tag').toEqual({ deleted: 1, total: BigInt(COLLECTION_SIZE) });
      expect(deleted.replicaReply, 'C2 must forget the record too').toEqual({ total: BigInt(COLLECTION_SIZE) });
    }
    expect(await replicaDelete({ lookupTags: [first.record.lookupTag] }), 'C2 ignores a tag it does not hold').toEqual({
      total: BigInt(COLLECTION_SIZE),
    });
  });

  it.each([
    ['FAST', wire.Protocol.PROTOCOL_FAST, 1],
    ['FAST', wire.Protocol.PROTOCOL_FAST, 3],
    ['unspecified (FAST)', wire.Protocol.PROTOCOL_UNSPECIFIED, 1],
    ['unspecified (FAST)', wire.Protocol.PROTOCOL_UNSPECIFIED, 3],
    ['FNN', wire.Protocol.PROTOCOL_FNN, 1],
    ['FNN', wire.Protocol.PROTOCOL_FNN, 3],
    ['BF', wire.Protocol.PROTOCOL_BF, 1],
    ['BF', wire.Protocol.PROTOCOL_BF, 3],
  ])('answers a %s query with k = %i with the exact plaintext nearest neighbours and their pixels', async (name, protocol, k) => {
    await expectExactNeighbours(randomImage(D), protocol, k, `${name} k=${k}`);
  });

  it('answers a FAST query for every record (k = all) in the exact order', async () => {
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FAST, COLLECTION_SIZE, 'FAST k=n');
  });

  it.each([
    ['FAST', wire.Protocol.PROTOCOL_FAST],
    ['FNN', wire.Protocol.PROTOCOL_FNN],
    ['BF', wire.Protocol.PROTOCOL_BF],
  ])('finds a stored image itself (distance 0) with %s', async (name, protocol) => {
    const target = collection[5];
    const reply = await expectExactNeighbours(target.pixels, protocol, 1, `${name} self-query`);
    const found = recordKey.decryptId(reply.results[0].encryptedId);
    expect(found, `${name}: a stored image must be its own nearest neighbour`).toBe(target.id);
  });

  it.each([
    ['FAST', wire.Protocol.PROTOCOL_FAST],
    ['FNN', wire.Protocol.PROTOCOL_FNN],
  ])('treats k = 0 as k = 1 (%s)', async (_name, protocol) => {
    const pixels = randomImage(D);
    const request = isFast(protocol) ? await fastRequest(pixels, { k: 0 }) : paperRequest(await wireQuery(pixels), protocol, 0);
    const reply = await query(db, request);
    expect(reply.results.length, 'k = 0 must return exactly one neighbour').toBe(1);
    const got = isFast(protocol) ? openResults(reply) : await redeem(reply);
    expect(got[0].id).toBe(plaintextNearest(collection, pixels, 1)[0].id);
  });

  it('answers FAST and FNN queries on one BatchQuery stream, and reports a failed one in its reply', async () => {
    const images = [randomImage(D), randomImage(D)];
    const requests = [
      { ...(await fastRequest(images[0])), tag: 'fast' },
      { ...paperRequest(await wireQuery(images[1])), tag: 'fnn' },
      { ...withFast(await fastRequest(images[0]), { shareTicket: '00112233445566778899aabbccddeeff' }), tag: 'bad-ticket' },
    ];
    const replies = await new Promise<wire.QueryReply[]>((resolve, reject) => {
      const call = db.batchQuery({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
      const got: wire.QueryReply[] = [];
      call.on('data', (r: wire.QueryReply) => got.push(r));
      call.on('error', reject);
      call.on('end', () => resolve(got));
      for (const r of requests) call.write(r);
      call.end();
    });
    const byTag = new Map(replies.map((r) => [r.tag, r]));
    expect([...byTag.keys()].sort(), 'one reply per query').toEqual(['bad-ticket', 'fast', 'fnn']);
    const fast = byTag.get('fast')!;
    expect(fast.errorCode, `fast: ${fast.errorMessage}`).toBe('');
    expect(openResults(fast).map((r) => r.id)).toEqual([plaintextNearest(collection, images[0], 1)[0].id]);
    const fnn = byTag.get('fnn')!;
    expect(fnn.errorCode, `fnn: ${fnn.errorMessage}`).toBe('');
    expect((await redeem(fnn)).map((r) => r.id)).toEqual([plaintextNearest(collection, images[1], 1)[0].id]);
    const bad = byTag.get('bad-ticket')!;
    expect(bad.errorCode, 'an unknown share ticket fails that query only').toBe('NOT_FOUND');
    expect(bad.results).toEqual([]);
  });
});

// ----- the two replicas must agree -----

describe('C1 and C2 replicas that disagree', () => {
  it('fail a FAST query with FAILED_PRECONDITION naming the difference while FNN works; storing the missing replica record fixes it', async () => {
    const pixels = randomImage(D);
    const c1Only = await ownerUpload('c1-only', pixels, { replica: false });
    expect(c1Only.reply.total, 'C1 stored the record').toBe(BigInt(COLLECTION_SIZE + 1));
    expect((await keyHolderStatus()).replicaRecords, 'C2 did not').toBe(BigInt(COLLECTION_SIZE));
    collection.push(c1Only);
    try {
      const error = await grpcError(query(db, await fastRequest(randomImage(D))), 'a FAST query while the replicas differ');
      expectCode(error, Code.FAILED_PRECONDITION, 'a FAST query while the replicas differ');
      expect(error.details, 'the refusal must say that the replicas differ').toMatch(/replicas.*differ/);
      expect(error.details, 'the refusal must say it comes from C2').toMatch(/C2/);
      // The paper protocols do not use the replica at C2.
      await expectExactNeighbours(pixels, wire.Protocol.PROTOCOL_FNN, 1, 'FNN while the replicas differ');
      await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_BF, 2, 'BF while the replicas differ');
      expect(await replicaStore(c1Only.replica), 'the owner completes the upload at C2').toEqual({
        total: BigInt(COLLECTION_SIZE + 1),
      });
      await expectExactNeighbours(pixels, wire.Protocol.PROTOCOL_FAST, 1, 'FAST once the replicas agree again');
    } finally {
      collection.pop();
      await ownerDelete([c1Only.record.lookupTag]);
    }
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FAST, 2, 'FAST after the record was deleted on both');
  });

  it('fail a FAST query after a delete that reached C1 only, until C2 forgets the record too', async () => {
    // collection[1] shares group 0 with collection[0] (G >= 2), so that group's digest changes at C1 only.
    const [victim] = collection.splice(1, 1);
    expect(victim.record.slot, 'the record must not be alone in its group for this test').toEqual(expect.objectContaining({ group: 0, slot: 1 }));
    expect((await remove(db, { lookupTags: [victim.record.lookupTag] })).total).toBe(BigInt(COLLECTION_SIZE - 1));
    const error = await grpcError(query(db, await fastRequest(randomImage(D))), 'a FAST query after a delete at C1 only');
    expectCode(error, Code.FAILED_PRECONDITION, 'a FAST query after a delete at C1 only');
    expect(error.details).toMatch(/replicas.*differ/);
    await replicaDelete({ lookupTags: [victim.record.lookupTag] });
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FAST, 1, 'FAST once C2 forgot the record');
    // Put it back (at the end of the upload order, in its freed slot).
    const back = await ownerUpload(victim.id, victim.pixels);
    expect(back.record.slot, 'the freed slot is allocated first').toEqual(expect.objectContaining({ group: 0, slot: 1 }));
    collection.push(back);
  });
  it('fail a FAST query, rather than answer wrongly, when C2 holds other content under a record\'s tag (a replacement that reached C2 only)', async () => {
    // The owner replaces a record: C2's replica is stored first, then C1's upload
    // fails (C1 down, or refused). Both servers hold the same tag in the same
    // slot, with different images. The group digests compare tags only.
    const target = collection[4];
    const replacement = await prepareRecord(target.id, randomImage(D));
    expect(replacement.replica.slot!.slot, 'the replacement keeps the slot').toBe(target.replica.slot!.slot);
    await replicaStore(replacement.replica);
    try {
      const outcome = await query(db, await fastRequest(target.pixels, { k: COLLECTION_SIZE })).then(
        (reply) => ({ ids: openResults(reply).map((r) => r.id), error: undefined }),
        (error: ServiceError) => ({ ids: undefined, error }),
      );
      const expected = plaintextNearest(collection, target.pixels, COLLECTION_SIZE).map((e) => e.id);
      expect(
        outcome.error ? Code[outcome.error.code] : `an answer (${outcome.ids!.join(' ') === expected.join(' ') ? 'right by luck' : 'WRONG'}: ${outcome.ids!.join(' ')})`,
        'replicas holding different images under one tag must be refused like any other disagreement',
      ).toBe('FAILED_PRECONDITION');
    } finally {
      await replicaStore(target.replica); // put C2's replica back as it was
    }
    await expectExactNeighbours(target.pixels, wire.Protocol.PROTOCOL_FAST, 1, 'FAST once C2 holds the original again');
  });
});

// ----- malformed input: every case is refused with its code and leaves both servers as they were -----

interface BadCase {
  name: string;
  code: Code;
  /** The C1 the case talks to (default: the populated one). */
  target?: () => wire.DatabaseClient;
  run: () => Promise<unknown>;
}

const zeros = (bytes = pk.cipherBytes) => Buffer.alloc(bytes);
const allOnes = (bytes = pk.cipherBytes) => Buffer.alloc(bytes, 0xff);
const factorOfN = () => Buffer.from(cipherToBytes(BigInt(sk.toJSON().p), pk.cipherBytes));
const factorOfN1 = () => Buffer.from(cipherToBytes(BigInt(sk1.toJSON().p), pk1.cipherBytes));
const UNKNOWN_TICKET = '00112233445566778899aabbccddeeff';

const badUpload = (name: string, build: () => wire.UploadRequest, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Upload: ${name}`,
  code,
  run: () => upload(db, build()),
});
const badSlot = (name: string, slot: () => wire.SlotRecord | undefined): BadCase =>
  badUpload(`slot record: ${name}`, () => uploadRequest([copy(spare.record, { slot: slot() })]));
const badQuery = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Query: ${name}`,
  code,
  run: async () => query(db, await build()),
});
const badFast = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase =>
  badQuery(`FAST ${name}`, build, code);
const badReplica = (name: string, build: () => wire.ReplicaRecord): BadCase => ({
  name: `Replica.Store: ${name}`,
  code: Code.INVALID_ARGUMENT,
  run: () => replicaStore(build()),
});
const replicaWith = (over: Partial<wire.ReplicaRecord>): wire.ReplicaRecord => ({ ...spare.replica, ...over });
const replicaSlot = (over: Partial<wire.SlotRecord>) => replicaWith({ slot: slotWith(spare.replica.slot, over) });

const badCases: BadCase[] = [
  badUpload('wrong key fingerprint', () => uploadRequest([spare.record], { keyFingerprint: '0123456789abcdef' })),
  badUpload('image size differs from the collection (5x5 into 4x4)', () =>
    uploadRequest([spare5x5.record], { width: 5, height: 5 }),
  ),
  badUpload('pixel depth differs from the collection (65535 into 255)', () => uploadRequest([spare.record], { maxValue: 65535 })),
  badUpload('pixel count is not width*height (15 of 16)', () =>
    uploadRequest([copy(spare.record, { pixels: spare.record.pixels.slice(1) })]),
  ),
  badUpload('pixel count is not width*height (17 of 16)', () =>
    uploadRequest([copy(spare.record, { pixels: [...spare.record.pixels, spare.record.pixels[0]] })]),
  ),
  badUpload('zero width', () => uploadRequest([spare.record], { width: 0, height: 16 })),
  badUpload('zero height', () => uploadRequest([spare.record], { width: 16, height: 0 })),
  badUpload('huge width (1,000,000 x 1)', () => uploadRequest([spare.record], { width: 1_000_000, height: 1 })),
  badUpload('huge width and height (65536 x 65536)', () => uploadRequest([spare.record], { width: 65536, height: 65536 })),
  badUpload('maxValue 0', () => uploadRequest([spare.record], { maxValue: 0 })),
  badUpload('maxValue 70000', () => uploadRequest([spare.record], { maxValue: 70000 })),
  badUpload('empty records list', () => uploadRequest([])),
  badUpload('pixel ciphertext of the wrong byte length (one byte short)', () =>
    uploadRequest([withPixel(spare.record, 2, spare.record.pixels[2].subarray(1))]),
  ),
  badUpload('pixel ciphertext one byte too long', () =>
    uploadRequest([withPixel(spare.record, 2, Buffer.concat([Buffer.alloc(1), spare.record.pixels[2]]))]),
  ),
  badUpload('pixel ciphertext equal to 0', () => uploadRequest([withPixel(spare.record, 0, zeros())])),
  badUpload('pixel ciphertext >= N^2 (all 0xff bytes)', () => uploadRequest([withPixel(spare.record, 7, allOnes())])),
  badUpload('pixel ciphertext sharing a factor with N (p)', () => uploadRequest([withPixel(spare.record, 15, factorOfN())])),
  badUpload('sum ciphertext equal to 0', () => uploadRequest([copy(spare.record, { sum: zeros() })])),
  badUpload('spread ciphertext sharing a factor with N', () => uploadRequest([copy(spare.record, { spread: factorOfN() })])),
  badUpload('lookup tag of the wrong length (31 bytes)', () =>
    uploadRequest([copy(spare.record, { lookupTag: spare.record.lookupTag.subarray(1) })]),
  ),
  badUpload('empty lookup tag', () => uploadRequest([copy(spare.record, { lookupTag: Buffer.alloc(0) })])),
  badUpload('empty encrypted_id', () => uploadRequest([copy(spare.record, { encryptedId: Buffer.alloc(0) })])),
  badUpload('empty sealed image', () => uploadRequest([copy(spare.record, { sealedImage: Buffer.alloc(0) })])),
  badUpload('a valid record followed by a malformed one (nothing of the call is stored)', () =>
    uploadRequest([spare.record, withPixel(copy(spare.record, { lookupTag: recordKey.lookupTag('spare-2') }), 0, zeros())]),
  ),
  badSlot('missing', () => undefined),
  badSlot('15 of 16 pixels', () => slotWith(spare.record.slot, { pixels: spare.record.slot!.pixels.slice(1) })),
  badSlot('an embedding one short', () => slotWith(spare.record.slot, { embedding: spare.record.slot!.embedding.slice(1) })),
  badSlot('pixel ciphertext equal to 0', () => withSlotPixel(spare.record.slot, 0, zeros())),
  badSlot('pixel ciphertext >= N^2', () => withSlotPixel(spare.record.slot, 3, allOnes())),
  badSlot('pixel ciphertext of the wrong byte length', () => withSlotPixel(spare.record.slot, 3, zeros(pk.cipherBytes - 1))),
  badSlot('no distance constant (C1\'s replica needs it)', () => slotWith(spare.record.slot, { distanceConstant: Buffer.alloc(0) })),
  badSlot('bound constant sharing a factor with N', () => slotWith(spare.record.slot, { boundConstant: factorOfN() })),
  badSlot('slot outside the group (slot = group size)', () =>
    slotWith(spare.record.slot, { slot: packingParams(512, WIDTH, HEIGHT, MAX_VALUE).groupSize }),
  ),
  badUpload(
    'a slot held by another record',
    () => uploadRequest([copy(spare.record, { slot: slotWith(spare.record.slot, { group: 0, slot: 0 }) })]),
    Code.FAILED_PRECONDITION,
  ),
  {
    name: 'AllocateSlot: lookup tag of the wrong length',
    code: Code.INVALID_ARGUMENT,
    run: () => allocateSlot(db, recordKey.lookupTag('x').subarray(1)),
  },
  badQuery('wrong key fingerprint', async () => {
    const q = await wireQuery(randomImage(D));
    return paperRequest({ ...q, keyFingerprint: '0123456789abcdef' });
  }),
  badQuery('query image size differs from the collection (5x5)', async () =>
    paperRequest(await wireQuery(randomImage(25), 5, 5)),
  ),
  badQuery('query claims 4x4 but has 15 pixels', async () => {
    const q = await wireQuery(randomImage(D));
    return paperRequest({ ...q, negatedPixels: q.negatedPixels.slice(1) });
  }),
  badQuery('missing query', async () => paperRequest(undefined)),
  badQuery('k = 101', async () => paperRequest(await wireQuery(randomImage(D)), wire.Protocol.PROTOCOL_FNN, 101)),
  badQuery('unknown protocol enum value 7', async () =>
    paperRequest(await wireQuery(randomImage(D)), 7 as wire.Protocol, 1),
  ),
  badQuery('query pixel ciphertext equal to 0', async () => {
    const q = await wireQuery(randomImage(D));
    return paperRequest({ ...q, negatedPixels: [zeros(), ...q.negatedPixels.slice(1)] });
  }),
  badQuery('query spread ciphertext >= N^2', async () => {
    const q = await wireQuery(randomImage(D));
    return paperRequest({ ...q, spread: allOnes() });
  }),
  badQuery('a paper-style query with protocol unspecified (the default is FAST, which needs its shares)', async () =>
    paperRequest(await wireQuery(randomImage(D)), wire.Protocol.PROTOCOL_UNSPECIFIED),
  ),
  badFast('without its `fast` part', async () => ({ ...(await fastRequest(randomImage(D))), fast: undefined })),
  badFast('without its query (shape and key)', async () => ({ ...(await fastRequest(randomImage(D))), query: undefined })),
  badFast('wrong key fingerprint', async () => {
    const req = await fastRequest(randomImage(D));
    return { ...req, query: { ...req.query!, keyFingerprint: '0123456789abcdef' } };
  }),
  badFast('query image size differs from the collection (claims 5x5)', async () => {
    const req = await fastRequest(randomImage(D));
    return { ...req, query: { ...req.query!, width: 5, height: 5 } };
  }),
  badFast('k = 101', async () => fastRequest(randomImage(D), { k: 101 })),
  badFast('C1\'s distance share of the wrong length (15 of 16)', async () => {
    const req = await fastRequest(randomImage(D));
    return withFast(req, { distanceShare: req.fast!.distanceShare.slice(1) });
  }),
  badFast('C1\'s bound share of the wrong length (one short)', async () => {
    const req = await fastRequest(randomImage(D));
    return withFast(req, { boundShare: req.fast!.boundShare.slice(1) });
  }),
  badFast('C1\'s share with a value above 64 bytes', async () => {
    const req = await fastRequest(randomImage(D));
    return withFast(req, { distanceShare: [Buffer.alloc(65, 1), ...req.fast!.distanceShare.slice(1)] });
  }),
  badFast('distance constant equal to 0', async () => withFast(await fastRequest(randomImage(D)), { distanceConstant: zeros() })),
  badFast('bound constant of the wrong byte length', async () =>
    withFast(await fastRequest(randomImage(D)), { boundConstant: zeros(pk.cipherBytes + 1) }),
  ),
  badFast('C2\'s share of the wrong length (C2 refuses it at PutShare)', async () =>
    fastRequest(randomImage(D), { c2Share: (s) => ({ ...s, distance: s.distance.slice(1) }) }),
  ),
  badFast('an unknown share ticket', async () => withFast(await fastRequest(randomImage(D)), { shareTicket: UNKNOWN_TICKET }), Code.NOT_FOUND),
  badFast('an empty share ticket', async () => withFast(await fastRequest(randomImage(D)), { shareTicket: '' }), Code.NOT_FOUND),
  badFast(
    'a share ticket used twice (the 2nd time)',
    async () => {
      const req = await fastRequest(randomImage(D));
      await query(db, req); // the 1st use must succeed
      return req;
    },
    Code.NOT_FOUND,
  ),
  {
    name: 'PutShare: a share value above 64 bytes',
    code: Code.INVALID_ARGUMENT,
    run: () => putShare({ distance: [Buffer.alloc(65, 1)], bound: [] }),
  },
  {
    name: 'Query: on an empty collection',
    code: Code.INVALID_ARGUMENT,
    target: () => dbEmpty,
    run: async () => query(dbEmpty, paperRequest(await wireQuery(randomImage(D)))),
  },
  {
    name: 'Query: FAST on an empty collection',
    code: Code.INVALID_ARGUMENT,
    target: () => dbEmpty,
    run: async () => query(dbEmpty, await fastRequest(randomImage(D))),
  },
  badReplica('wrong key fingerprint (C2\'s)', () => replicaWith({ keyFingerprint: '0123456789abcdef' })),
  badReplica('wrong evaluator key fingerprint (C1\'s)', () => replicaWith({ evaluatorKeyFingerprint: pk.fingerprint() })),
  badReplica('lookup tag of the wrong length (31 bytes)', () => replicaWith({ lookupTag: spare.replica.lookupTag.subarray(1) })),
  badReplica('no slot record', () => replicaWith({ slot: undefined })),
  badReplica('zero width', () => replicaWith({ width: 0 })),
  badReplica('maxValue 70000', () => replicaWith({ maxValue: 70000 })),
  badReplica('image size differs from the replica (5x5 into 4x4)', () => spare5x5.replica),
  badReplica('pixel depth differs from the replica (65535 into 255)', () => replicaWith({ maxValue: 65535 })),
  badReplica('15 of 16 pixels', () => replicaSlot({ pixels: spare.replica.slot!.pixels.slice(1) })),
  badReplica('an embedding one short', () => replicaSlot({ embedding: spare.replica.slot!.embedding.slice(1) })),
  badReplica('slot outside the group (slot = group size)', () =>
    replicaSlot({ slot: packingParams(512, WIDTH, HEIGHT, MAX_VALUE).groupSize }),
  ),
  badReplica('ciphertext one byte short', () =>
    replicaWith({ slot: withSlotPixel(spare.replica.slot, 1, spare.replica.slot!.pixels[1].subarray(1)) }),
  ),
  badReplica('ciphertext equal to 0', () => replicaWith({ slot: withSlotPixel(spare.replica.slot, 1, zeros()) })),
  badReplica('ciphertext >= N1^2 (all 0xff bytes)', () => replicaWith({ slot: withSlotPixel(spare.replica.slot, 1, allOnes()) })),
  badReplica('ciphertext sharing a factor with N1', () => replicaWith({ slot: withSlotPixel(spare.replica.slot, 1, factorOfN1()) })),
  badReplica('embedding ciphertext equal to 0', () =>
    replicaSlot({ embedding: [zeros(), ...spare.replica.slot!.embedding.slice(1)] }),
  ),
  {
    name: 'Replica.Delete: lookup tag of the wrong length',
    code: Code.INVALID_ARGUMENT,
    run: () => replicaDelete({ lookupTags: [collection[0].record.lookupTag.subarray(1)] }),
  },
  {
    name: 'Delete: an unknown ID',
    code: Code.NOT_FOUND,
    run: () => remove(db, { lookupTags: [recordKey.lookupTag('nobody')] }),
  },
  {
    name: 'Delete: known IDs with one unknown among them (deletes none)',
    code: Code.NOT_FOUND,
    run: () =>
      remove(db, {
        lookupTags: [collection[0].record.lookupTag, recordKey.lookupTag('nobody'), collection[1].record.lookupTag],
      }),
  },
  {
    name: 'Delete: an unknown ID on an empty collection',
    code: Code.NOT_FOUND,
    target: () => dbEmpty,
    run: () => remove(dbEmpty, { lookupTags: [recordKey.lookupTag('nobody')] }),
  },
  { name: 'Delete: no IDs', code: Code.INVALID_ARGUMENT, run: () => remove(db, { lookupTags: [] }) },
  {
    name: 'Delete: lookup tag of the wrong length',
    code: Code.INVALID_ARGUMENT,
    run: () => remove(db, { lookupTags: [collection[0].record.lookupTag.subarray(1)] }),
  },
  { name: 'Retrieve: an unknown ticket', code: Code.NOT_FOUND, run: () => retrieve(UNKNOWN_TICKET) },
  { name: 'Retrieve: an empty ticket', code: Code.NOT_FOUND, run: () => retrieve('') },
  {
    name: 'Retrieve: a ticket used twice (the 2nd time)',
    code: Code.NOT_FOUND,
    run: async () => {
      const reply = await query(db, paperRequest(await wireQuery(randomImage(D))));
      await redeem(reply); // the 1st use must succeed
      return retrieve(reply.retrievalTicket);
    },
  },
];

describe('Database service: malformed input is refused with the right code and changes nothing', () => {
  it.each(badCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const target = (c.target ?? (() => db))();
    const { c2Reachable: _before, ...before } = await databaseStatus(target);
    const replicaBefore = (await keyHolderStatus()).replicaRecords;
    const error = await grpcError(c.run(), name);
    expectCode(error, c.code, name);
    expect(error.details, `${name}: the refusal must say why`).not.toBe('');
    expect(error.details, `${name}: a refusal must not be an internal error`).not.toBe('internal error');
    const { c2Reachable: _after, ...after } = await databaseStatus(target);
    expect(after, `${name}: the collection changed although the request was refused`).toEqual(before);
    expect((await keyHolderStatus()).replicaRecords, `${name}: C2's replica changed although the request was refused`).toBe(
      replicaBefore,
    );
  });

  it.each([
    ['FAST', wire.Protocol.PROTOCOL_FAST],
    ['FNN', wire.Protocol.PROTOCOL_FNN],
  ])('still answers %s queries exactly after all the refusals', async (name, protocol) => {
    await expectExactNeighbours(randomImage(D), protocol, 2, `${name} query after refusals`);
  });
});

// ----- a C1 that misuses SecureComputation -----

const open = (sessionId: string): wire.C1Message => ({
  sessionId,
  step: wire.Step.STEP_OPEN,
  body: { $case: 'open', value: { keyFingerprint: pk.fingerprint(), k: 1, requestId: 'test' } },
});
const square = (sessionId: string, values: Buffer[]): wire.C1Message => ({
  sessionId,
  step: wire.Step.STEP_SSED_SM,
  body: { $case: 'square', value: { values } },
});
const distance = (sessionId: string): wire.C1Message => ({
  sessionId,
  step: wire.Step.STEP_FNN_DISTANCE,
  body: { $case: 'distance', value: { candidate: 0, value: codec.cipher(pk.encrypt(5n)) } },
});
const bounds = (sessionId: string): wire.C1Message => ({
  sessionId,
  step: wire.Step.STEP_FNN_BOUNDS,
  body: {
    $case: 'bounds',
    value: { seeds: [{ candidate: 0, value: codec.cipher(pk.encrypt(5n)) }], bounds: [] },
  },
});
const fastOpen = (sessionId: string, shareTicket: string, groups: wire.GroupLayout[], evaluatorKey = pk1): wire.C1Message => ({
  sessionId,
  step: wire.Step.STEP_FAST_OPEN,
  body: {
    $case: 'fastOpen',
    value: {
      keyFingerprint: pk.fingerprint(),
      evaluatorKeyFingerprint: evaluatorKey.fingerprint(),
      k: 1,
      requestId: 'test',
      shareTicket,
      groups,
    },
  },
});
const fastBounds = (sessionId: string): wire.C1Message => ({
  sessionId,
  step: wire.Step.STEP_FAST_BOUNDS,
  body: { $case: 'fastBounds', value: { items: [{ group: 0, value: codec.cipher(pk.encrypt(5n)) }] } },
});
/** A valid share of a random query deposited at C2: its ticket. */
async function depositedShare(): Promise<string> {
  const req = await fastRequest(randomImage(D));
  return req.fast!.shareTicket;
}

interface SessionCase {
  name: string;
  code: Code;
  messages: () => wire.C1Message[] | Promise<wire.C1Message[]>;
}

const validCipher = () => codec.cipher(pk.encrypt(3n));
const outOfOrder = (name: string, messages: () => wire.C1Message[]): SessionCase => ({
  name,
  code: Code.FAILED_PRECONDITION,
  messages,
});
const badCipher = (name: string, bytes: () => Buffer): SessionCase => ({
  name,
  code: Code.INVALID_ARGUMENT,
  messages: () => [open('s'), square('s', [validCipher(), bytes()])],
});

const sessionCases: SessionCase[] = [
  outOfOrder('first message is a square, not open', () => [square('s', [validCipher()])]),
  outOfOrder('first message is bounds, not open', () => [bounds('s')]),
  outOfOrder('a distance before bounds', () => [open('s'), distance('s')]),
  outOfOrder('open twice', () => [open('s'), open('s')]),
  outOfOrder('a message for another session', () => [open('s'), square('other', [validCipher()])]),
  outOfOrder('fast bounds before fast open', () => [fastBounds('s')]),
  badCipher('a ciphertext equal to 0', zeros),
  badCipher('a ciphertext >= N^2', allOnes),
  badCipher('a ciphertext sharing a factor with N', factorOfN),
  badCipher('a ciphertext of the wrong byte length', () => Buffer.alloc(5, 1)),
  {
    name: 'open under another key',
    code: Code.INVALID_ARGUMENT,
    messages: () => [
      { ...open('s'), body: { $case: 'open', value: { keyFingerprint: '0123456789abcdef', k: 1, requestId: 't' } } },
    ],
  },
  {
    name: 'fast open naming another key of C1',
    code: Code.INVALID_ARGUMENT,
    messages: async () => [fastOpen('s', await depositedShare(), [], pk)],
  },
  {
    name: 'fast open with an unknown share ticket',
    code: Code.NOT_FOUND,
    messages: () => [fastOpen('s', UNKNOWN_TICKET, [])],
  },
  {
    name: 'fast open with a group layout that differs from C2\'s replica',
    code: Code.FAILED_PRECONDITION,
    messages: async () => [fastOpen('s', await depositedShare(), [{ group: 0, members: [0, 1, 2], digest: '00'.repeat(16) }])],
  },
];

describe('SecureComputation refuses a C1 that breaks the protocol', () => {
  it.each(sessionCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const messages = await c.messages();
    const { replies, error } = await rawSession(messages);
    expect(error, `${name}: C2 must end the session with an error`).toBeDefined();
    expectCode(error!, c.code, name);
    expect(replies.length, `${name}: C2 must answer every message before the bad one`).toBe(messages.length - 1);
  });

  it('keeps serving after the refused sessions: a valid session, Status and full queries', async () => {
    const value = 12345n;
    const { replies, error } = await rawSession([open('good'), square('good', [codec.cipher(pk.encrypt(value))])]);
    expect(error, `a valid session failed after the refused ones: ${error?.details}`).toBeUndefined();
    expect(replies.map((r) => r.body?.$case), 'a valid session must get opened, then products').toEqual([
      'opened',
      'products',
    ]);
    const products = replies[1].body?.$case === 'products' ? replies[1].body.value.values : [];
    expect(sk.decrypt(codec.fromCipher(products[0])), 'C2 must square the blinded value').toBe(value * value);
    const s = await keyHolderStatus();
    expect(s.keyFingerprint, 'C2 Status must still answer with its key').toBe(pk.fingerprint());
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_BF, 1, 'BF query after refused sessions');
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FAST, 1, 'FAST query after refused sessions');
  });
});

// ----- C2 down and back (last: it restarts C2) -----

describe('C1 without C2', () => {
  it('fails a query with UNAVAILABLE naming C2, keeps Status answering, and recovers when C2 returns on the same port', async () => {
    const port = portOf(c2.address);
    // Deposited before C2 goes down: the share is lost with C2's memory.
    const fastBeforeRestart = await fastRequest(randomImage(D));
    await c2.stop();

    // Both wait for C2 for the link's connect timeout: concurrently, so the suite waits once.
    const [error, fastError] = await Promise.all([
      grpcError(query(db, paperRequest(await wireQuery(randomImage(D)))), 'a query while C2 is down'),
      grpcError(query(db, fastBeforeRestart), 'a FAST query while C2 is down'),
    ]);
    expectCode(error, Code.UNAVAILABLE, 'a query while C2 is down');
    expect(error.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);
    expectCode(fastError, Code.UNAVAILABLE, 'a FAST query while C2 is down');
    expect(fastError.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);

    const s = await databaseStatus(db);
    expect(s.c2Reachable, 'Status must report C2 unreachable while it is down').toBe(false);
    expect(s.records, 'Status must still report the collection while C2 is down').toBe(BigInt(COLLECTION_SIZE));

    c2 = await startC2(c2Config(`127.0.0.1:${port}`));
    expect(portOf(c2.address), 'the new C2 must listen on the same port').toBe(port);
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FNN, 1, 'the first query after C2 restarted');
    expect((await keyHolderStatus()).replicaRecords, 'C2\'s replica must survive the restart').toBe(BigInt(COLLECTION_SIZE));
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FAST, 2, 'a FAST query after C2 restarted');
    const lost = await grpcError(query(db, { ...fastBeforeRestart }), 'a FAST query whose share was deposited before the restart');
    expectCode(lost, Code.NOT_FOUND, 'a share deposited before C2 restarted');
    expect((await databaseStatus(db)).c2Reachable, 'Status must report C2 reachable again').toBe(true);
  });
});
