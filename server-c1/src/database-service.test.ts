import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import {
  cipherToBytes,
  CollectionWriter,
  encryptQuery,
  generateKeyPair,
  generateSymmetricKey,
  INSECURE,
  localEvaluator,
  localKeyHolder,
  multiExpFixed,
  type FixedWidthValues,
  openSealedImage,
  packingParams,
  plaintextNearest,
  RecordKey,
  residueFromBytes,
  residueToBytes,
  groupPlaintexts,
  shareQuery,
  silentLogger,
  WireCodec,
  type GroupOutcome,
  type OwnerLink,
  type PlaintextRecord,
  type PublicKey,
  type RunningDaemon,
  type SecretKey,
} from '@fnn/shared';
import { startC2 } from '@fnn/server-c2';
import { BATCH_CONCURRENCY } from './database-service';
import { startC1 } from './main';

// C1 and C2 as real gRPC daemons on 127.0.0.1, driven through the generated
// clients exactly as the owner's and the doctor's CLI drive them. The owner is
// the real CollectionWriter of @fnn/shared over a link to these clients (as
// grpcOwnerLink in client/src/owner-upload.ts): AllocateSlots and GetGroup
// (C1), then per group Replica.PutGroup (C2) and Upload (C1); a delete sends
// PutGroup (C2) for every group losing a member, then one Delete (C1). Fast
// queries go Status (C1) -> PutShare (C2) -> Query (C1) as in
// client/src/commands/query.ts. The link records every request it is given, so
// the malformed cases start from requests the real owner built.

const WIDTH = 4;
const HEIGHT = 4;
const D = WIDTH * HEIGHT;
const MAX_VALUE = 255;
const SHAPE = { width: WIDTH, height: HEIGHT, maxValue: MAX_VALUE };
const KEY_BITS = 512;
/** Records per group at these sizes (4). */
const G = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE).groupSize;
const COLLECTION_SIZE = 10;
/** The first records are uploaded in one call (whole groups in one request each), the rest one by one. */
const FIRST_BATCH = 5;
/** patient-7 is a copy of patient-2: the tie rule (upload order) decides between them. */
const TWIN_OF = { twin: 'patient-7', original: 'patient-2' };
const LEAN_SIZE = 6;
const RPC_DEADLINE_MS = 60_000;
/** Groups scanned by GetGroup when checking that nothing changed. */
const GROUPS_SCANNED = 8;

let pk: PublicKey; // C2's key: the collection's key, everything at C1 is under it
let sk: SecretKey;
let pk1: PublicKey; // C1's key: C2's replica is under it
let sk1: SecretKey;
let recordKey: RecordKey;
let codec: WireCodec;
let root: string;

/** One C1 with its C2 (clients), and the plaintext collection C1 should hold, in upload order (C1's seq). */
interface Deployment {
  name: string;
  db: wire.DatabaseClient;
  retrieval: wire.RetrievalClient;
  replica: wire.ReplicaClient;
  paperLayout: boolean;
  collection: PlaintextRecord[];
}

let c2: RunningDaemon;
let c1: RunningDaemon; // the collection under test
let c1Empty: RunningDaemon; // a second C1 (same C2) whose collection stays empty
let c2Lean: RunningDaemon; // a pair on fresh databases, uploaded without the paper's layout
let c1Lean: RunningDaemon;
let main: Deployment;
let empty: Deployment;
let lean: Deployment;
let secure: wire.SecureComputationClient;
const clients: { close(): void }[] = [];

/** What the base upload sent: the first batch in one writer call, then each later record alone. */
let baseBatch: Sent;
const baseSingles: Sent[] = [];

const encrypt2 = async (values: bigint[]) => values.map((v) => pk.encrypt(v));
const encrypt1 = async (values: bigint[]) => values.map((v) => pk1.encrypt(v));
const localMultiExp = async (bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint) => multiExpFixed(bases, exponents, modulus);

function randomImage(d = D): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (MAX_VALUE + 1)));
}

const tagOf = (id: string) => recordKey.lookupTag(id);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const record = (d: Deployment, id: string) => {
  const r = d.collection.find((c) => c.id === id);
  if (!r) throw new Error(`${id} is not in ${d.name}'s collection`);
  return r;
};
/** The plaintext record whose lookup tag this is. */
const byTag = (d: Deployment, tag: Uint8Array) => {
  const r = d.collection.find((c) => tagOf(c.id).equals(tag));
  if (!r) throw new Error(`no record of ${d.name} has the tag ${hex(tag)}`);
  return r;
};

async function wireQuery(pixels: Uint16Array, width = WIDTH, height = HEIGHT): Promise<wire.EncryptedQuery> {
  return codec.queryToWire(await encryptQuery(encrypt2, pixels), pk.fingerprint(), width, height);
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

const upload = (db: wire.DatabaseClient, req: wire.UploadRequest) =>
  rpc<wire.UploadReply>((m, o, cb) => db.upload(req, m, o, cb));
const remove = (db: wire.DatabaseClient, req: wire.DeleteRequest) =>
  rpc<wire.DeleteReply>((m, o, cb) => db.delete(req, m, o, cb));
const query = (db: wire.DatabaseClient, req: wire.QueryRequest) =>
  rpc<wire.QueryReply>((m, o, cb) => db.query(req, m, o, cb));
const allocateSlots = (db: wire.DatabaseClient, lookupTags: Buffer[], shape: Partial<typeof SHAPE> = {}) =>
  rpc<wire.SlotAssignments>((m, o, cb) => db.allocateSlots({ lookupTags, ...SHAPE, ...shape }, m, o, cb));
const getGroup = (db: wire.DatabaseClient, group: number) =>
  rpc<wire.GroupContents>((m, o, cb) => db.getGroup({ group }, m, o, cb));
const databaseStatus = (db: wire.DatabaseClient) => rpc<wire.DatabaseStatus>((m, o, cb) => db.status({}, m, o, cb));
const retrieve = (ticket: string, d = main) =>
  rpc<wire.RetrieveReply>((m, o, cb) => d.retrieval.retrieve({ ticket }, m, o, cb));
const putShare = (share: wire.QueryShare, d = main) =>
  rpc<wire.ShareTicket>((m, o, cb) => d.retrieval.putShare(share, m, o, cb));
const keyHolderStatus = (d = main) => rpc<wire.KeyHolderStatus>((m, o, cb) => d.retrieval.status({}, m, o, cb));
const putGroup = (req: wire.ReplicaGroup, d = main) =>
  rpc<wire.ReplicaReply>((m, o, cb) => d.replica.putGroup(req, m, o, cb));

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
  throw new Error(`${what} succeeded (${shown.slice(0, 300)}) but must fail`);
}

function expectCode(error: ServiceError, expected: Code, what: string): void {
  expect(
    Code[error.code],
    `${what}: expected ${Code[expected]}, got ${Code[error.code]} ("${error.details}")`,
  ).toBe(Code[expected]);
}

// ----- the owner: the real CollectionWriter over the test's clients -----

/** The writes the owner's link was given, in order, and C1's replies to those it sent. */
interface Sent {
  uploads: wire.UploadRequest[];
  uploadReplies: wire.UploadReply[];
  deletes: wire.DeleteRequest[];
  deleteReplies: wire.DeleteReply[];
  replicaGroups: wire.ReplicaGroup[];
  replicaReplies: wire.ReplicaReply[];
}

/**
 * The owner's link to a deployment, as grpcOwnerLink: reads always go to C1;
 * every write is recorded, and sent only to the servers in `send` (a write
 * not sent gets a made-up reply). With neither, it captures valid requests.
 */
function ownerLink(d: Deployment, send: { c1: boolean; c2: boolean }): OwnerLink & { sent: Sent } {
  const sent: Sent = { uploads: [], uploadReplies: [], deletes: [], deleteReplies: [], replicaGroups: [], replicaReplies: [] };
  return {
    sent,
    status: () => databaseStatus(d.db),
    allocateSlots: (req) => rpc<wire.SlotAssignments>((m, o, cb) => d.db.allocateSlots(req, m, o, cb)),
    getGroup: (req) => getGroup(d.db, req.group),
    upload: async (req) => {
      sent.uploads.push(req);
      if (!send.c1) return { stored: req.records.length, replaced: 0, total: 0n };
      const reply = await upload(d.db, req);
      sent.uploadReplies.push(reply);
      return reply;
    },
    delete: async (req) => {
      sent.deletes.push(req);
      if (!send.c1) return { deleted: req.lookupTags.length, total: 0n };
      const reply = await remove(d.db, req);
      sent.deleteReplies.push(reply);
      return reply;
    },
    putReplicaGroup: async (req) => {
      sent.replicaGroups.push(req);
      if (!send.c2) return { total: 0n };
      const reply = await putGroup(req, d);
      sent.replicaReplies.push(reply);
      return reply;
    },
  };
}

interface OwnerOptions {
  /** Send to C1 and to C2 (default both); neither: only capture the requests. */
  c1?: boolean;
  c2?: boolean;
  /** Default: the deployment's. */
  paperLayout?: boolean;
  width?: number;
  height?: number;
}

const writerOver = (link: OwnerLink, paperLayout: boolean) =>
  new CollectionWriter(link, { c2Key: pk, c1Key: pk1, recordKey }, { underC2Key: encrypt2, underC1Key: encrypt1 }, paperLayout);

/** The owner uploads records (one writer call); any group that fails fails the call. */
async function ownerUpload(d: Deployment, records: PlaintextRecord[], options: OwnerOptions = {}) {
  const link = ownerLink(d, { c1: options.c1 ?? true, c2: options.c2 ?? true });
  const outcomes: GroupOutcome[] = [];
  const image = (pixels: Uint16Array) => ({ width: options.width ?? WIDTH, height: options.height ?? HEIGHT, maxValue: MAX_VALUE, pixels });
  await writerOver(link, options.paperLayout ?? d.paperLayout).upload(
    records.map((r) => ({ id: r.id, image: image(r.pixels) })),
    (o) => outcomes.push(o),
  );
  for (const o of outcomes) if (!o.ok) throw o.error;
  return { outcomes, sent: link.sent };
}

/** The owner deletes records by ID (one writer call). */
async function ownerDelete(d: Deployment, ids: string[], options: OwnerOptions = {}) {
  const link = ownerLink(d, { c1: options.c1 ?? true, c2: options.c2 ?? true });
  const reply = await writerOver(link, d.paperLayout).delete(ids);
  return { reply, sent: link.sent };
}

/** Only the requests the owner would send (nothing is sent). */
const captureUpload = async (d: Deployment, records: PlaintextRecord[], options: OwnerOptions = {}) =>
  (await ownerUpload(d, records, { ...options, c1: false, c2: false })).sent;
const captureDelete = async (d: Deployment, ids: string[]) => (await ownerDelete(d, ids, { c1: false, c2: false })).sent;

/** Keep the plaintext collection in step with C1: new records go last (upload order), replaced ones keep their place. */
function remember(d: Deployment, records: PlaintextRecord[]): void {
  for (const r of records) {
    const at = d.collection.findIndex((c) => c.id === r.id);
    if (at >= 0) d.collection[at] = r;
    else d.collection.push(r);
  }
}
function forget(d: Deployment, ids: string[]): void {
  d.collection = d.collection.filter((c) => !ids.includes(c.id));
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
  options: { protocol?: wire.Protocol; k?: number; c2Share?: (s: wire.QueryShare) => wire.QueryShare; to?: Deployment } = {},
): Promise<wire.QueryRequest> {
  const d = options.to ?? main;
  const status = await databaseStatus(d.db);
  expect(status.keyFingerprint, 'C1 must hold the collection under the doctor\'s key').toBe(pk.fingerprint());
  const params = packingParams(status.keyBits, status.width, status.height, status.maxValue);
  const shares = await shareQuery(pixels, params, encrypt2);
  const forC2 = { distance: shares.forC2.distance.map(residueToBytes), bound: shares.forC2.bound.map(residueToBytes) };
  const { ticket } = await putShare(options.c2Share ? options.c2Share(forC2) : forC2, d);
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
async function redeem(reply: wire.QueryReply, d = main): Promise<{ id: string; pixels: bigint[] }[]> {
  const fetched = await retrieve(reply.retrievalTicket, d);
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
async function expectExactNeighbours(pixels: Uint16Array, protocol: wire.Protocol, k: number, what: string, d = main) {
  const request = isFast(protocol)
    ? await fastRequest(pixels, { protocol, k, to: d })
    : paperRequest(await wireQuery(pixels), protocol, k);
  const reply = await query(d.db, request);
  const expected = plaintextNearest(d.collection, pixels, Math.max(k, 1));
  expect(reply.tag, `${what}: the query tag must be echoed`).toBe('test');
  expect(reply.total, `${what}: every record must be searched`).toBe(BigInt(d.collection.length));
  expect(reply.rejected <= reply.total, `${what}: more records rejected than searched`).toBe(true);
  const protocolRun = isFast(protocol) ? wire.Protocol.PROTOCOL_FAST : protocol;
  expect(wire.Protocol[reply.protocol], `${what}: the reply must name the protocol that ran`).toBe(wire.Protocol[protocolRun]);
  const got = isFast(protocol) ? openResults(reply) : await redeem(reply, d);
  expect(
    got.map((g) => g.id),
    `${what}: the neighbours (nearest first) differ from the plaintext reference`,
  ).toEqual(expected.map((e) => e.id));
  for (const g of got) {
    const stored = record(d, g.id);
    expect(g.pixels, `${what}: returned pixels of ${g.id} differ from the stored image`).toEqual(Array.from(stored.pixels, BigInt));
  }
  return { reply, ids: got.map((g) => g.id) };
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

function c2Config(listen: string, file = 'c2.db') {
  return {
    listen,
    dbPath: join(root, file),
    crypto: localKeyHolder(sk),
    fast: { ownSecretKey: sk, evaluatorKey: pk1, multiExp: localMultiExp },
    log: silentLogger,
    transport: INSECURE,
  };
}

function c1Config(c2Address: string, file: string) {
  return {
    listen: '127.0.0.1:0',
    c2Address,
    dbPath: join(root, file),
    crypto: localEvaluator(pk),
    fast: { keyHolderKey: pk, ownSecretKey: sk1, multiExp: localMultiExp },
    log: silentLogger,
    transport: INSECURE,
  };
}

function deployment(name: string, c1Address: string, c2Address: string, paperLayout: boolean): Deployment {
  const d = {
    name,
    db: new wire.DatabaseClient(c1Address, credentials.createInsecure()),
    retrieval: new wire.RetrievalClient(c2Address, credentials.createInsecure()),
    replica: new wire.ReplicaClient(c2Address, credentials.createInsecure()),
    paperLayout,
    collection: [],
  };
  clients.push(d.db, d.retrieval, d.replica);
  return d;
}

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(KEY_BITS));
  ({ publicKey: pk1, secretKey: sk1 } = await generateKeyPair(KEY_BITS));
  recordKey = new RecordKey(generateSymmetricKey());
  codec = new WireCodec(pk.cipherBytes);
  root = mkdtempSync(join(tmpdir(), 'fnn-db-service-test-'));

  c2 = await startC2(c2Config('127.0.0.1:0'));
  c1 = await startC1(c1Config(c2.address, 'c1.db'));
  c1Empty = await startC1(c1Config(c2.address, 'c1-empty.db'));
  c2Lean = await startC2(c2Config('127.0.0.1:0', 'c2-lean.db'));
  c1Lean = await startC1(c1Config(c2Lean.address, 'c1-lean.db'));
  main = deployment('main', c1.address, c2.address, true);
  empty = deployment('empty', c1Empty.address, c2.address, true);
  lean = deployment('lean', c1Lean.address, c2Lean.address, false);
  secure = new wire.SecureComputationClient(c2.address, credentials.createInsecure());
  clients.push(secure);

  const images = Array.from({ length: COLLECTION_SIZE }, (_, i) => ({ id: `patient-${i}`, pixels: randomImage() }));
  images.find((r) => r.id === TWIN_OF.twin)!.pixels = Uint16Array.from(images.find((r) => r.id === TWIN_OF.original)!.pixels);
  // The first records in one call (whole groups per request), then one by one (each joins a partly filled group or starts one).
  baseBatch = (await ownerUpload(main, images.slice(0, FIRST_BATCH))).sent;
  remember(main, images.slice(0, FIRST_BATCH));
  for (const r of images.slice(FIRST_BATCH)) {
    baseSingles.push((await ownerUpload(main, [r])).sent);
    remember(main, [r]);
  }
  const leanImages = Array.from({ length: LEAN_SIZE }, (_, i) => ({ id: `lean-${i}`, pixels: randomImage() }));
  await ownerUpload(lean, leanImages);
  remember(lean, leanImages);
});

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all([c1?.stop(), c1Empty?.stop(), c1Lean?.stop()]);
  await Promise.all([c2?.stop(), c2Lean?.stop()]);
  if (root) rmSync(root, { recursive: true, force: true });
});

const FAST = wire.Protocol.PROTOCOL_FAST;
const FNN = wire.Protocol.PROTOCOL_FNN;
const BF = wire.Protocol.PROTOCOL_BF;
const EMBEDDING = (() => {
  const p = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE);
  return 2 * p.blockRows * p.blockCols;
})();

/** A group change as the owner sends it to C1: a fresh 16-byte version and full columns under C2's key with the constants. */
function expectC1Change(change: wire.GroupChange | undefined, what: string) {
  expect(change, `${what}: the upload names its group change`).toBeDefined();
  expect(change!.version.length, `${what}: a 16-byte version`).toBe(16);
  expect(change!.columns?.pixels.length, `${what}: one packed ciphertext per pixel`).toBe(D);
  expect(change!.columns?.embedding.length, `${what}: one packed ciphertext per embedding coordinate`).toBe(EMBEDDING);
  expect(change!.columns?.distanceConstant.length, `${what}: C1's columns carry the distance constant`).toBe(pk.cipherBytes);
  expect(change!.columns?.boundConstant.length, `${what}: C1's columns carry the bound constant`).toBe(pk.cipherBytes);
}

/** C2's side of the same change: same group and version, columns under C1's key without constants, all members after the change. */
function expectReplicaOf(r: wire.ReplicaGroup, change: wire.GroupChange, memberIds: (string | null)[], what: string, d = main) {
  expect(r.keyFingerprint, `${what}: the replica names C2's key`).toBe(pk.fingerprint());
  expect(r.evaluatorKeyFingerprint, `${what}: and C1's, under which it is encrypted`).toBe(pk1.fingerprint());
  expect([r.width, r.height, r.maxValue], `${what}: the replica's shape`).toEqual([WIDTH, HEIGHT, MAX_VALUE]);
  expect(r.group!.group, `${what}: the same group at C1 and C2`).toBe(change.group);
  expect(hex(r.group!.version), `${what}: the same version at C1 and C2`).toBe(hex(change.version));
  expect(hex(r.group!.baseVersion), `${what}: the same base version at C1 and C2`).toBe(hex(change.baseVersion));
  expect(
    r.members.map((m) => [m.slot, hex(m.lookupTag)]),
    `${what}: C2 is sent every member of the group after the change`,
  ).toEqual(memberIds.flatMap((id, slot) => (id === null ? [] : [[slot, hex(tagOf(id))]])));
  if (change.columns) {
    expect(r.group!.columns?.pixels.length, `${what}: C2's columns, one per pixel`).toBe(D);
    expect(r.group!.columns?.embedding.length, `${what}: C2's columns, one per embedding coordinate`).toBe(EMBEDDING);
    expect(r.group!.columns?.distanceConstant.length, `${what}: C2's columns carry no constants`).toBe(0);
    // Both are encryptions of the group's packed plaintexts over all its members after the change.
    const plain = groupPlaintexts(
      memberIds.map((id) => (id === null ? null : record(d, id).pixels)),
      packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE),
    );
    const c1Side = change.columns;
    const c2Side = r.group!.columns!;
    expect(c1Side.pixels.map((c) => sk.decrypt(codec.fromCipher(c))), `${what}: C1's pixel columns`).toEqual(plain.pixels);
    expect(c1Side.embedding.map((c) => sk.decrypt(codec.fromCipher(c))), `${what}: C1's embedding columns`).toEqual(plain.embedding);
    expect(
      [c1Side.distanceConstant, c1Side.boundConstant].map((c) => sk.decrypt(codec.fromCipher(c))),
      `${what}: C1's constants`,
    ).toEqual([plain.distanceConstant, plain.boundConstant]);
    expect(c2Side.pixels.map((c) => sk1.decrypt(codec.fromCipher(c))), `${what}: C2's pixel columns, under C1's key`).toEqual(plain.pixels);
    expect(c2Side.embedding.map((c) => sk1.decrypt(codec.fromCipher(c))), `${what}: C2's embedding columns`).toEqual(plain.embedding);
  } else expect(r.group!.columns, `${what}: an emptied group has no columns at C2 either`).toBeUndefined();
}

/** The ids of a group's members by slot, as C1 holds them now. */
async function membersOf(d: Deployment, group: number): Promise<(string | null)[]> {
  const { members } = await getGroup(d.db, group);
  const ids: (string | null)[] = new Array(G).fill(null);
  for (const m of members) ids[m.slot] = byTag(d, m.lookupTag).id;
  return ids;
}

describe('Database service: valid requests', () => {
  it('uses groups of at least 2 records at these sizes, and a collection whose base upload exercises every case', () => {
    expect(G, 'groups of at least 2 records, so the packing is exercised').toBeGreaterThanOrEqual(2);
    expect(FIRST_BATCH, 'the first batch fills a group and part of the next').toBeGreaterThan(G);
    expect(FIRST_BATCH % G, 'the first batch leaves a group partly filled').not.toBe(0);
    expect(COLLECTION_SIZE % G, 'the collection ends in a partly filled group').not.toBe(0);
    expect(LEAN_SIZE % G, 'the lean collection ends in a partly filled group').not.toBe(0);
  });

  it('reports the collections in Status: size, shape, key and a reachable C2; C2 reports its replica', async () => {
    const s = await databaseStatus(main.db);
    expect(s, 'Status does not describe the uploaded collection').toEqual({
      records: BigInt(COLLECTION_SIZE),
      width: WIDTH,
      height: HEIGHT,
      maxValue: MAX_VALUE,
      keyBits: KEY_BITS,
      keyFingerprint: pk.fingerprint(),
      c2Reachable: true,
    });
    const k = await keyHolderStatus();
    expect(k.keyFingerprint, 'C2 reports its own key').toBe(pk.fingerprint());
    expect(k.replicaRecords, 'C2\'s replica must hold every record').toBe(BigInt(COLLECTION_SIZE));
    expect((await databaseStatus(empty.db)).records, 'the second C1 is empty').toBe(0n);
    expect((await databaseStatus(empty.db)).width, 'an empty collection has no shape').toBe(0);
    expect((await databaseStatus(lean.db)).records, 'the lean C1 holds its collection').toBe(BigInt(LEAN_SIZE));
    expect((await keyHolderStatus(lean)).replicaRecords, 'and its C2 the replica').toBe(BigInt(LEAN_SIZE));
  });

  it('allocates slots in group order: a stored record its own slot (stored), new ones the first free slots; nothing is reserved', async () => {
    const { slots } = await allocateSlots(main.db, main.collection.map((c) => tagOf(c.id)));
    expect(slots, 'each stored record gets its own slot back, in upload order').toEqual(
      main.collection.map((_, i) => ({ group: Math.floor(i / G), slot: i % G, stored: true })),
    );
    const next = (i: number) => ({ group: Math.floor((COLLECTION_SIZE + i) / G), slot: (COLLECTION_SIZE + i) % G, stored: false });
    const fresh = [tagOf('nobody-a'), tagOf('patient-0'), tagOf('nobody-b'), tagOf('nobody-a')];
    const expected = [next(0), { group: 0, slot: 0, stored: true }, next(1), next(0)];
    expect((await allocateSlots(main.db, fresh)).slots, 'new tags fill the free slots in order; a tag named twice gets one slot').toEqual(
      expected,
    );
    expect((await allocateSlots(main.db, fresh)).slots, 'asking again gives the same slots (nothing reserved)').toEqual(expected);
    expect(
      (await allocateSlots(empty.db, [tagOf('x'), tagOf('y')])).slots,
      'an empty collection: its group size from the images\' shape',
    ).toEqual([
      { group: 0, slot: 0, stored: false },
      { group: 0, slot: 1, stored: false },
    ]);
    expect((await databaseStatus(empty.db)).width, 'allocating does not fix an empty collection\'s shape').toBe(0);
    expect((await databaseStatus(main.db)).records, 'allocating stores nothing').toBe(BigInt(COLLECTION_SIZE));
  });

  it('returns a group\'s version and its members\' sealed images (GetGroup); an unknown group has none', async () => {
    const groups = Math.ceil(COLLECTION_SIZE / G);
    const versions = new Set<string>();
    for (let g = 0; g < groups; g++) {
      const contents = await getGroup(main.db, g);
      expect(contents.version.length, `group ${g} has a 16-byte version`).toBe(16);
      versions.add(hex(contents.version));
      const ids = main.collection.slice(g * G, (g + 1) * G).map((c) => c.id);
      expect(contents.members.map((m) => m.slot), `group ${g}: its members' slots`).toEqual(ids.map((_, s) => s));
      expect(contents.members.map((m) => hex(m.lookupTag)), `group ${g}: its members' tags`).toEqual(ids.map((id) => hex(tagOf(id))));
      for (const m of contents.members) {
        const image = openSealedImage(recordKey, m.sealedImage);
        expect(image.pixels, `group ${g}: the sealed image of slot ${m.slot}`).toEqual(record(main, ids[m.slot]).pixels);
      }
    }
    expect(versions.size, 'every group has its own version').toBe(groups);
    const lastChange = (g: number) => [...baseBatch.uploads, ...baseSingles.flatMap((s) => s.uploads)].filter((u) => u.group!.group === g).at(-1)!;
    expect(hex((await getGroup(main.db, 0)).version), 'a group\'s version is the one its last change set').toBe(hex(lastChange(0).group!.version));
    expect(hex((await getGroup(main.db, 2)).version)).toBe(hex(lastChange(2).group!.version));
    expect(await getGroup(main.db, groups), 'the group after the last one is empty').toEqual({ version: Buffer.alloc(0), members: [] });
    expect(await getGroup(main.db, 1_000_000), 'an unknown group').toEqual({ version: Buffer.alloc(0), members: [] });
    expect(await getGroup(empty.db, 0), 'a group of an empty collection').toEqual({ version: Buffer.alloc(0), members: [] });
  });

  it('uploads the records of one group in one Upload request (after one Replica.PutGroup with all its members)', () => {
    // The first batch: a whole group, then part of the next, in one writer call (two groups in flight at once).
    const sizes = [G, FIRST_BATCH - G];
    const byGroup = <T>(list: T[], groupOf: (x: T) => number) => [...list].sort((a, b) => groupOf(a) - groupOf(b));
    baseBatch.uploads = byGroup(baseBatch.uploads, (u) => u.group!.group);
    baseBatch.replicaGroups = byGroup(baseBatch.replicaGroups, (r) => r.group!.group);
    expect(baseBatch.uploads.map((u) => u.group!.group), 'one Upload per group').toEqual([0, 1]);
    expect(baseBatch.uploads.map((u) => u.records.length), 'each with all the records of its group').toEqual(sizes);
    expect(baseBatch.replicaGroups.map((r) => r.group!.group), 'one PutGroup per group').toEqual([0, 1]);
    expect(
      baseBatch.uploadReplies.map((r) => [r.stored, r.replaced]).sort(),
      "C1 stores each group's records at once",
    ).toEqual(sizes.map((n) => [n, 0]).sort());
    expect(Math.max(...baseBatch.uploadReplies.map((r) => Number(r.total))), 'C1 holds the whole batch').toBe(FIRST_BATCH);
    expect(Math.max(...baseBatch.replicaReplies.map((r) => Number(r.total))), 'C2 too').toBe(FIRST_BATCH);
    baseBatch.uploads.forEach((u, i) => {
      const ids = main.collection.slice(i * G, i * G + sizes[i]).map((c) => c.id);
      const what = `group ${i} of the first batch`;
      expect(u.keyFingerprint, what).toBe(pk.fingerprint());
      expect([u.width, u.height, u.maxValue, u.paperLayout], `${what}: shape and layout`).toEqual([WIDTH, HEIGHT, MAX_VALUE, true]);
      expect(u.records.map((r) => r.slot), `${what}: slots`).toEqual(ids.map((_, s) => s));
      expect(u.records.map((r) => recordKey.decryptId(r.encryptedId)), `${what}: records`).toEqual(ids);
      for (const r of u.records) {
        expect(r.pixels.length, `${what}: the paper's layout, one ciphertext per pixel`).toBe(D);
        expect([r.sum.length, r.spread.length], `${what}: and its statistics`).toEqual([pk.cipherBytes, pk.cipherBytes]);
      }
      expect(u.group!.baseVersion.length, `${what}: the group was empty`).toBe(0);
      expectC1Change(u.group, what);
      expectReplicaOf(baseBatch.replicaGroups[i], u.group!, [...ids, ...new Array(G - ids.length).fill(null)], what);
    });
    expect(hex(baseBatch.uploads[0].group!.version), 'each change has its own version').not.toBe(hex(baseBatch.uploads[1].group!.version));
  });

  it('re-encrypts a partly filled group when a record joins it, and still finds its earlier members exactly', async () => {
    // In the base upload: patient-5 joined group 1, started by the first batch.
    const joined = baseSingles[0];
    expect(joined.uploads[0].group!.group, 'patient-5 joins group 1').toBe(1);
    expect(hex(joined.uploads[0].group!.baseVersion), 'computed from the version of the first batch').toBe(
      hex(baseBatch.uploads[1].group!.version),
    );
    expect(joined.uploads[0].records.map((r) => r.slot), 'one new record, in the free slot').toEqual([FIRST_BATCH % G]);

    // A record joining the last, partly filled group.
    const group = Math.floor(COLLECTION_SIZE / G);
    const before = await getGroup(main.db, group);
    const earlier = await membersOf(main, group);
    expect(earlier.filter((id) => id !== null).length, 'the group is partly filled').toBe(COLLECTION_SIZE % G);
    const joiner = { id: 'joiner', pixels: randomImage() };
    const { sent, outcomes } = await ownerUpload(main, [joiner]);
    remember(main, [joiner]);
    try {
      expect(outcomes, 'the upload succeeds').toEqual([{ ids: ['joiner'], ok: true, replaced: new Set(), total: COLLECTION_SIZE + 1 }]);
      const change = sent.uploads[0].group!;
      expect(change.group, 'the joiner goes into the partly filled group').toBe(group);
      expect(hex(change.baseVersion), 'the change is computed from the version the owner read').toBe(hex(before.version));
      expect(hex(change.version), 'a new version').not.toBe(hex(before.version));
      expectC1Change(change, 'the joining upload');
      expect(sent.uploads[0].records.map((r) => r.slot), 'only the new record is uploaded').toEqual([COLLECTION_SIZE % G]);
      const after = earlier.map((id, slot) => (slot === COLLECTION_SIZE % G ? 'joiner' : id));
      expectReplicaOf(sent.replicaGroups[0], change, after, 'the joining upload');
      expect(hex((await getGroup(main.db, group)).version), 'C1 holds the new version').toBe(hex(change.version));
      for (const id of earlier.filter((x): x is string => x !== null))
        await expectExactNeighbours(record(main, id).pixels, FAST, 2, `FAST self-query of ${id}, an earlier member of the re-encrypted group`);
      const { ids } = await expectExactNeighbours(joiner.pixels, FAST, 1, 'FAST self-query of the joiner');
      expect(ids, 'the joiner is found').toEqual(['joiner']);
      await expectExactNeighbours(randomImage(), FAST, COLLECTION_SIZE + 1, 'FAST over the whole collection with the joiner');
    } finally {
      forget(main, ['joiner']);
      expect((await ownerDelete(main, ['joiner'])).reply.total, 'the joiner is deleted again').toBe(BigInt(COLLECTION_SIZE));
    }
  });

  it('re-encrypts every group losing a member from the members it keeps, drops an emptied group, and the deleted records are gone', async () => {
    const group = Math.floor(COLLECTION_SIZE / G); // partly filled; the doomed fill it and start the next
    const doomed = Array.from({ length: G - (COLLECTION_SIZE % G) + 2 }, (_, i) => ({ id: `doomed-${i}`, pixels: randomImage() }));
    const up = await ownerUpload(main, doomed);
    remember(main, doomed);
    expect(up.sent.uploads.map((u) => [u.group!.group, u.records.length]), 'the doomed fill the last group and start the next').toEqual([
      [group, G - (COLLECTION_SIZE % G)],
      [group + 1, 2],
    ]);
    await expectExactNeighbours(doomed.at(-1)!.pixels, FAST, 1, 'FAST self-query of a record before its delete');
    const kept = (await membersOf(main, group)).map((id) => (id?.startsWith('doomed-') ? null : id));
    const before = [await getGroup(main.db, group), await getGroup(main.db, group + 1)];
    const ids = doomed.map((d) => d.id);
    const { reply, sent } = await ownerDelete(main, ids);
    forget(main, ids);
    expect(reply, 'C1 deletes them all').toEqual({ deleted: doomed.length, total: BigInt(COLLECTION_SIZE) });
    expect(sent.deletes.length, 'in one Delete').toBe(1);
    const del = sent.deletes[0];
    expect(del.lookupTags.map(hex), 'naming their lookup tags').toEqual(ids.map((id) => hex(tagOf(id))));
    expect(del.groups.map((g) => g.group), 'with a change for every group losing a member').toEqual([group, group + 1]);
    del.groups.forEach((change, i) => {
      expect(hex(change.baseVersion), `group ${change.group}: computed from the version the owner read`).toBe(hex(before[i].version));
      expect(change.version.length, `group ${change.group}: a new 16-byte version`).toBe(16);
    });
    expectC1Change(del.groups[0], 'the group keeping members');
    expect(del.groups[1].columns, 'the emptied group has no columns').toBeUndefined();
    expectReplicaOf(sent.replicaGroups[0], del.groups[0], kept, 'the group keeping members');
    expectReplicaOf(sent.replicaGroups[1], del.groups[1], new Array(G).fill(null), 'the emptied group');
    expect(sent.replicaReplies.at(-1), 'C2 forgets them too').toEqual({ total: BigInt(COLLECTION_SIZE) });
    expect((await keyHolderStatus()).replicaRecords).toBe(BigInt(COLLECTION_SIZE));

    expect(hex((await getGroup(main.db, group)).version), 'C1 holds the re-encrypted group\'s new version').toBe(hex(del.groups[0].version));
    expect(await getGroup(main.db, group + 1), 'and no longer the emptied group').toEqual({ version: Buffer.alloc(0), members: [] });
    expect((await allocateSlots(main.db, ids.map(tagOf))).slots.map((s) => s.stored), 'no deleted tag is stored').toEqual(ids.map(() => false));
    for (const id of kept.filter((x): x is string => x !== null))
      await expectExactNeighbours(record(main, id).pixels, FAST, 2, `FAST self-query of ${id}, kept in the re-encrypted group`);
    for (const d of doomed) {
      const { ids: found } = await expectExactNeighbours(d.pixels, FAST, COLLECTION_SIZE, `FAST query (k = all) for ${d.id}'s image`);
      expect(found.filter((id) => id.startsWith('doomed-')), 'a deleted record is never returned').toEqual([]);
    }
    await expectExactNeighbours(doomed[0].pixels, FNN, 1, 'FNN after the delete');
  });

  it('stores, replaces (by lookup tag) and deletes a record at C1 and C2, reporting counts', async () => {
    const first = await ownerUpload(main, [{ id: 'temporary', pixels: randomImage() }]);
    expect(first.sent.uploadReplies, 'a new record must be stored').toEqual([{ stored: 1, replaced: 0, total: BigInt(COLLECTION_SIZE + 1) }]);
    expect(first.sent.replicaReplies, 'C2 must store its replica').toEqual([{ total: BigInt(COLLECTION_SIZE + 1) }]);
    const replacement = { id: 'temporary', pixels: randomImage() };
    const again = await ownerUpload(main, [replacement]);
    remember(main, [replacement]);
    try {
      expect(again.sent.uploads[0].group!.group, 'a replacement stays in its group').toBe(first.sent.uploads[0].group!.group);
      expect(again.sent.uploads[0].records[0].slot, 'and keeps its slot').toBe(first.sent.uploads[0].records[0].slot);
      expect(hex(again.sent.uploads[0].group!.baseVersion), 'computed from the first upload\'s version').toBe(
        hex(first.sent.uploads[0].group!.version),
      );
      expect(again.sent.uploadReplies, 'the same lookup tag must be replaced').toEqual([{ stored: 0, replaced: 1, total: BigInt(COLLECTION_SIZE + 1) }]);
      expect(again.outcomes, 'the owner hears of the replacement').toEqual([
        { ids: ['temporary'], ok: true, replaced: new Set(['temporary']), total: COLLECTION_SIZE + 1 },
      ]);
      expect(again.sent.replicaReplies, 'C2 must replace its replica').toEqual([{ total: BigInt(COLLECTION_SIZE + 1) }]);
      // Both replicas hold the new content: a fast self-query finds it.
      await expectExactNeighbours(replacement.pixels, FAST, 1, 'fast self-query of the replaced record');
      await expectExactNeighbours(replacement.pixels, BF, 1, 'bf self-query of the replaced record');
    } finally {
      forget(main, ['temporary']);
      const deleted = await ownerDelete(main, ['temporary']);
      expect(deleted.reply, 'delete by lookup tag').toEqual({ deleted: 1, total: BigInt(COLLECTION_SIZE) });
      expect(deleted.sent.replicaReplies, 'C2 must forget the record too').toEqual([{ total: BigInt(COLLECTION_SIZE) }]);
    }
    const gone = await grpcError(ownerDelete(main, ['temporary']), 'deleting a deleted record');
    expectCode(gone, Code.NOT_FOUND, 'deleting a deleted record');
  });

  it('deletes a record named twice in one delete once, and leaves both replicas in agreement', async () => {
    const twice = { id: 'named-twice', pixels: randomImage() };
    await ownerUpload(main, [twice]);
    const outcome = await ownerDelete(main, [twice.id, twice.id]).then(
      ({ reply }) => reply,
      (error: ServiceError) => `refused: ${error.details}`,
    );
    const fast = await query(main.db, await fastRequest(randomImage())).then(
      () => 'answered',
      (error: ServiceError) => `refused: ${error.details}`,
    );
    if (typeof outcome === 'string') await ownerDelete(main, [twice.id]); // leave the collection as it was
    expect(outcome, 'the record is deleted (once)').toEqual({ deleted: 1, total: BigInt(COLLECTION_SIZE) });
    expect(fast, 'C1 and C2 hold the same groups after the delete').toBe('answered');
    await expectExactNeighbours(randomImage(), FAST, 2, 'FAST after the delete');
  });

  it.each([
    ['FAST', FAST, 1],
    ['FAST', FAST, 3],
    ['unspecified (FAST)', wire.Protocol.PROTOCOL_UNSPECIFIED, 1],
    ['unspecified (FAST)', wire.Protocol.PROTOCOL_UNSPECIFIED, 3],
    ['FNN', FNN, 1],
    ['FNN', FNN, 3],
    ['BF', BF, 1],
    ['BF', BF, 3],
  ])('answers a %s query with k = %i with the exact plaintext nearest neighbours and their pixels', async (name, protocol, k) => {
    await expectExactNeighbours(randomImage(), protocol, k, `${name} k=${k}`);
  });

  it('answers a FAST query for every record (k = all) in the exact order', async () => {
    await expectExactNeighbours(randomImage(), FAST, COLLECTION_SIZE, 'FAST k=n');
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
    ['BF', BF],
  ])('finds a stored image itself (distance 0) with %s', async (name, protocol) => {
    const target = main.collection[5];
    const { ids } = await expectExactNeighbours(target.pixels, protocol, 1, `${name} self-query`);
    expect(ids, `${name}: a stored image must be its own nearest neighbour`).toEqual([target.id]);
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
    ['BF', BF],
  ])('breaks a tie by upload order with %s (an image and its later copy)', async (name, protocol) => {
    const { pixels } = record(main, TWIN_OF.original);
    const { ids } = await expectExactNeighbours(pixels, protocol, 2, `${name} tie`);
    expect(ids, `${name}: the earlier upload first`).toEqual([TWIN_OF.original, TWIN_OF.twin]);
    const { ids: one } = await expectExactNeighbours(pixels, protocol, 1, `${name} tie, k = 1`);
    expect(one, `${name}: k = 1 returns the earlier of the two`).toEqual([TWIN_OF.original]);
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
  ])('treats k = 0 as k = 1 (%s)', async (_name, protocol) => {
    const pixels = randomImage();
    const request = isFast(protocol) ? await fastRequest(pixels, { k: 0 }) : paperRequest(await wireQuery(pixels), protocol, 0);
    const reply = await query(main.db, request);
    expect(reply.results.length, 'k = 0 must return exactly one neighbour').toBe(1);
    const got = isFast(protocol) ? openResults(reply) : await redeem(reply);
    expect(got[0].id).toBe(plaintextNearest(main.collection, pixels, 1)[0].id);
  });

  it('answers FAST and FNN queries on one BatchQuery stream, and reports a failed one in its reply', async () => {
    const images = [randomImage(), randomImage()];
    const requests = [
      { ...(await fastRequest(images[0])), tag: 'fast' },
      { ...paperRequest(await wireQuery(images[1])), tag: 'fnn' },
      { ...withFast(await fastRequest(images[0]), { shareTicket: '00112233445566778899aabbccddeeff' }), tag: 'bad-ticket' },
    ];
    const replies = await new Promise<wire.QueryReply[]>((resolve, reject) => {
      const call = main.db.batchQuery({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
      const got: wire.QueryReply[] = [];
      call.on('data', (r: wire.QueryReply) => got.push(r));
      call.on('error', reject);
      call.on('end', () => resolve(got));
      for (const r of requests) call.write(r);
      call.end();
    });
    const byTagOf = new Map(replies.map((r) => [r.tag, r]));
    expect([...byTagOf.keys()].sort(), 'one reply per query').toEqual(['bad-ticket', 'fast', 'fnn']);
    const fast = byTagOf.get('fast')!;
    expect(fast.errorCode, `fast: ${fast.errorMessage}`).toBe('');
    expect(openResults(fast).map((r) => r.id)).toEqual([plaintextNearest(main.collection, images[0], 1)[0].id]);
    const fnn = byTagOf.get('fnn')!;
    expect(fnn.errorCode, `fnn: ${fnn.errorMessage}`).toBe('');
    expect((await redeem(fnn)).map((r) => r.id)).toEqual([plaintextNearest(main.collection, images[1], 1)[0].id]);
    const bad = byTagOf.get('bad-ticket')!;
    expect(bad.errorCode, 'an unknown share ticket fails that query only').toBe('NOT_FOUND');
    expect(bad.results).toEqual([]);
  });

  it("does not let a long batch starve another doctor's query: at most BATCH_CONCURRENCY of a stream run at once", async () => {
    const size = 6;
    const images = Array.from({ length: size }, () => randomImage());
    const requests = images.map((pixels, i) => ({ ...paperRequest(undefined, wire.Protocol.PROTOCOL_BF), tag: `batch-${i}`, pixels }));
    for (const r of requests) r.query = await wireQuery(r.pixels);
    const order: string[] = [];
    let other: Promise<void> | undefined;
    const otherImage = randomImage();
    await new Promise<void>((resolve, reject) => {
      const call = main.db.batchQuery({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
      call.on('data', (r: wire.QueryReply) => {
        expect(r.errorCode, `${r.tag}: ${r.errorMessage}`).toBe('');
        order.push(r.tag);
        // Once the batch is under way, another doctor asks one query.
        other ??= wireQuery(otherImage)
          .then((q) => query(main.db, paperRequest(q, wire.Protocol.PROTOCOL_BF)))
          .then(async (reply) => {
            order.push('other');
            expect((await redeem(reply)).map((n) => n.id), 'the other query is exact').toEqual([plaintextNearest(main.collection, otherImage, 1)[0].id]);
          });
      });
      call.on('error', reject);
      call.on('end', () => resolve());
      for (const { pixels: _pixels, ...r } of requests) call.write(r);
      call.end();
    });
    await other;
    expect(order.filter((t) => t.startsWith('batch')).length, 'every batch query answered').toBe(size);
    const after = order.length - 1 - order.indexOf('other');
    // The other query runs beside at most BATCH_CONCURRENCY batch queries; the ones queued behind those finish after it
    // (without the limit it finishes last: every batch query started before it and they all advance together).
    expect(after, `replies after the other doctor's query (order: ${order.join(', ')})`).toBeGreaterThanOrEqual(size - 2 - BATCH_CONCURRENCY);
  });
});

// ----- a collection without the paper's per-pixel layout -----

describe('A collection uploaded without the paper\'s layout (paper_layout = false)', () => {
  it('is uploaded as records without pixels, sum or spread, with the packed columns of their groups', async () => {
    const sent = await captureUpload(lean, [{ id: 'lean-spare', pixels: randomImage() }]);
    const u = sent.uploads[0];
    expect(u.paperLayout, 'the upload says it has no paper layout').toBe(false);
    expect(u.records.map((r) => [r.pixels.length, r.sum.length, r.spread.length]), 'no per-pixel ciphertexts').toEqual([[0, 0, 0]]);
    expect(u.records[0].sealedImage.length, 'but the sealed image the fast protocol returns').toBeGreaterThan(0);
    expectC1Change(u.group, 'a lean upload');
    expect((await databaseStatus(lean.db)).records, 'capturing sends nothing').toBe(BigInt(LEAN_SIZE));
  });

  it('answers FAST queries exactly (k = 1, k = all, a stored image itself)', async () => {
    await expectExactNeighbours(randomImage(), FAST, 1, 'lean FAST k=1', lean);
    await expectExactNeighbours(randomImage(), FAST, LEAN_SIZE, 'lean FAST k=all', lean);
    const target = lean.collection[1];
    const { ids } = await expectExactNeighbours(target.pixels, FAST, 1, 'lean FAST self-query', lean);
    expect(ids).toEqual([target.id]);
  });

  it.each([
    ['FNN', FNN],
    ['BF', BF],
  ])('refuses %s queries with FAILED_PRECONDITION (there is nothing to run them on)', async (name, protocol) => {
    const error = await grpcError(query(lean.db, paperRequest(await wireQuery(randomImage()), protocol)), `${name} on a lean collection`);
    expectCode(error, Code.FAILED_PRECONDITION, `${name} on a lean collection`);
    expect(error.details, 'the refusal points to the fast protocol').toMatch(/fast/);
  });

  it('re-encrypts its groups on delete and on upload like any collection', async () => {
    const gone = lean.collection[0];
    const { reply, sent } = await ownerDelete(lean, [gone.id]);
    forget(lean, [gone.id]);
    expect(reply, 'the delete').toEqual({ deleted: 1, total: BigInt(LEAN_SIZE - 1) });
    expectC1Change(sent.deletes[0].groups[0], 'a lean delete');
    for (const c of lean.collection.slice(0, G - 1))
      await expectExactNeighbours(c.pixels, FAST, 1, `lean FAST self-query of ${c.id} after the delete`, lean);
    // Uploaded again: into its freed slot, last in upload order.
    const { sent: up } = await ownerUpload(lean, [gone]);
    remember(lean, [gone]);
    expect([up.uploads[0].group!.group, up.uploads[0].records[0].slot], 'back into the freed slot').toEqual([0, 0]);
    const { ids } = await expectExactNeighbours(gone.pixels, FAST, LEAN_SIZE, 'lean FAST k=all after the upload', lean);
    expect(ids[0]).toBe(gone.id);
    });
  });

// ----- QueryWithProgress: the same query, with progress while it runs -----

/**
 * QueryWithProgress read below the generated client: each event's bytes as
 * they came off the wire, so the test sees everything C1 sent, not only the
 * fields the generated decoder knows.
 */
function queryWithProgress(request: wire.QueryRequest): Promise<{ events: Buffer[]; error?: ServiceError }> {
  const raw = new Client(c1.address, credentials.createInsecure());
  return new Promise((resolve) => {
    const events: Buffer[] = [];
    const call = raw.makeServerStreamRequest(
      '/fnn.v1.Database/QueryWithProgress',
      (r: wire.QueryRequest) => Buffer.from(wire.QueryRequest.encode(r).finish()),
      (bytes: Buffer) => bytes,
      request,
      new Metadata(),
      { deadline: new Date(Date.now() + RPC_DEADLINE_MS) },
    );
    const done = (error?: ServiceError) => {
      raw.close();
      resolve({ events, error });
    };
    call.on('data', (bytes: Buffer) => events.push(bytes));
    call.on('error', done);
    call.on('status', (s) => {
      if (s.code === Code.OK) done();
    });
  });
}

/** What a doctor gets from a reply: the neighbours (ids and exact pixels) and the counts. */
async function answerOf(reply: wire.QueryReply) {
  const neighbours = isFast(reply.protocol) ? openResults(reply) : await redeem(reply);
  return { neighbours, total: reply.total, rejected: reply.rejected, protocol: reply.protocol, tag: reply.tag };
}

describe('QueryWithProgress', () => {
  const G = () => packingParams(512, WIDTH, HEIGHT, MAX_VALUE).groupSize;

  it.each([
    ['FAST', wire.Protocol.PROTOCOL_FAST, 'candidates'],
    ['FNN', wire.Protocol.PROTOCOL_FNN, 'candidates'],
    ['BF', wire.Protocol.PROTOCOL_BF, 'distances'],
  ] as const)(
    '%s: counts-only progress in phase order that never goes back, then the answer Query gives',
    async (name, protocol, lastPhase) => {
      const pixels = randomImage(D);
      const k = 2;
      // A fast query's share at C2 is used once: each call gets its own request for the same image.
      const request = async () => (isFast(protocol) ? fastRequest(pixels, { protocol, k }) : paperRequest(await wireQuery(pixels), protocol, k));
      const unary = await answerOf(await query(main.db, await request()));
      const { events, error } = await queryWithProgress(await request());
      expect(error, `${name}: the stream failed`).toBeUndefined();
      const decoded = events.map((bytes) => wire.QueryEvent.decode(bytes));
      const last = decoded.at(-1)?.event;
      expect(last?.$case, `${name}: the last event is the reply`).toBe('reply');
      const progress = decoded.slice(0, -1).map((e, i) => {
        expect(e.event?.$case, `${name}: only the last event is a reply`).toBe('progress');
        // Nothing on the wire but the four counts: re-encoding the decoded event gives the same bytes
        // (no field the decoder skipped), and it is far smaller than one ciphertext.
        expect(Buffer.from(wire.QueryEvent.encode(e).finish()), `${name}: event ${i} carries unknown fields`).toEqual(events[i]);
        expect(events[i].length, `${name}: event ${i} is too large for counts`).toBeLessThan(40);
        const value = (e.event as { $case: 'progress'; value: wire.QueryProgress }).value;
        expect(Object.keys(value).sort()).toEqual(['done', 'phase', 'rejected', 'total']);
        return value;
      });
      expect(progress.length, `${name}: at least each phase's start and end`).toBeGreaterThanOrEqual(2);
      const phases = progress.map((p) => p.phase);
      expect(phases, `${name}: phases in order`).toEqual([...phases].sort((a, b) => a - b));
      for (let i = 1; i < progress.length; i++) {
        if (progress[i].phase === progress[i - 1].phase) {
          expect(progress[i].done >= progress[i - 1].done, `${name}: done went back`).toBe(true);
          expect(progress[i].total, `${name}: total changed within a phase`).toBe(progress[i - 1].total);
        }
        expect(progress[i].rejected >= progress[i - 1].rejected, `${name}: rejected went back`).toBe(true);
      }
      const reply = (last as { $case: 'reply'; value: wire.QueryReply }).value;
      const units = BigInt(isFast(protocol) ? Math.ceil(main.collection.length / G()) : main.collection.length);
      expect(progress.at(-1), `${name}: the last progress says all settled, with the reply's rejected count`).toEqual({
        phase: wire.QueryPhase[`QUERY_PHASE_${lastPhase.toUpperCase()}` as keyof typeof wire.QueryPhase],
        done: units,
        total: units,
        rejected: reply.rejected,
      });
      const streamed = await answerOf(reply);
      const expected = plaintextNearest(main.collection, pixels, k);
      expect(streamed.neighbours.map((n) => n.id), `${name}: not the plaintext nearest`).toEqual(expected.map((e) => e.id));
      expect(streamed, `${name}: the streamed answer differs from Query's`).toEqual(unary);
    },
  );

  it('ends the stream with INVALID_ARGUMENT and no events for a query of another size', async () => {
    const { events, error } = await queryWithProgress(paperRequest(await wireQuery(randomImage(25), 5, 5)));
    expect(events, 'no progress or reply for a refused query').toEqual([]);
    expect(error, 'a refused query must fail the stream').toBeDefined();
    expectCode(error!, Code.INVALID_ARGUMENT, 'QueryWithProgress 5x5');
    expect(error!.details).toMatch(/5x5/);
  });
});

// ----- the two replicas must agree -----

describe('C1 and C2 replicas that disagree', () => {
  it('fail a FAST query with FAILED_PRECONDITION naming the difference while FNN works; completing the change at C2 fixes it', async () => {
    const pixels = randomImage();
    const { sent } = await ownerUpload(main, [{ id: 'c1-only', pixels }], { c2: false });
    expect(sent.uploadReplies[0].total, 'C1 stored the record').toBe(BigInt(COLLECTION_SIZE + 1));
    expect((await keyHolderStatus()).replicaRecords, 'C2 did not').toBe(BigInt(COLLECTION_SIZE));
    remember(main, [{ id: 'c1-only', pixels }]);
    try {
      const error = await grpcError(query(main.db, await fastRequest(randomImage())), 'a FAST query while the replicas differ');
      expectCode(error, Code.FAILED_PRECONDITION, 'a FAST query while the replicas differ');
      expect(error.details, 'the refusal must say that the replicas differ').toMatch(/replicas.*differ/);
      expect(error.details, 'the refusal must say it comes from C2').toMatch(/C2/);
      // The paper protocols do not use the replica at C2.
      await expectExactNeighbours(pixels, FNN, 1, 'FNN while the replicas differ');
      await expectExactNeighbours(randomImage(), BF, 2, 'BF while the replicas differ');
      expect(await putGroup(sent.replicaGroups[0]), 'the owner completes the change at C2').toEqual({
        total: BigInt(COLLECTION_SIZE + 1),
      });
      await expectExactNeighbours(pixels, FAST, 1, 'FAST once the replicas agree again');
    } finally {
      forget(main, ['c1-only']);
      await ownerDelete(main, ['c1-only']);
    }
    await expectExactNeighbours(randomImage(), FAST, 2, 'FAST after the record was deleted on both');
  });

  it('fail a FAST query after a delete that reached C1 only, until C2 gets the re-encrypted group too', async () => {
    const extra = { id: 'deleted-at-c1-only', pixels: randomImage() };
    const up = await ownerUpload(main, [extra]);
    expect(up.sent.uploadReplies[0].total).toBe(BigInt(COLLECTION_SIZE + 1));
    expect(up.sent.uploads[0].records[0].slot, 'the record shares its group with others').toBeGreaterThan(0);
    const { reply, sent } = await ownerDelete(main, [extra.id], { c2: false });
    expect(reply.total).toBe(BigInt(COLLECTION_SIZE));
    expect((await keyHolderStatus()).replicaRecords, 'C2 still holds the record').toBe(BigInt(COLLECTION_SIZE + 1));
    const error = await grpcError(query(main.db, await fastRequest(randomImage())), 'a FAST query after a delete at C1 only');
    expectCode(error, Code.FAILED_PRECONDITION, 'a FAST query after a delete at C1 only');
    expect(error.details).toMatch(/replicas.*differ/);
    await expectExactNeighbours(randomImage(), FNN, 1, 'FNN after a delete at C1 only');
    expect(await putGroup(sent.replicaGroups[0]), 'C2 gets the re-encrypted group').toEqual({ total: BigInt(COLLECTION_SIZE) });
    await expectExactNeighbours(randomImage(), FAST, 1, 'FAST once C2 has the group as C1');
  });

  it('fail a FAST query, rather than answer wrongly, when C2 holds another change of a group (a replacement that reached C2 only)', async () => {
    // The owner replaces a record: C2's replica is set first, then C1's upload
    // fails (C1 down, or refused). Both servers hold the same tags in the same
    // slots, with different images: the versions tell them apart.
    const target = main.collection[4];
    const { sent } = await ownerUpload(main, [{ id: target.id, pixels: randomImage() }], { c1: false });
    expect(sent.replicaReplies, 'C2 took the replacement').toEqual([{ total: BigInt(COLLECTION_SIZE) }]);
    try {
      const outcome = await query(main.db, await fastRequest(target.pixels, { k: COLLECTION_SIZE })).then(
        (reply) => ({ ids: openResults(reply).map((r) => r.id), error: undefined }),
        (error: ServiceError) => ({ ids: undefined, error }),
      );
      const expected = plaintextNearest(main.collection, target.pixels, COLLECTION_SIZE).map((e) => e.id);
      expect(
        outcome.error
          ? Code[outcome.error.code]
          : `an answer (${outcome.ids!.join(' ') === expected.join(' ') ? 'right by luck' : 'WRONG'}: ${outcome.ids!.join(' ')})`,
        'replicas holding different changes of a group must be refused like any other disagreement',
      ).toBe('FAILED_PRECONDITION');
    } finally {
      // Running the upload again completes it (here with the original image, so the collection is as it was).
      await ownerUpload(main, [target]);
    }
    await expectExactNeighbours(target.pixels, FAST, 1, 'FAST once both hold the same change');
  });

  it('refuses a change computed from a group version that is no longer current (two owners at once), and the rerun succeeds', async () => {
    const late = { id: 'late-owner', pixels: randomImage() };
    const stale = await captureUpload(main, [late]); // read the group, then another change lands
    const early = { id: 'early-owner', pixels: randomImage() };
    await ownerUpload(main, [early]);
    remember(main, [early]);
    try {
      const error = await grpcError(upload(main.db, stale.uploads[0]), 'an upload computed from a stale group version');
      expectCode(error, Code.FAILED_PRECONDITION, 'an upload computed from a stale group version');
      expect((await databaseStatus(main.db)).records, 'the stale upload stored nothing').toBe(BigInt(COLLECTION_SIZE + 1));
      await ownerUpload(main, [late]);
      remember(main, [late]);
      await expectExactNeighbours(late.pixels, FAST, 1, 'FAST after the rerun');
      await expectExactNeighbours(early.pixels, FAST, 1, 'FAST still finds the other owner\'s record');
    } finally {
      const ids = main.collection.filter((c) => c.id === 'late-owner' || c.id === 'early-owner').map((c) => c.id);
      forget(main, ids);
      await ownerDelete(main, ids);
    }
    await expectExactNeighbours(randomImage(), FAST, 2, 'FAST after both were deleted');
  });

  it('lets two owners upload into the same group at once: the one whose change lands second plans its group again, and both replicas agree', async () => {
    const late = { id: 'racing-late', pixels: randomImage() };
    const early = { id: 'racing-early', pixels: randomImage() };
    const link = ownerLink(main, { c1: true, c2: true });
    const read = link.getGroup;
    let raced = false;
    // Right after the late owner reads its group, the early owner's upload into the same free slot lands.
    link.getGroup = async (req) => {
      const contents = await read(req);
      if (!raced) {
        raced = true;
        await ownerUpload(main, [early]);
      }
      return contents;
    };
    const outcomes: GroupOutcome[] = [];
    await writerOver(link, main.paperLayout).upload([{ id: late.id, image: { ...SHAPE, pixels: late.pixels } }], (o) => outcomes.push(o));
    remember(main, [early, late]);
    try {
      expect(raced, 'the race happened').toBe(true);
      expect(outcomes.map((o) => o.ok), `the late owner's upload ends stored (${outcomes.map((o) => (o.ok ? 'ok' : String(o.error))).join('; ')})`).toEqual([true]);
      expect(link.sent.uploads.length, 'its first change was refused as stale, the second stored').toBe(2);
      await expectExactNeighbours(late.pixels, FAST, 1, 'FAST finds the late owner\'s record');
      await expectExactNeighbours(early.pixels, FAST, 1, 'FAST finds the early owner\'s record');
      await expectExactNeighbours(randomImage(), FAST, main.collection.length, 'FAST over everything: both replicas agree on every group');
    } finally {
      forget(main, [early.id, late.id]);
      await ownerDelete(main, [early.id, late.id]);
    }
  });
});

// ----- malformed input: every case is refused with its code and leaves both servers as they were -----

interface BadCase {
  name: string;
  code: Code;
  /** The deployment the case talks to (default: the populated one). */
  target?: () => Deployment;
  run: () => Promise<unknown>;
}

const zeros = (bytes = pk.cipherBytes) => Buffer.alloc(bytes);
const allOnes = (bytes = pk.cipherBytes) => Buffer.alloc(bytes, 0xff);
const factorOfN = () => Buffer.from(cipherToBytes(BigInt(sk.toJSON().p), pk.cipherBytes));
const factorOfN1 = () => Buffer.from(cipherToBytes(BigInt(sk1.toJSON().p), pk1.cipherBytes));
const UNKNOWN_TICKET = '00112233445566778899aabbccddeeff';
const replaceAt = <T>(list: T[], index: number, value: T): T[] => list.map((x, i) => (i === index ? value : x));

/** Valid requests the real owner built (captured, never sent), to be corrupted one field at a time. */
interface Bases {
  /** main: a new record into the last, partly filled group (its base version is that group's). */
  upload: wire.UploadRequest;
  replica: wire.ReplicaGroup;
  /** main: a replacement of a member of that group and the new record, in one request. */
  upload2: wire.UploadRequest;
  /** A slot of the upload's group held by another record. */
  takenSlot: number;
  /** A 5x5 image (captured against the empty C1). */
  upload5x5: wire.UploadRequest;
  replica5x5: wire.ReplicaGroup;
  /** lean: a new record without the paper's layout, and the same with it. */
  lean: wire.UploadRequest;
  leanPaper: wire.UploadRequest;
  /** main: delete one member of a group that keeps others; all members of group 0; one of each. */
  delete1: wire.DeleteRequest;
  deleteGroup0: wire.DeleteRequest;
  delete2: wire.DeleteRequest;
  /** C2's side of delete1 (a group whose members shrink) and of deleteGroup0 (a group dropped). */
  replicaDrop: wire.ReplicaGroup;
}
let bases: Bases;

const change = (over: Partial<wire.GroupChange>, req = bases.upload): wire.UploadRequest => ({ ...req, group: { ...req.group!, ...over } });
const columns = (over: Partial<wire.PackedColumns>, req = bases.upload) => change({ columns: { ...req.group!.columns!, ...over } }, req);
const columnPixel = (index: number, bytes: Buffer) => columns({ pixels: replaceAt(bases.upload.group!.columns!.pixels, index, bytes) });
const withRecord = (over: Partial<wire.EncryptedRecord>, index = 0, req = bases.upload): wire.UploadRequest => ({
  ...req,
  records: req.records.map((r, i) => (i === index ? { ...r, ...over } : r)),
});
const recordPixel = (index: number, bytes: Buffer) => withRecord({ pixels: replaceAt(bases.upload.records[0].pixels, index, bytes) });
const withoutPaper = (r: wire.EncryptedRecord): wire.EncryptedRecord => ({ ...r, pixels: [], sum: Buffer.alloc(0), spread: Buffer.alloc(0) });

const replicaWith = (over: Partial<wire.ReplicaGroup>, base = () => bases.replica): wire.ReplicaGroup => ({ ...base(), ...over });
const replicaChange = (over: Partial<wire.GroupChange>) => replicaWith({ group: { ...bases.replica.group!, ...over } });
const replicaColumns = (over: Partial<wire.PackedColumns>) => replicaChange({ columns: { ...bases.replica.group!.columns!, ...over } });
const replicaColumnPixel = (index: number, bytes: Buffer) =>
  replicaColumns({ pixels: replaceAt(bases.replica.group!.columns!.pixels, index, bytes) });

const deleteChange = (over: Partial<wire.GroupChange>, req = () => bases.delete1): wire.DeleteRequest => ({
  ...req(),
  groups: replaceAt(req().groups, 0, { ...req().groups[0], ...over }),
});

const badUpload = (name: string, build: () => wire.UploadRequest, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Upload: ${name}`,
  code,
  run: () => upload(main.db, build()),
});
const badColumns = (name: string, build: () => wire.UploadRequest, code = Code.INVALID_ARGUMENT) =>
  badUpload(`group change: ${name}`, build, code);
const badLean = (name: string, build: () => wire.UploadRequest): BadCase => ({
  name: `Upload (collection without the paper's layout): ${name}`,
  code: Code.INVALID_ARGUMENT,
  target: () => lean,
  run: () => upload(lean.db, build()),
});
const badAllocate = (name: string, tags: () => Buffer[], shape: Partial<typeof SHAPE> = {}): BadCase => ({
  name: `AllocateSlots: ${name}`,
  code: Code.INVALID_ARGUMENT,
  run: () => allocateSlots(main.db, tags(), shape),
});
const badQuery = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Query: ${name}`,
  code,
  run: async () => query(main.db, await build()),
});
const badFast = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase =>
  badQuery(`FAST ${name}`, build, code);
const badReplica = (name: string, build: () => wire.ReplicaGroup): BadCase => ({
  name: `Replica.PutGroup: ${name}`,
  code: Code.INVALID_ARGUMENT,
  run: () => putGroup(build()),
});
const badDelete = (name: string, build: () => wire.DeleteRequest, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Delete: ${name}`,
  code,
  run: () => remove(main.db, build()),
});

const badCases: BadCase[] = [
  // Upload: the request and its records
  badUpload('wrong key fingerprint', () => ({ ...bases.upload, keyFingerprint: '0123456789abcdef' })),
  badUpload('image size differs from the collection (5x5 into 4x4)', () => bases.upload5x5),
  badUpload('pixel depth differs from the collection (65535 into 255)', () => ({ ...bases.upload, maxValue: 65535 })),
  badUpload('pixel count is not width*height (15 of 16)', () => withRecord({ pixels: bases.upload.records[0].pixels.slice(1) })),
  badUpload('pixel count is not width*height (17 of 16)', () =>
    withRecord({ pixels: [...bases.upload.records[0].pixels, bases.upload.records[0].pixels[0]] }),
  ),
  badUpload('zero width', () => ({ ...bases.upload, width: 0, height: 16 })),
  badUpload('zero height', () => ({ ...bases.upload, width: 16, height: 0 })),
  badUpload('huge width (1,000,000 x 1)', () => ({ ...bases.upload, width: 1_000_000, height: 1 })),
  badUpload('huge width and height (65536 x 65536)', () => ({ ...bases.upload, width: 65536, height: 65536 })),
  badUpload('maxValue 0', () => ({ ...bases.upload, maxValue: 0 })),
  badUpload('maxValue 70000', () => ({ ...bases.upload, maxValue: 70000 })),
  badUpload('empty records list', () => ({ ...bases.upload, records: [] })),
  badUpload('no group change', () => ({ ...bases.upload, group: undefined })),
  badUpload('pixel ciphertext of the wrong byte length (one byte short)', () =>
    recordPixel(2, bases.upload.records[0].pixels[2].subarray(1) as Buffer),
  ),
  badUpload('pixel ciphertext one byte too long', () =>
    recordPixel(2, Buffer.concat([Buffer.alloc(1), bases.upload.records[0].pixels[2]])),
  ),
  badUpload('pixel ciphertext equal to 0', () => recordPixel(0, zeros())),
  badUpload('pixel ciphertext >= N^2 (all 0xff bytes)', () => recordPixel(7, allOnes())),
  badUpload('pixel ciphertext sharing a factor with N (p)', () => recordPixel(15, factorOfN())),
  badUpload('sum ciphertext equal to 0', () => withRecord({ sum: zeros() })),
  badUpload('spread ciphertext sharing a factor with N', () => withRecord({ spread: factorOfN() })),
  badUpload('lookup tag of the wrong length (31 bytes)', () => withRecord({ lookupTag: bases.upload.records[0].lookupTag.subarray(1) })),
  badUpload('empty lookup tag', () => withRecord({ lookupTag: Buffer.alloc(0) })),
  badUpload('empty encrypted_id', () => withRecord({ encryptedId: Buffer.alloc(0) })),
  badUpload('empty sealed image', () => withRecord({ sealedImage: Buffer.alloc(0) })),
  badUpload('a valid replacement followed by a malformed record (nothing of the call is stored)', () =>
    withRecord({ pixels: replaceAt(bases.upload2.records[1].pixels, 0, zeros()) }, 1, bases.upload2),
  ),
  badUpload(
    'a valid replacement followed by a record into a slot held by another (the replacement is rolled back)',
    () => withRecord({ slot: bases.takenSlot }, 1, bases.upload2),
    Code.FAILED_PRECONDITION,
  ),
  badUpload(
    'two records of one request in one slot',
    () => withRecord({ slot: bases.upload2.records[0].slot }, 1, bases.upload2),
    Code.FAILED_PRECONDITION,
  ),
  badUpload('record slot outside the group (slot = group size)', () => withRecord({ slot: G })),
  badUpload('record slot far outside the group', () => withRecord({ slot: 1_000_000 })),
  badUpload('a slot held by another record', () => withRecord({ slot: bases.takenSlot }), Code.FAILED_PRECONDITION),
  badUpload(
    'the lookup tag of a record stored in another group',
    () => withRecord({ lookupTag: tagOf(main.collection[0].id) }),
    Code.FAILED_PRECONDITION,
  ),
  // Upload: the paper's layout, fixed per collection
  badUpload('paper_layout = false into a collection with the paper\'s layout', () => ({
    ...bases.upload,
    paperLayout: false,
    records: bases.upload.records.map(withoutPaper),
  })),
  badUpload('paper_layout = false, but the record carries its pixels', () => ({ ...bases.upload, paperLayout: false })),
  badUpload('paper_layout = true, but the record carries no pixels', () => ({
    ...bases.upload,
    records: bases.upload.records.map(withoutPaper),
  })),
  badLean('a record carrying pixels when paper_layout is false', () =>
    withRecord({ pixels: bases.leanPaper.records[0].pixels }, 0, bases.lean),
  ),
  badLean('a record carrying a sum when paper_layout is false', () => withRecord({ sum: bases.leanPaper.records[0].sum }, 0, bases.lean)),
  badLean('paper_layout = true into a collection without it (records with the layout)', () => bases.leanPaper),
  badLean('paper_layout = true into a collection without it (records without the layout)', () => ({ ...bases.lean, paperLayout: true })),
  // Upload: the group change and its packed columns
  badColumns('stale base_version (16 random bytes)', () => change({ baseVersion: Buffer.alloc(16, 7) }), Code.FAILED_PRECONDITION),
  badColumns('empty base_version although the group has members', () => change({ baseVersion: Buffer.alloc(0) }), Code.FAILED_PRECONDITION),
  badColumns(
    'base_version of another group',
    () => change({ baseVersion: bases.delete2.groups[0].baseVersion }),
    Code.FAILED_PRECONDITION,
  ),
  badColumns('version of 15 bytes', () => change({ version: bases.upload.group!.version.subarray(1) })),
  badColumns('version of 17 bytes', () => change({ version: Buffer.concat([bases.upload.group!.version, Buffer.alloc(1)]) })),
  badColumns('empty version', () => change({ version: Buffer.alloc(0) })),
  badColumns('no columns although the group has members', () => change({ columns: undefined })),
  badColumns('15 of 16 pixel columns', () => columns({ pixels: bases.upload.group!.columns!.pixels.slice(1) })),
  badColumns('17 of 16 pixel columns', () =>
    columns({ pixels: [...bases.upload.group!.columns!.pixels, bases.upload.group!.columns!.pixels[0]] }),
  ),
  badColumns('an embedding one short', () => columns({ embedding: bases.upload.group!.columns!.embedding.slice(1) })),
  badColumns('no embedding', () => columns({ embedding: [] })),
  badColumns('pixel column ciphertext equal to 0', () => columnPixel(0, zeros())),
  badColumns('pixel column ciphertext >= N^2', () => columnPixel(3, allOnes())),
  badColumns('pixel column ciphertext sharing a factor with N', () => columnPixel(5, factorOfN())),
  badColumns('pixel column ciphertext of the wrong byte length (one byte short)', () => columnPixel(3, zeros(pk.cipherBytes - 1))),
  badColumns('embedding ciphertext equal to 0', () =>
    columns({ embedding: replaceAt(bases.upload.group!.columns!.embedding, 0, zeros()) }),
  ),
  badColumns('no distance constant (C1\'s replica needs it)', () => columns({ distanceConstant: Buffer.alloc(0) })),
  badColumns('no bound constant', () => columns({ boundConstant: Buffer.alloc(0) })),
  badColumns('distance constant >= N^2', () => columns({ distanceConstant: allOnes() })),
  badColumns('bound constant sharing a factor with N', () => columns({ boundConstant: factorOfN() })),
  // AllocateSlots
  badAllocate('no lookup tags', () => []),
  badAllocate('lookup tag of the wrong length (31 bytes)', () => [tagOf('x').subarray(1)]),
  badAllocate('one lookup tag of 33 bytes among valid ones', () => [tagOf('x'), Buffer.concat([tagOf('y'), Buffer.alloc(1)])]),
  badAllocate('10,001 lookup tags in one call', () => Array.from({ length: 10_001 }, (_, i) => tagOf(`bulk-${i}`))),
  badAllocate('zero width', () => [tagOf('x')], { width: 0 }),
  badAllocate('zero height', () => [tagOf('x')], { height: 0 }),
  badAllocate('huge width (1,000,000 x 4)', () => [tagOf('x')], { width: 1_000_000 }),
  badAllocate('maxValue 0', () => [tagOf('x')], { maxValue: 0 }),
  badAllocate('maxValue 70000', () => [tagOf('x')], { maxValue: 70000 }),
  badAllocate('image size differs from the collection (5x5)', () => [tagOf('x')], { width: 5, height: 5 }),
  badAllocate('pixel depth differs from the collection (65535)', () => [tagOf('x')], { maxValue: 65535 }),
  // Query (paper protocols)
  badQuery('wrong key fingerprint', async () => {
    const q = await wireQuery(randomImage());
    return paperRequest({ ...q, keyFingerprint: '0123456789abcdef' });
  }),
  badQuery('query image size differs from the collection (5x5)', async () => paperRequest(await wireQuery(randomImage(25), 5, 5))),
  badQuery('query claims 4x4 but has 15 pixels', async () => {
    const q = await wireQuery(randomImage());
    return paperRequest({ ...q, negatedPixels: q.negatedPixels.slice(1) });
  }),
  badQuery('missing query', async () => paperRequest(undefined)),
  badQuery('k = 101', async () => paperRequest(await wireQuery(randomImage()), FNN, 101)),
  badQuery('unknown protocol enum value 7', async () => paperRequest(await wireQuery(randomImage()), 7 as wire.Protocol, 1)),
  badQuery('query pixel ciphertext equal to 0', async () => {
    const q = await wireQuery(randomImage());
    return paperRequest({ ...q, negatedPixels: [zeros(), ...q.negatedPixels.slice(1)] });
  }),
  badQuery('query spread ciphertext >= N^2', async () => {
    const q = await wireQuery(randomImage());
    return paperRequest({ ...q, spread: allOnes() });
  }),
  badQuery('a paper-style query with protocol unspecified (the default is FAST, which needs its shares)', async () =>
    paperRequest(await wireQuery(randomImage()), wire.Protocol.PROTOCOL_UNSPECIFIED),
  ),
  // Query (fast protocol)
  badFast('without its `fast` part', async () => ({ ...(await fastRequest(randomImage())), fast: undefined })),
  badFast('without its query (shape and key)', async () => ({ ...(await fastRequest(randomImage())), query: undefined })),
  badFast('wrong key fingerprint', async () => {
    const req = await fastRequest(randomImage());
    return { ...req, query: { ...req.query!, keyFingerprint: '0123456789abcdef' } };
  }),
  badFast('query image size differs from the collection (claims 5x5)', async () => {
    const req = await fastRequest(randomImage());
    return { ...req, query: { ...req.query!, width: 5, height: 5 } };
  }),
  badFast('k = 101', async () => fastRequest(randomImage(), { k: 101 })),
  badFast('C1\'s distance share of the wrong length (15 of 16)', async () => {
    const req = await fastRequest(randomImage());
    return withFast(req, { distanceShare: req.fast!.distanceShare.slice(1) });
  }),
  badFast('C1\'s bound share of the wrong length (one short)', async () => {
    const req = await fastRequest(randomImage());
    return withFast(req, { boundShare: req.fast!.boundShare.slice(1) });
  }),
  badFast('C1\'s share with a value above 64 bytes', async () => {
    const req = await fastRequest(randomImage());
    return withFast(req, { distanceShare: [Buffer.alloc(65, 1), ...req.fast!.distanceShare.slice(1)] });
  }),
  badFast('distance constant equal to 0', async () => withFast(await fastRequest(randomImage()), { distanceConstant: zeros() })),
  badFast('bound constant of the wrong byte length', async () =>
    withFast(await fastRequest(randomImage()), { boundConstant: zeros(pk.cipherBytes + 1) }),
  ),
  badFast('C2\'s share of the wrong length (C2 refuses it in the session)', async () =>
    fastRequest(randomImage(), { c2Share: (s) => ({ ...s, distance: s.distance.slice(1) }) }),
  ),
  badFast('an unknown share ticket', async () => withFast(await fastRequest(randomImage()), { shareTicket: UNKNOWN_TICKET }), Code.NOT_FOUND),
  badFast('an empty share ticket', async () => withFast(await fastRequest(randomImage()), { shareTicket: '' }), Code.NOT_FOUND),
  badFast(
    'a share ticket used twice (the 2nd time)',
    async () => {
      const req = await fastRequest(randomImage());
      await query(main.db, req); // the 1st use must succeed
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
    target: () => empty,
    run: async () => query(empty.db, paperRequest(await wireQuery(randomImage()))),
  },
  {
    name: 'Query: FAST on an empty collection',
    code: Code.INVALID_ARGUMENT,
    target: () => empty,
    run: async () => query(empty.db, await fastRequest(randomImage())),
  },
  // Replica.PutGroup
  badReplica('wrong key fingerprint (C2\'s)', () => replicaWith({ keyFingerprint: '0123456789abcdef' })),
  badReplica('wrong evaluator key fingerprint (C1\'s)', () => replicaWith({ evaluatorKeyFingerprint: pk.fingerprint() })),
  badReplica('zero width', () => replicaWith({ width: 0 })),
  badReplica('huge width and height (65536 x 65536)', () => replicaWith({ width: 65536, height: 65536 })),
  badReplica('maxValue 70000', () => replicaWith({ maxValue: 70000 })),
  badReplica('image size differs from the replica (5x5 into 4x4)', () => bases.replica5x5),
  badReplica('pixel depth differs from the replica (65535 into 255)', () => replicaWith({ maxValue: 65535 })),
  badReplica('no group change', () => replicaWith({ group: undefined })),
  badReplica('a member\'s lookup tag of the wrong length (31 bytes)', () =>
    replicaWith({ members: replaceAt(bases.replica.members, 0, { ...bases.replica.members[0], lookupTag: bases.replica.members[0].lookupTag.subarray(1) }) }),
  ),
  badReplica('a member slot outside the group (slot = group size)', () =>
    replicaWith({ members: replaceAt(bases.replica.members, 0, { ...bases.replica.members[0], slot: G }) }),
  ),
  badReplica('two members in one slot', () =>
    replicaWith({ members: replaceAt(bases.replica.members, 1, { ...bases.replica.members[1], slot: bases.replica.members[0].slot }) }),
  ),
  badReplica('version of 15 bytes', () => replicaChange({ version: bases.replica.group!.version.subarray(1) })),
  badReplica('empty version', () => replicaChange({ version: Buffer.alloc(0) })),
  badReplica('members but no columns', () => replicaChange({ columns: undefined })),
  badReplica('no members but columns (an emptied group)', () => replicaWith({ members: [] })),
  badReplica('15 of 16 pixel columns', () => replicaColumns({ pixels: bases.replica.group!.columns!.pixels.slice(1) })),
  badReplica('an embedding one short', () => replicaColumns({ embedding: bases.replica.group!.columns!.embedding.slice(1) })),
  badReplica('ciphertext one byte short', () =>
    replicaColumnPixel(1, bases.replica.group!.columns!.pixels[1].subarray(1) as Buffer),
  ),
  badReplica('ciphertext equal to 0', () => replicaColumnPixel(1, zeros())),
  badReplica('ciphertext >= N1^2 (all 0xff bytes)', () => replicaColumnPixel(1, allOnes())),
  badReplica('ciphertext sharing a factor with N1', () => replicaColumnPixel(1, factorOfN1())),
  badReplica('embedding ciphertext equal to 0', () =>
    replicaColumns({ embedding: replaceAt(bases.replica.group!.columns!.embedding, 0, zeros()) }),
  ),
  badReplica('a dropped group (no members) with columns of another group', () =>
    replicaWith({ group: { ...bases.replicaDrop.group!, columns: bases.replica.group!.columns } }, () => bases.replicaDrop),
  ),
  // Delete
  badDelete('an unknown ID', () => ({ lookupTags: [tagOf('nobody')], groups: [] }), Code.NOT_FOUND),
  badDelete(
    'known IDs with one unknown among them (deletes none)',
    () => ({ ...bases.delete2, lookupTags: [bases.delete2.lookupTags[0], tagOf('nobody'), bases.delete2.lookupTags[1]] }),
    Code.NOT_FOUND,
  ),
  {
    name: 'Delete: an unknown ID on an empty collection',
    code: Code.NOT_FOUND,
    target: () => empty,
    run: () => remove(empty.db, { lookupTags: [tagOf('nobody')], groups: [] }),
  },
  badDelete('no IDs', () => ({ lookupTags: [], groups: [] })),
  badDelete('lookup tag of the wrong length', () => ({ ...bases.delete1, lookupTags: [bases.delete1.lookupTags[0].subarray(1)] })),
  badDelete('omits the group losing a member', () => ({ ...bases.delete1, groups: [] })),
  badDelete('omits one of two groups losing a member', () => ({ ...bases.delete2, groups: bases.delete2.groups.slice(1) })),
  badDelete('omits the group it empties', () => ({ ...bases.deleteGroup0, groups: [] })),
  badDelete('sends columns for the group it empties', () => ({
    ...bases.deleteGroup0,
    groups: [{ ...bases.deleteGroup0.groups[0], columns: bases.delete1.groups[0].columns }],
  })),
  badDelete('sends no columns for a group that keeps members', () => deleteChange({ columns: undefined })),
  badDelete(
    'a stale base_version',
    () => deleteChange({ baseVersion: Buffer.alloc(16, 7) }),
    Code.FAILED_PRECONDITION,
  ),
  badDelete('a change for a group that loses no member', () => ({
    ...bases.delete1,
    groups: [...bases.delete1.groups, { ...bases.delete2.groups[0] }],
  })),
  badDelete('the same group changed twice', () => ({ ...bases.delete1, groups: [bases.delete1.groups[0], bases.delete1.groups[0]] })),
  badDelete('a version of 15 bytes', () => deleteChange({ version: bases.delete1.groups[0].version.subarray(1) })),
  badDelete('a column ciphertext equal to 0', () =>
    deleteChange({ columns: { ...bases.delete1.groups[0].columns!, pixels: replaceAt(bases.delete1.groups[0].columns!.pixels, 0, zeros()) } }),
  ),
  badDelete('columns without the distance constant', () =>
    deleteChange({ columns: { ...bases.delete1.groups[0].columns!, distanceConstant: Buffer.alloc(0) } }),
  ),
  badDelete('an embedding one short', () =>
    deleteChange({ columns: { ...bases.delete1.groups[0].columns!, embedding: bases.delete1.groups[0].columns!.embedding.slice(1) } }),
  ),
  // Retrieve
  { name: 'Retrieve: an unknown ticket', code: Code.NOT_FOUND, run: () => retrieve(UNKNOWN_TICKET) },
  { name: 'Retrieve: an empty ticket', code: Code.NOT_FOUND, run: () => retrieve('') },
  {
    name: 'Retrieve: a ticket used twice (the 2nd time)',
    code: Code.NOT_FOUND,
    run: async () => {
      const reply = await query(main.db, paperRequest(await wireQuery(randomImage())));
      await redeem(reply); // the 1st use must succeed
      return retrieve(reply.retrievalTicket);
    },
  },
];

/** Everything a refused request must leave as it was: C1's Status and groups (versions, members), C2's replica count. */
async function stateOf(d: Deployment) {
  const { c2Reachable: _reachable, ...status } = await databaseStatus(d.db);
  const groups = [];
  for (let g = 0; g < GROUPS_SCANNED; g++) groups.push(await getGroup(d.db, g));
  return { status, groups, replicaRecords: (await keyHolderStatus(d)).replicaRecords };
}

describe('Database service: malformed input is refused with the right code and changes nothing', () => {
  beforeAll(async () => {
    // The collection as the valid tests left it: the base upload, groups re-encrypted since.
    expect(main.collection.map((c) => c.id), 'the valid tests leave the base collection').toEqual(
      Array.from({ length: COLLECTION_SIZE }, (_, i) => `patient-${i}`),
    );
    const spare = { id: 'spare', pixels: randomImage() };
    const one = await captureUpload(main, [spare]);
    const group = one.uploads[0].group!.group;
    const members = await membersOf(main, group);
    const neighbour = members.find((id) => id !== null)!;
    const two = await captureUpload(main, [{ id: neighbour, pixels: randomImage() }, spare]);
    const shaped = await captureUpload(empty, [{ id: 'spare-5x5', pixels: randomImage(25) }], { width: 5, height: 5 });
    const leanOne = await captureUpload(lean, [{ id: 'lean-spare', pixels: randomImage() }]);
    const leanPaper = await captureUpload(lean, [{ id: 'lean-spare', pixels: randomImage() }], { paperLayout: true });
    const group0 = (await membersOf(main, 0)).filter((id): id is string => id !== null);
    const delete1 = await captureDelete(main, [neighbour]);
    const deleteGroup0 = await captureDelete(main, group0);
    const delete2 = await captureDelete(main, [group0[0], neighbour]);
    bases = {
      upload: one.uploads[0],
      replica: one.replicaGroups[0],
      upload2: two.uploads[0],
      takenSlot: members.lastIndexOf(members.filter((id) => id !== null).at(-1)!),
      upload5x5: shaped.uploads[0],
      replica5x5: shaped.replicaGroups[0],
      lean: leanOne.uploads[0],
      leanPaper: leanPaper.uploads[0],
      delete1: delete1.deletes[0],
      deleteGroup0: deleteGroup0.deletes[0],
      delete2: delete2.deletes[0],
      replicaDrop: deleteGroup0.replicaGroups[0],
    };
    // The bases are what they should be, so each refusal is due to its one corruption.
    expect(bases.upload.group!.baseVersion.length, 'the spare joins a group with members').toBe(16);
    expect(bases.upload.records.length).toBe(1);
    expect(bases.replica.members.length, 'C2 is sent the members and the spare').toBeGreaterThanOrEqual(2);
    expect(bases.upload2.records.map((r) => recordKey.decryptId(r.encryptedId)), 'a replacement and the spare in one request').toEqual([
      neighbour,
      'spare',
    ]);
    expect(bases.takenSlot, 'a slot other than those of the request').not.toBe(bases.upload2.records[0].slot);
    expect(bases.upload5x5.width).toBe(5);
    expect(bases.delete1.groups.map((g) => g.columns !== undefined), 'delete1 re-encrypts a group keeping members').toEqual([true]);
    expect(bases.deleteGroup0.groups.map((g) => [g.group, g.columns]), 'deleteGroup0 empties group 0').toEqual([[0, undefined]]);
    expect(bases.replicaDrop.members, 'and drops it at C2').toEqual([]);
    expect(bases.delete2.groups.map((g) => g.group), 'delete2 touches group 0 and the spare\'s group').toEqual([0, group]);
    expect(badCases.length, 'at least as many malformed cases as before the group-wise upload').toBeGreaterThanOrEqual(85);
  });

  it.each(badCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const target = (c.target ?? (() => main))();
    const watched = target === main ? [main] : [main, target];
    const before = await Promise.all(watched.map(stateOf));
    const error = await grpcError(c.run(), name);
    expectCode(error, c.code, name);
    expect(error.details, `${name}: the refusal must say why`).not.toBe('');
    expect(error.details, `${name}: a refusal must not be an internal error`).not.toBe('internal error');
    const after = await Promise.all(watched.map(stateOf));
    watched.forEach((d, i) => {
      expect(after[i].status, `${name}: ${d.name}'s collection changed although the request was refused`).toEqual(before[i].status);
      expect(after[i].groups, `${name}: ${d.name}'s groups changed although the request was refused`).toEqual(before[i].groups);
      expect(after[i].replicaRecords, `${name}: C2's replica changed although the request was refused`).toBe(before[i].replicaRecords);
    });
    // Both replicas still agree and answer exactly.
    for (const d of watched)
      if (d.collection.length > 0) await expectExactNeighbours(randomImage(), FAST, 2, `${name}: a FAST query on ${d.name} after the refusal`, d);
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
    ['BF', BF],
  ])('still answers %s queries exactly after all the refusals', async (name, protocol) => {
    await expectExactNeighbours(randomImage(), protocol, 2, `${name} query after refusals`);
  });

  it('accepts the uncorrupted requests the malformed cases were made from', async () => {
    const spare = { id: 'spare', pixels: openSealedImage(recordKey, bases.upload.records[0].sealedImage).pixels };
    expect(await putGroup(bases.replica), 'C2 takes the captured group').toEqual({ total: BigInt(COLLECTION_SIZE + 1) });
    expect(await upload(main.db, bases.upload), 'C1 takes the captured upload').toEqual({
      stored: 1,
      replaced: 0,
      total: BigInt(COLLECTION_SIZE + 1),
    });
    remember(main, [spare]);
    try {
      const { ids } = await expectExactNeighbours(spare.pixels, FAST, 1, 'FAST self-query of the captured upload');
      expect(ids).toEqual(['spare']);
    } finally {
      forget(main, ['spare']);
      await ownerDelete(main, ['spare']);
    }
    await expectExactNeighbours(randomImage(), FAST, 2, 'FAST after the spare was deleted');
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
    messages: async () => [fastOpen('s', await depositedShare(), [{ group: 0, members: Array.from({ length: G }, (_, i) => i), digest: '00'.repeat(16) }])],
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
      grpcError(query(main.db, paperRequest(await wireQuery(randomImage(D)))), 'a query while C2 is down'),
      grpcError(query(main.db, fastBeforeRestart), 'a FAST query while C2 is down'),
    ]);
    expectCode(error, Code.UNAVAILABLE, 'a query while C2 is down');
    expect(error.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);
    expectCode(fastError, Code.UNAVAILABLE, 'a FAST query while C2 is down');
    expect(fastError.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);

    const s = await databaseStatus(main.db);
    expect(s.c2Reachable, 'Status must report C2 unreachable while it is down').toBe(false);
    expect(s.records, 'Status must still report the collection while C2 is down').toBe(BigInt(COLLECTION_SIZE));

    c2 = await startC2(c2Config(`127.0.0.1:${port}`));
    expect(portOf(c2.address), 'the new C2 must listen on the same port').toBe(port);
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FNN, 1, 'the first query after C2 restarted');
    expect((await keyHolderStatus()).replicaRecords, 'C2\'s replica must survive the restart').toBe(BigInt(COLLECTION_SIZE));
    await expectExactNeighbours(randomImage(D), wire.Protocol.PROTOCOL_FAST, 2, 'a FAST query after C2 restarted');
    const lost = await grpcError(query(main.db, { ...fastBeforeRestart }), 'a FAST query whose share was deposited before the restart');
    expectCode(lost, Code.NOT_FOUND, 'a share deposited before C2 restarted');
    expect((await databaseStatus(main.db)).c2Reachable, 'Status must report C2 reachable again').toBe(true);
  });
});
