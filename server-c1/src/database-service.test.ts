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
  generateKeyPair,
  generateSymmetricKey,
  localEvaluator,
  localKeyHolder,
  plaintextNearest,
  RecordKey,
  residueFromBytes,
  silentLogger,
  WireCodec,
  type PublicKey,
  type RunningDaemon,
  type SecretKey,
} from '@fnn/shared';
import { startC2 } from '@fnn/server-c2';
import { startC1 } from './main';

// C1 and C2 as real gRPC daemons on 127.0.0.1, driven through the generated
// clients exactly as the owner's and the doctor's CLI drive them.

const WIDTH = 4;
const HEIGHT = 4;
const D = WIDTH * HEIGHT;
const MAX_VALUE = 255;
const COLLECTION_SIZE = 8;
const RPC_DEADLINE_MS = 60_000;

let pk: PublicKey;
let sk: SecretKey;
let recordKey: RecordKey;
let codec: WireCodec;
let root: string;

let c2: RunningDaemon;
let c1: RunningDaemon; // the collection under test
let c1Empty: RunningDaemon; // a second C1 whose collection stays empty
let db: wire.DatabaseClient;
let dbEmpty: wire.DatabaseClient;
let retrieval: wire.RetrievalClient;
let secure: wire.SecureComputationClient;

/** The plaintext collection, in upload order, with what C1 was sent for each. */
const collection: { id: string; pixels: Uint16Array; record: wire.EncryptedRecord }[] = [];
/** Valid records that are never stored: the base of the malformed uploads. */
let spare: wire.EncryptedRecord;
let spare5x5: wire.EncryptedRecord;

const encryptAll = async (values: bigint[]) => values.map((v) => pk.encrypt(v));

function randomImage(d: number): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (MAX_VALUE + 1)));
}

async function wireRecord(id: string, pixels: Uint16Array): Promise<wire.EncryptedRecord> {
  return codec.recordToWire(await encryptRecord(encryptAll, recordKey, id, pixels));
}

async function wireQuery(pixels: Uint16Array, width = WIDTH, height = HEIGHT): Promise<wire.EncryptedQuery> {
  return codec.queryToWire(await encryptQuery(encryptAll, pixels), pk.fingerprint(), width, height);
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
const databaseStatus = (client: wire.DatabaseClient) =>
  rpc<wire.DatabaseStatus>((m, o, cb) => client.status({}, m, o, cb));
const retrieve = (ticket: string) => rpc<wire.RetrieveReply>((m, o, cb) => retrieval.retrieve({ ticket }, m, o, cb));
const keyHolderStatus = () => rpc<wire.KeyHolderStatus>((m, o, cb) => retrieval.status({}, m, o, cb));

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

function queryRequest(q: wire.EncryptedQuery | undefined, protocol = wire.Protocol.PROTOCOL_FNN, k = 1): wire.QueryRequest {
  return { tag: 'test', query: q, protocol, k };
}

/**
 * The doctor's whole step 7: decrypt each E_k(ID), fetch m + r from C2 with
 * the ticket, subtract C1's r mod N; returns the ids and the exact pixels.
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

/** Asks C1 for the k nearest of `pixels` and checks ids and retrieved images against the plaintext reference. */
async function expectExactNeighbours(pixels: Uint16Array, protocol: wire.Protocol, k: number, what: string) {
  const reply = await query(db, queryRequest(await wireQuery(pixels), protocol, k));
  const expected = plaintextNearest(collection, pixels, Math.max(k, 1));
  expect(reply.tag, `${what}: the query tag must be echoed`).toBe('test');
  expect(reply.total, `${what}: every record must be searched`).toBe(BigInt(collection.length));
  const protocolRun = protocol === wire.Protocol.PROTOCOL_BF ? protocol : wire.Protocol.PROTOCOL_FNN;
  expect(reply.protocol, `${what}: the reply must name the protocol that ran`).toBe(protocolRun);
  const got = await redeem(reply);
  expect(
    got.map((g) => g.id),
    `${what}: the neighbours (nearest first) differ from the plaintext reference`,
  ).toEqual(expected.map((e) => e.id));
  for (const g of got) {
    const stored = collection.find((c) => c.id === g.id)!;
    expect(g.pixels, `${what}: retrieved pixels of ${g.id} differ from the stored image`).toEqual(
      Array.from(stored.pixels, BigInt),
    );
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

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
  recordKey = new RecordKey(generateSymmetricKey());
  codec = new WireCodec(pk.cipherBytes);
  root = mkdtempSync(join(tmpdir(), 'fnn-db-service-test-'));

  c2 = await startC2({ listen: '127.0.0.1:0', crypto: localKeyHolder(sk), log: silentLogger });
  const c1Config = { listen: '127.0.0.1:0', c2Address: c2.address, crypto: localEvaluator(pk), log: silentLogger };
  c1 = await startC1({ ...c1Config, dbPath: join(root, 'c1.db') });
  c1Empty = await startC1({ ...c1Config, dbPath: join(root, 'c1-empty.db') });
  db = new wire.DatabaseClient(c1.address, credentials.createInsecure());
  dbEmpty = new wire.DatabaseClient(c1Empty.address, credentials.createInsecure());
  retrieval = new wire.RetrievalClient(c2.address, credentials.createInsecure());
  secure = new wire.SecureComputationClient(c2.address, credentials.createInsecure());

  for (let i = 0; i < COLLECTION_SIZE; i++) {
    const id = `patient-${i}`;
    const pixels = randomImage(D);
    collection.push({ id, pixels, record: await wireRecord(id, pixels) });
  }
  spare = await wireRecord('spare', randomImage(D));
  spare5x5 = await wireRecord('spare-5x5', randomImage(25));

  const reply = await upload(db, uploadRequest(collection.map((c) => c.record)));
  expect(reply, 'the initial upload must store every record').toEqual({
    stored: COLLECTION_SIZE,
    replaced: 0,
    total: BigInt(COLLECTION_SIZE),
  });
});

afterAll(async () => {
  for (const client of [db, dbEmpty, retrieval, secure]) client?.close();
  await Promise.all([c1?.stop(), c1Empty?.stop()]);
  await c2?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('Database service: valid requests', () => {
  it('reports the collection in Status: size, shape, key and a reachable C2', async () => {
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
  });

  it('stores, replaces (by lookup tag) and deletes a record, reporting counts', async () => {
    const temp = await wireRecord('temporary', randomImage(D));
    expect(await upload(db, uploadRequest([temp])), 'a new record must be stored').toEqual({
      stored: 1,
      replaced: 0,
      total: BigInt(COLLECTION_SIZE + 1),
    });
    const again = copy(await wireRecord('temporary', randomImage(D)));
    expect(await upload(db, uploadRequest([again])), 'the same lookup tag must be replaced').toEqual({
      stored: 0,
      replaced: 1,
      total: BigInt(COLLECTION_SIZE + 1),
    });
    expect(await remove(db, { lookupTags: [temp.lookupTag] }), 'delete by lookup tag').toEqual({
      deleted: 1,
      total: BigInt(COLLECTION_SIZE),
    });
  });

  it.each([
    ['FNN', wire.Protocol.PROTOCOL_FNN, 1],
    ['FNN', wire.Protocol.PROTOCOL_FNN, 3],
    ['BF', wire.Protocol.PROTOCOL_BF, 1],
    ['BF', wire.Protocol.PROTOCOL_BF, 3],
    ['unspecified (FNN)', wire.Protocol.PROTOCOL_UNSPECIFIED, 1],
  ])('answers a %s query with k = %i with the exact plaintext nearest neighbours and their pixels', async (name, protocol, k) => {
    await expectExactNeighbours(randomImage(D), protocol, k, `${name} k=${k}`);
  });

  it.each([
    ['FNN', wire.Protocol.PROTOCOL_FNN],
    ['BF', wire.Protocol.PROTOCOL_BF],
  ])('finds a stored image itself (distance 0) with %s', async (name, protocol) => {
    const target = collection[5];
    const reply = await expectExactNeighbours(target.pixels, protocol, 1, `${name} self-query`);
    const found = recordKey.decryptId(reply.results[0].encryptedId);
    expect(found, `${name}: a stored image must be its own nearest neighbour`).toBe(target.id);
  });

  it('treats k = 0 as k = 1', async () => {
    const reply = await query(db, queryRequest(await wireQuery(randomImage(D)), wire.Protocol.PROTOCOL_FNN, 0));
    expect(reply.results.length, 'k = 0 must return exactly one neighbour').toBe(1);
    await redeem(reply);
  });
});

// ----- malformed input: every case is refused with its code and leaves the collection as it was -----

interface BadCase {
  name: string;
  code: Code;
  /** The C1 the case talks to (default: the populated one). */
  target?: () => wire.DatabaseClient;
  run: () => Promise<unknown>;
}

const zeros = () => Buffer.alloc(pk.cipherBytes);
const allOnes = () => Buffer.alloc(pk.cipherBytes, 0xff);
const factorOfN = () => Buffer.from(cipherToBytes(BigInt(sk.toJSON().p), pk.cipherBytes));

const badUpload = (name: string, build: () => wire.UploadRequest): BadCase => ({
  name: `Upload: ${name}`,
  code: Code.INVALID_ARGUMENT,
  run: () => upload(db, build()),
});
const badQuery = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Query: ${name}`,
  code,
  run: async () => query(db, await build()),
});

const badCases: BadCase[] = [
  badUpload('wrong key fingerprint', () => uploadRequest([spare], { keyFingerprint: '0123456789abcdef' })),
  badUpload('image size differs from the collection (5x5 into 4x4)', () =>
    uploadRequest([spare5x5], { width: 5, height: 5 }),
  ),
  badUpload('pixel depth differs from the collection (65535 into 255)', () => uploadRequest([spare], { maxValue: 65535 })),
  badUpload('pixel count is not width*height (15 of 16)', () =>
    uploadRequest([copy(spare, { pixels: spare.pixels.slice(1) })]),
  ),
  badUpload('pixel count is not width*height (17 of 16)', () =>
    uploadRequest([copy(spare, { pixels: [...spare.pixels, spare.pixels[0]] })]),
  ),
  badUpload('zero width', () => uploadRequest([spare], { width: 0, height: 16 })),
  badUpload('zero height', () => uploadRequest([spare], { width: 16, height: 0 })),
  badUpload('huge width (1,000,000 x 1)', () => uploadRequest([spare], { width: 1_000_000, height: 1 })),
  badUpload('huge width and height (65536 x 65536)', () => uploadRequest([spare], { width: 65536, height: 65536 })),
  badUpload('maxValue 0', () => uploadRequest([spare], { maxValue: 0 })),
  badUpload('maxValue 70000', () => uploadRequest([spare], { maxValue: 70000 })),
  badUpload('empty records list', () => uploadRequest([])),
  badUpload('pixel ciphertext of the wrong byte length (one byte short)', () =>
    uploadRequest([withPixel(spare, 2, spare.pixels[2].subarray(1))]),
  ),
  badUpload('pixel ciphertext one byte too long', () =>
    uploadRequest([withPixel(spare, 2, Buffer.concat([Buffer.alloc(1), spare.pixels[2]]))]),
  ),
  badUpload('pixel ciphertext equal to 0', () => uploadRequest([withPixel(spare, 0, zeros())])),
  badUpload('pixel ciphertext >= N^2 (all 0xff bytes)', () => uploadRequest([withPixel(spare, 7, allOnes())])),
  badUpload('pixel ciphertext sharing a factor with N (p)', () => uploadRequest([withPixel(spare, 15, factorOfN())])),
  badUpload('sum ciphertext equal to 0', () => uploadRequest([copy(spare, { sum: zeros() })])),
  badUpload('spread ciphertext sharing a factor with N', () => uploadRequest([copy(spare, { spread: factorOfN() })])),
  badUpload('lookup tag of the wrong length (31 bytes)', () =>
    uploadRequest([copy(spare, { lookupTag: spare.lookupTag.subarray(1) })]),
  ),
  badUpload('empty lookup tag', () => uploadRequest([copy(spare, { lookupTag: Buffer.alloc(0) })])),
  badUpload('empty encrypted_id', () => uploadRequest([copy(spare, { encryptedId: Buffer.alloc(0) })])),
  badUpload('a valid record followed by a malformed one (nothing of the call is stored)', () =>
    uploadRequest([spare, withPixel(copy(spare, { lookupTag: recordKey.lookupTag('spare-2') }), 0, zeros())]),
  ),
  badQuery('wrong key fingerprint', async () => {
    const q = await wireQuery(randomImage(D));
    return queryRequest({ ...q, keyFingerprint: '0123456789abcdef' });
  }),
  badQuery('query image size differs from the collection (5x5)', async () =>
    queryRequest(await wireQuery(randomImage(25), 5, 5)),
  ),
  badQuery('query claims 4x4 but has 15 pixels', async () => {
    const q = await wireQuery(randomImage(D));
    return queryRequest({ ...q, negatedPixels: q.negatedPixels.slice(1) });
  }),
  badQuery('missing query', async () => queryRequest(undefined)),
  badQuery('k = 101', async () => queryRequest(await wireQuery(randomImage(D)), wire.Protocol.PROTOCOL_FNN, 101)),
  badQuery('unknown protocol enum value 7', async () =>
    queryRequest(await wireQuery(randomImage(D)), 7 as wire.Protocol, 1),
  ),
  badQuery('query pixel ciphertext equal to 0', async () => {
    const q = await wireQuery(randomImage(D));
    return queryRequest({ ...q, negatedPixels: [zeros(), ...q.negatedPixels.slice(1)] });
  }),
  badQuery('query spread ciphertext >= N^2', async () => {
    const q = await wireQuery(randomImage(D));
    return queryRequest({ ...q, spread: allOnes() });
  }),
  {
    name: 'Query: on an empty collection',
    code: Code.INVALID_ARGUMENT,
    target: () => dbEmpty,
    run: async () => query(dbEmpty, queryRequest(await wireQuery(randomImage(D)))),
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
  { name: 'Retrieve: an unknown ticket', code: Code.NOT_FOUND, run: () => retrieve('00112233445566778899aabbccddeeff') },
  { name: 'Retrieve: an empty ticket', code: Code.NOT_FOUND, run: () => retrieve('') },
  {
    name: 'Retrieve: a ticket used twice (the 2nd time)',
    code: Code.NOT_FOUND,
    run: async () => {
      const reply = await query(db, queryRequest(await wireQuery(randomImage(D))));
      await redeem(reply); // the 1st use must succeed
      return retrieve(reply.retrievalTicket);
    },
  },
];

describe('Database service: malformed input is refused with the right code and changes nothing', () => {
  it.each(badCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const target = (c.target ?? (() => db))();
    const { c2Reachable: _before, ...before } = await databaseStatus(target);
    const error = await grpcError(c.run(), name);
    expectCode(error, c.code, name);
    expect(error.details, `${name}: the refusal must say why`).not.toBe('');
    expect(error.details, `${name}: a refusal must not be an internal error`).not.toBe('internal error');
    const { c2Reachable: _after, ...after } = await databaseStatus(target);
    expect(after, `${name}: the collection changed although the request was refused`).toEqual(before);
  });

  it('still answers queries exactly after all the refusals', async () => {
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FNN, 2, 'query after refusals');
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

interface SessionCase {
  name: string;
  code: Code;
  messages: () => wire.C1Message[];
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
];

describe('SecureComputation refuses a C1 that breaks the protocol', () => {
  it.each(sessionCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const messages = c.messages();
    const { replies, error } = await rawSession(messages);
    expect(error, `${name}: C2 must end the session with an error`).toBeDefined();
    expectCode(error!, c.code, name);
    expect(replies.length, `${name}: C2 must answer every message before the bad one`).toBe(messages.length - 1);
  });

  it('keeps serving after the refused sessions: a valid session, Status and a full query', async () => {
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
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_BF, 1, 'query after refused sessions');
  });
});

// ----- C2 down and back (last: it restarts C2) -----

describe('C1 without C2', () => {
  it('fails a query with UNAVAILABLE naming C2, keeps Status answering, and recovers when C2 returns on the same port', async () => {
    const port = portOf(c2.address);
    await c2.stop();

    const error = await grpcError(query(db, queryRequest(await wireQuery(randomImage(D)))), 'a query while C2 is down');
    expectCode(error, Code.UNAVAILABLE, 'a query while C2 is down');
    expect(error.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);

    const s = await databaseStatus(db);
    expect(s.c2Reachable, 'Status must report C2 unreachable while it is down').toBe(false);
    expect(s.records, 'Status must still report the collection while C2 is down').toBe(BigInt(COLLECTION_SIZE));

    c2 = await startC2({ listen: `127.0.0.1:${port}`, crypto: localKeyHolder(sk), log: silentLogger });
    expect(portOf(c2.address), 'the new C2 must listen on the same port').toBe(port);
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FNN, 1, 'the first query after C2 restarted');
    expect((await databaseStatus(db)).c2Reachable, 'Status must report C2 reachable again').toBe(true);
  });
});
