import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect } from 'vitest';
import * as wire from '@fnn/proto';
import {
  CollectionWriter,
  encryptQuery,
  generateSymmetricKey,
  bfProtocol,
  fastProtocol,
  fnnProtocol,
  protocolModule,
  type Layout,
  type ProtocolName,
  groupPlaintexts,
  INSECURE,
  localC1Crypto,
  localC2Crypto,
  openSealedImage,
  packingParams,
  plaintextNearest,
  RecordKey,
  BLINDING_SEED_BYTES,
  RetrievalBlinding,
  residueFromBytes,
  residueToBytes,
  retrieveParts,
  shareQuery,
  silentLogger,
  WireCodec,
  type GroupOutcome,
  type Logger,
  type OwnerLink,
  type PlaintextRecord,
  type PublicKey,
  type RunningDaemon,
  type SecretKey,
} from '@fnn/shared';
import { startC2 } from '@fnn/server-c2';
// The daemons' shared test kit: the wire (calls, C1's messages by hand), then keys, images and start-up.
import { localMultiExp, rawSession, rpc, RPC_DEADLINE_MS, SessionMessages } from '@fnn/server-common/testing';
import { randomImage, started, testKeyPairs, HEIGHT, KEY_BITS, MAX_VALUE, WIDTH } from '@fnn/server-common/testing';
import { startC1 } from '../main';
import { RecordStore } from '../storage';

// What the database-service tests share: C1 and C2 as real gRPC daemons on
// 127.0.0.1:0, driven through the generated clients exactly as the owner's
// and the doctor's CLI drive them. The owner is the real CollectionWriter of
// @fnn/shared over a link to these clients (as grpcOwnerLink in
// client/src/owner-upload.ts): AllocateSlots and GetGroup (C1), then per
// group Replica.PutGroup (C2) and Upload (C1); a delete sends PutGroup (C2)
// for every group losing a member, then one Delete (C1). Fast queries go
// Status (C1) -> PutShare (C2) -> Query (C1) as in
// client/src/commands/query.ts. The link records every request it is given,
// so the malformed cases start from requests the real owner built.
//
// Every wire QueryRequest and FastQuery of these tests is built by the
// builders below ("the doctor's requests"), and every C1Message by
// SessionMessages (@fnn/server-common/testing), so a change of those messages
// is made in one place.

// This file is the daemon's one testing entry point: the shared kit, under the names its tests use.
export * from '@fnn/server-common/testing';
export const D = WIDTH * HEIGHT;
export const SHAPE = { width: WIDTH, height: HEIGHT, maxValue: MAX_VALUE };
/** Records per group at these sizes (4). */
export const G = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE).groupSize;
export const EMBEDDING = (() => {
  const p = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE);
  return 2 * p.blockRows * p.blockCols;
})();
/** Coordinates of the coarse family (PROTOCOLS.md §3.5a) at these sizes. */
export const COARSE = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE).coarse.dimension;
export const COLLECTION_SIZE = 10;
/** The first records are uploaded in one call (whole groups in one request each), the rest one by one. */
export const FIRST_BATCH = 5;
/** patient-7 is a copy of patient-2: the tie rule (upload order) decides between them. */
export const TWIN_OF = { twin: 'patient-7', original: 'patient-2' };
export const LEAN_SIZE = 6;
/** A collection for every protocol, and one for the fast protocol only (uploaded with --no-paper-layout). */
export const WITH_PAPER_LAYOUT: Layout[] = ['packed', 'paper'];
export const PACKED_ONLY: Layout[] = ['packed'];

// The protocols by their modules' names (the registry's keys and the QueryRequest oneof's cases).
export const FAST = fastProtocol.name;
export const FNN = fnnProtocol.name as 'fnn';
export const BF = bfProtocol.name as 'bf';
type PaperProtocol = typeof FNN | typeof BF;

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
/** A query of the paper's protocols is answered with a retrieval ticket; a fast one with sealed images (each protocol module's doctor side). */
export const isFast = (p: ProtocolName) => protocolModule(p).layout === 'packed';
export const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

// ----- gRPC calls as promises -----

export const upload = (db: wire.DatabaseClient, req: wire.UploadRequest) => rpc<wire.UploadReply>((m, o, cb) => db.upload(req, m, o, cb));
export const remove = (db: wire.DatabaseClient, req: wire.DeleteRequest) => rpc<wire.DeleteReply>((m, o, cb) => db.delete(req, m, o, cb));
export const query = (db: wire.DatabaseClient, req: wire.QueryRequest) => rpc<wire.QueryReply>((m, o, cb) => db.query(req, m, o, cb));
export const allocateSlots = (db: wire.DatabaseClient, lookupTags: Buffer[], shape: Partial<typeof SHAPE> = {}) =>
  rpc<wire.SlotAssignments>((m, o, cb) => db.allocateSlots({ lookupTags, ...SHAPE, ...shape }, m, o, cb));
export const getGroup = (db: wire.DatabaseClient, group: number) => rpc<wire.GroupContents>((m, o, cb) => db.getGroup({ group }, m, o, cb));
export const databaseStatus = (db: wire.DatabaseClient) => rpc<wire.DatabaseStatus>((m, o, cb) => db.status({}, m, o, cb));
export const listGroups = (db: wire.DatabaseClient) => rpc<wire.GroupList>((m, o, cb) => db.listGroups({}, m, o, cb));

/** The replies of one BatchQuery stream given these requests. */
export function batchQuery(db: wire.DatabaseClient, requests: wire.QueryRequest[]): Promise<wire.QueryReply[]> {
  return new Promise<wire.QueryReply[]>((resolve, reject) => {
    const call = db.batchQuery({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
    const got: wire.QueryReply[] = [];
    call.on('data', (r: wire.QueryReply) => got.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(got));
    for (const r of requests) call.write(r);
    call.end();
  });
}

/** The call must fail; returns its gRPC error. */
export async function grpcError(call: Promise<unknown>, what: string): Promise<ServiceError> {
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

// ----- the doctor's requests (the only places a QueryRequest, EncryptedQuery or FastQuery is built) -----

// ----- the doctor's replies -----

/** A BatchQuery reply's failure (code and message), if it is one. */
export const failureOf = (reply: wire.QueryReply) => (reply.answer?.$case === 'failure' ? reply.answer.value : undefined);
/** The protocol that answered (the reply's oneof case). */
export const protocolOf = (reply: wire.QueryReply) => reply.answer?.$case;
/** Neighbours in the reply, whatever the protocol. */
export const neighbourCount = (reply: wire.QueryReply) =>
  reply.answer && reply.answer.$case !== 'failure' ? reply.answer.value.neighbours.length : 0;
/** Records searched, and those the bound rejected (0 for a protocol without a bound). */
export const totalOf = (reply: wire.QueryReply) => reply.stats?.total ?? 0n;
export const rejectedOf = (reply: wire.QueryReply) => reply.stats?.bound?.rejected ?? 0n;

/** The shared header of every query: C1's key and the image size the query claims. */
export const queryHeader = (keyFingerprint: string, width = WIDTH, height = HEIGHT): wire.QueryHeader => ({
  keyFingerprint,
  width,
  height,
});

/** The paper's encrypted query (from Fixture.wireQuery) with the header it travels under. */
export interface PaperQueryParts {
  header: wire.QueryHeader;
  query: wire.PaperQuery;
}

/** A query of the paper's protocols as C1 runs it; `undefined`: a request with neither header nor query. */
export const paperRequest = (q: PaperQueryParts | undefined, protocol: PaperProtocol = FNN, k = 1): wire.QueryRequest => ({
  tag: 'test',
  k,
  header: q?.header,
  protocol: q ? { $case: protocol, value: q.query } : undefined,
});

/** A fast query's request from its parts: the header, C1's share, the constants and C2's ticket. */
const fastQueryRequest = (keyFingerprint: string, k: number, fast: wire.FastQuery): wire.QueryRequest => ({
  tag: 'test',
  k,
  header: queryHeader(keyFingerprint),
  protocol: { $case: 'fast', value: fast },
});

export const withTag = (req: wire.QueryRequest, tag: string): wire.QueryRequest => ({ ...req, tag });
type Change<T> = Partial<T> | ((current: T) => Partial<T>);
const changed = <T>(current: T, over: Change<T>): T => ({ ...current, ...(typeof over === 'function' ? over(current) : over) });

/** The FastQuery of a fast request. */
const fastPart = (req: wire.QueryRequest): wire.FastQuery => {
  if (req.protocol?.$case !== 'fast') throw new Error('not a fast query');
  return req.protocol.value;
};

/** A fast query with some fields of its fast part changed (given, or computed from the valid ones). */
export const withFast = (req: wire.QueryRequest, over: Change<wire.FastQuery>): wire.QueryRequest => ({
  ...req,
  protocol: { $case: 'fast', value: changed(fastPart(req), over) },
});
/** A paper query with some fields of its encrypted query changed (given, or computed from the valid ones). */
export const withPaperQuery = (req: wire.QueryRequest, over: Change<wire.PaperQuery>): wire.QueryRequest => {
  const part = req.protocol;
  if (part?.$case !== 'fnn' && part?.$case !== 'bf') throw new Error('not a paper query');
  return { ...req, protocol: { $case: part.$case, value: changed(part.value, over) } };
};
/** The ticket of a fast query's share at C2. */
export const shareTicketOf = (req: wire.QueryRequest): string => fastPart(req).shareTicket;
/** The query claims another key (any protocol: the header is shared). */
export const withKeyFingerprint = (req: wire.QueryRequest, keyFingerprint: string): wire.QueryRequest => ({
  ...req,
  header: { ...req.header!, keyFingerprint },
});
/** The query claims another image size (any protocol). */
export const withClaimedShape = (req: wire.QueryRequest, width: number, height: number): wire.QueryRequest => ({
  ...req,
  header: { ...req.header!, width, height },
});
/** A query whose oneof names no protocol (the header alone). */
export const withoutProtocol = (req: wire.QueryRequest): wire.QueryRequest => ({ ...req, protocol: undefined });
/** A query without its shared header (shape and key). */
export const withoutQueryHeader = (req: wire.QueryRequest): wire.QueryRequest => ({ ...req, header: undefined });

// ----- the owner -----

/** The writes the owner's link was given, in order, and C1's replies to those it sent. */
export interface Sent {
  uploads: wire.UploadRequest[];
  uploadReplies: wire.UploadReply[];
  deletes: wire.DeleteRequest[];
  deleteReplies: wire.DeleteReply[];
  replicaGroups: wire.ReplicaGroup[];
  replicaReplies: wire.ReplicaReply[];
  /** Replica.CommitGroup after each change C1 took. */
  commits: wire.CommitGroupRequest[];
}

export interface OwnerOptions {
  /** Send to C1 and to C2 (default both); neither: only capture the requests. */
  c1?: boolean;
  c2?: boolean;
  /** What to upload; default: the deployment's. */
  layouts?: Layout[];
  width?: number;
  height?: number;
}

/** One C1 with its C2 (clients), and the plaintext collection C1 should hold, in upload order (C1's seq). */
export interface Deployment {
  name: string;
  db: wire.DatabaseClient;
  retrieval: wire.RetrievalClient;
  replica: wire.ReplicaClient;
  /** What its collection stores: WITH_PAPER_LAYOUT, or PACKED_ONLY ("lean": fast queries only). */
  layouts: Layout[];
  collection: PlaintextRecord[];
}

/** Keep the plaintext collection in step with C1: new records go last (upload order), replaced ones keep their place. */
export function remember(d: Deployment, records: PlaintextRecord[]): void {
  for (const r of records) {
    const at = d.collection.findIndex((c) => c.id === r.id);
    if (at >= 0) d.collection[at] = r;
    else d.collection.push(r);
  }
}
export function forget(d: Deployment, ids: string[]): void {
  d.collection = d.collection.filter((c) => !ids.includes(c.id));
}

export interface FixtureOptions {
  /** A second C1 (same C2) whose collection stays empty. */
  empty?: boolean;
  /** A pair on fresh databases, uploaded without the paper's layout (LEAN_SIZE records). */
  lean?: boolean;
  /** Main C1's wait for the next part of an upload in parts (default: the daemon's). */
  uploadPartIdleMs?: number;
}

/**
 * The keys and the deployments of one test file: `main` (C1 and C2) holding
 * the base collection of COLLECTION_SIZE records, uploaded as FIRST_BATCH in
 * one call and the rest one by one (`baseBatch`, `baseSingles`: what was sent),
 * and on request `empty` and `lean`.
 */
/**
 * A test file's one fixture: started before its tests, stopped after them.
 * `onStarted` receives it (tests read it from their own variable).
 */
export function useFixture(options: FixtureOptions, onStarted: (f: Fixture) => void): void {
  let f: Fixture | undefined;
  beforeAll(async () => {
    f = await startFixture(options);
    onStarted(f);
  });
  afterAll(async () => {
    await f?.stop();
  });
}

export async function startFixture(options: FixtureOptions = {}): Promise<Fixture> {
  const { c2, c1 } = await testKeyPairs();
  return started(new Fixture(c2.publicKey, c2.secretKey, c1.publicKey, c1.secretKey), (f) => f.start(options));
}

export class Fixture {
  readonly recordKey = new RecordKey(generateSymmetricKey());
  readonly codec: WireCodec;
  /** The C1 messages these tests send C2 by hand. */
  readonly messages: SessionMessages;
  readonly root = mkdtempSync(join(tmpdir(), 'fnn-db-service-test-'));
  c2!: RunningDaemon;
  c1!: RunningDaemon;
  secure!: wire.SecureComputationClient;
  main!: Deployment;
  /** What the base upload sent: the first batch in one writer call, then each later record alone. */
  baseBatch!: Sent;
  readonly baseSingles: Sent[] = [];
  private daemons: { c1: RunningDaemon[]; c2: RunningDaemon[] } = { c1: [], c2: [] };
  private extra: { empty?: Deployment; lean?: Deployment } = {};
  private readonly clients: { close(): void }[] = [];

  constructor(
    /** C2's key: the collection's key, everything at C1 is under it. */
    readonly pk: PublicKey,
    readonly sk: SecretKey,
    /** C1's key: C2's replica is under it. */
    readonly pk1: PublicKey,
    readonly sk1: SecretKey,
  ) {
    this.codec = new WireCodec(pk.cipherBytes);
    this.messages = new SessionMessages(pk, pk1, this.codec);
  }

  get empty(): Deployment {
    if (!this.extra.empty) throw new Error('this fixture was started without the empty C1');
    return this.extra.empty;
  }

  get lean(): Deployment {
    if (!this.extra.lean) throw new Error('this fixture was started without the lean pair');
    return this.extra.lean;
  }

  async start(options: FixtureOptions): Promise<void> {
    this.c2 = await startC2(this.c2Config('127.0.0.1:0'));
    this.c1 = await this.startedC1(this.c2.address, 'c1.db', { uploadPartIdleMs: options.uploadPartIdleMs });
    this.main = this.deployment('main', this.c1.address, this.c2.address, WITH_PAPER_LAYOUT);
    this.secure = new wire.SecureComputationClient(this.c2.address, credentials.createInsecure());
    this.clients.push(this.secure);
    if (options.empty)
      this.extra.empty = this.deployment(
        'empty',
        (await this.startedC1(this.c2.address, 'c1-empty.db')).address,
        this.c2.address,
        WITH_PAPER_LAYOUT,
      );

    const images = Array.from({ length: COLLECTION_SIZE }, (_, i) => ({ id: `patient-${i}`, pixels: randomImage() }));
    images.find((r) => r.id === TWIN_OF.twin)!.pixels = Uint16Array.from(images.find((r) => r.id === TWIN_OF.original)!.pixels);
    // The first records in one call (whole groups per request), then one by one (each joins a partly filled group or starts one).
    this.baseBatch = (await this.ownerUpload(this.main, images.slice(0, FIRST_BATCH))).sent;
    remember(this.main, images.slice(0, FIRST_BATCH));
    for (const r of images.slice(FIRST_BATCH)) {
      this.baseSingles.push((await this.ownerUpload(this.main, [r])).sent);
      remember(this.main, [r]);
    }

    if (options.lean) {
      const c2Lean = await startC2(this.c2Config('127.0.0.1:0', 'c2-lean.db'));
      this.daemons.c2.push(c2Lean);
      const c1Lean = await this.startedC1(c2Lean.address, 'c1-lean.db');
      const lean = (this.extra.lean = this.deployment('lean', c1Lean.address, c2Lean.address, PACKED_ONLY));
      const leanImages = Array.from({ length: LEAN_SIZE }, (_, i) => ({ id: `lean-${i}`, pixels: randomImage() }));
      await this.ownerUpload(lean, leanImages);
      remember(lean, leanImages);
    }
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.close();
    await Promise.all(this.daemons.c1.map((d) => d.stop()));
    await Promise.all([this.c2?.stop(), ...this.daemons.c2.map((d) => d.stop())]);
    rmSync(this.root, { recursive: true, force: true });
  }

  c2Config(listen: string, file = 'c2.db') {
    return {
      listen,
      dbPath: join(this.root, file),
      crypto: localC2Crypto(this.sk),
      fast: { sk2: this.sk, pk1: this.pk1, multiExp: localMultiExp },
      log: silentLogger,
      transport: INSECURE,
    };
  }

  private c1Config(c2Address: string, file: string) {
    return {
      listen: '127.0.0.1:0',
      c2Address,
      dbPath: join(this.root, file),
      crypto: localC1Crypto(this.pk),
      fast: { pk2: this.pk, sk1: this.sk1, multiExp: localMultiExp },
      log: silentLogger,
      transport: INSECURE,
    };
  }

  private async startedC1(
    c2Address: string,
    file: string,
    over: { log?: Logger; store?: RecordStore; uploadPartIdleMs?: number } = {},
  ): Promise<RunningDaemon> {
    const c1 = await startC1({ ...this.c1Config(c2Address, file), ...over });
    this.daemons.c1.push(c1);
    return c1;
  }

  /**
   * A pair of its own (C1 and C2 on fresh databases, nothing uploaded) whose
   * C1 database holds at most `maxPages` pages (a full disk on purpose) and
   * logs to `log`; `store` is C1's, `dbPath` its file.
   */
  async startSmallPair(name: string, maxPages: number, log: Logger): Promise<Deployment & { store: RecordStore; dbPath: string }> {
    return this.startPair(name, log, maxPages);
  }

  /**
   * A pair of its own (C1 and C2 on fresh databases, nothing uploaded), C1
   * logging to `log`, its database capped at `maxPages` pages if given; `store`
   * is C1's (the one C1 reads), `dbPath` its file, `c2Path` C2's replica file.
   */
  async startPair(
    name: string,
    log: Logger,
    maxPages?: number,
  ): Promise<Deployment & { store: RecordStore; dbPath: string; c2Path: string }> {
    const c2Config = this.c2Config('127.0.0.1:0', `c2-${name}.db`);
    const c2 = await startC2(c2Config);
    this.daemons.c2.push(c2);
    const dbPath = join(this.root, `c1-${name}.db`);
    const store = new RecordStore(dbPath, this.pk);
    if (maxPages !== undefined) store.limitPages(maxPages);
    const c1 = await this.startedC1(c2.address, `c1-${name}.db`, { log, store });
    return { ...this.deployment(name, c1.address, c2.address, WITH_PAPER_LAYOUT), store, dbPath, c2Path: c2Config.dbPath };
  }

  private deployment(name: string, c1Address: string, c2Address: string, layouts: Layout[]): Deployment {
    const d = {
      name,
      db: new wire.DatabaseClient(c1Address, credentials.createInsecure()),
      retrieval: new wire.RetrievalClient(c2Address, credentials.createInsecure()),
      replica: new wire.ReplicaClient(c2Address, credentials.createInsecure()),
      layouts,
      collection: [],
    };
    this.clients.push(d.db, d.retrieval, d.replica);
    return d;
  }

  readonly underPk2 = async (values: bigint[]) => values.map((v) => this.pk.encrypt(v));
  readonly underPk1 = async (values: bigint[]) => values.map((v) => this.pk1.encrypt(v));
  readonly tagOf = (id: string) => this.recordKey.lookupTag(id);

  record(d: Deployment, id: string): PlaintextRecord {
    const r = d.collection.find((c) => c.id === id);
    if (!r) throw new Error(`${id} is not in ${d.name}'s collection`);
    return r;
  }

  /** The plaintext record whose lookup tag this is. */
  byTag(d: Deployment, tag: Uint8Array): PlaintextRecord {
    const r = d.collection.find((c) => this.tagOf(c.id).equals(tag));
    if (!r) throw new Error(`no record of ${d.name} has the tag ${hex(tag)}`);
    return r;
  }

  /** The ids of a group's members by slot, as C1 holds them now. */
  async membersOf(d: Deployment, group: number): Promise<(string | null)[]> {
    const { members } = await getGroup(d.db, group);
    const ids: (string | null)[] = new Array(G).fill(null);
    for (const m of members) ids[m.slot] = this.byTag(d, m.lookupTag).id;
    return ids;
  }

  // ----- C2's services -----

  /** C2's Retrieve: every part of m + r, concatenated (the results' values, nearest first). */
  async retrieve(ticket: string, d = this.main): Promise<Uint8Array[]> {
    const values: Uint8Array[] = [];
    for await (const part of retrieveParts(d.retrieval, ticket, new Date(Date.now() + RPC_DEADLINE_MS))) values.push(...part);
    return values;
  }
  putShare(share: wire.QueryShare, d = this.main) {
    return rpc<wire.ShareTicket>((m, o, cb) => d.retrieval.putShare(share, m, o, cb));
  }
  keyHolderStatus(d = this.main) {
    return rpc<wire.KeyHolderStatus>((m, o, cb) => d.retrieval.status({}, m, o, cb));
  }
  putGroup(req: wire.ReplicaGroup, d = this.main) {
    return rpc<wire.ReplicaReply>((m, o, cb) => d.replica.putGroup(req, m, o, cb));
  }
  commitGroup(req: wire.CommitGroupRequest, d = this.main) {
    return rpc<wire.CommitGroupReply>((m, o, cb) => d.replica.commitGroup(req, m, o, cb));
  }
  replicaGroups(d = this.main) {
    return rpc<wire.GroupList>((m, o, cb) => d.replica.listGroups({}, m, o, cb));
  }

  // ----- the owner: the real CollectionWriter over the test's clients -----

  /**
   * The owner's link to a deployment, as grpcOwnerLink: reads always go to C1;
   * every write is recorded, and sent only to the servers in `send` (a write
   * not sent gets a made-up reply). With neither, it captures valid requests.
   */
  ownerLink(d: Deployment, send: { c1: boolean; c2: boolean }): OwnerLink & { sent: Sent } {
    const sent: Sent = {
      uploads: [],
      uploadReplies: [],
      deletes: [],
      deleteReplies: [],
      replicaGroups: [],
      replicaReplies: [],
      commits: [],
    };
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
        const reply = await this.putGroup(req, d);
        sent.replicaReplies.push(reply);
        return reply;
      },
      commitReplicaGroup: async (req) => {
        sent.commits.push(req);
        if (!send.c2) return { agrees: true, total: 0n };
        return this.commitGroup(req, d);
      },
      listGroups: () => listGroups(d.db),
      listReplicaGroups: () => this.replicaGroups(d),
    };
  }

  writerOver(link: OwnerLink, layouts: Layout[]): CollectionWriter {
    return new CollectionWriter(
      link,
      { pk2: this.pk, pk1: this.pk1, recordKey: this.recordKey },
      { underPk2: this.underPk2, underPk1: this.underPk1 },
      layouts,
    );
  }

  /** The owner uploads records (one writer call); any group that fails fails the call. */
  async ownerUpload(d: Deployment, records: PlaintextRecord[], options: OwnerOptions = {}) {
    const link = this.ownerLink(d, { c1: options.c1 ?? true, c2: options.c2 ?? true });
    const outcomes: GroupOutcome[] = [];
    const image = (pixels: Uint16Array) => ({
      width: options.width ?? WIDTH,
      height: options.height ?? HEIGHT,
      maxValue: MAX_VALUE,
      pixels,
    });
    await this.writerOver(link, options.layouts ?? d.layouts).upload(
      records.map((r) => ({ id: r.id, image: image(r.pixels) })),
      (o) => outcomes.push(o),
    );
    for (const o of outcomes) if (!o.ok) throw o.error;
    return { outcomes, sent: link.sent };
  }

  /** The owner deletes records by ID (one writer call). */
  async ownerDelete(d: Deployment, ids: string[], options: OwnerOptions = {}) {
    const link = this.ownerLink(d, { c1: options.c1 ?? true, c2: options.c2 ?? true });
    const reply = await this.writerOver(link, d.layouts).delete(ids);
    return { reply, sent: link.sent };
  }

  /** Only the requests the owner would send (nothing is sent). */
  async captureUpload(d: Deployment, records: PlaintextRecord[], options: OwnerOptions = {}): Promise<Sent> {
    return (await this.ownerUpload(d, records, { ...options, c1: false, c2: false })).sent;
  }
  async captureDelete(d: Deployment, ids: string[]): Promise<Sent> {
    return (await this.ownerDelete(d, ids, { c1: false, c2: false })).sent;
  }

  /** A group change as the owner sends it to C1: a fresh 16-byte version and full columns under C2's key with the constants. */
  expectC1Change(change: wire.GroupChange | undefined, what: string): void {
    expect(change, `${what}: the upload names its group change`).toBeDefined();
    expect(change!.version.length, `${what}: a 16-byte version`).toBe(16);
    expect(change!.columns?.distance.length, `${what}: one packed ciphertext per pixel`).toBe(D);
    expect(change!.columns?.bound.length, `${what}: one packed ciphertext per embedding coordinate`).toBe(EMBEDDING);
    expect(change!.columns?.distanceConstant.length, `${what}: C1's columns carry the distance constant`).toBe(this.pk.cipherBytes);
    expect(change!.columns?.boundConstant.length, `${what}: C1's columns carry the bound constant`).toBe(this.pk.cipherBytes);
    expect(change!.columns?.coarse.length, `${what}: one packed ciphertext per coarse coordinate`).toBe(COARSE);
    expect(change!.columns?.coarseConstant.length, `${what}: C1's columns carry the coarse constant`).toBe(this.pk.cipherBytes);
  }

  /** C2's side of the same change: same group and version, columns under C1's key without constants, all members after the change. */
  expectReplicaOf(r: wire.ReplicaGroup, change: wire.GroupChange, memberIds: (string | null)[], what: string, d = this.main): void {
    const { pk, pk1, sk, sk1, codec } = this;
    expect(r.keyFingerprint, `${what}: the replica names C2's key`).toBe(pk.fingerprint());
    expect(r.pk1Fingerprint, `${what}: and C1's, under which it is encrypted`).toBe(pk1.fingerprint());
    expect([r.width, r.height, r.maxValue], `${what}: the replica's shape`).toEqual([WIDTH, HEIGHT, MAX_VALUE]);
    expect(r.group!.group, `${what}: the same group at C1 and C2`).toBe(change.group);
    expect(hex(r.group!.version), `${what}: the same version at C1 and C2`).toBe(hex(change.version));
    expect(hex(r.group!.baseVersion), `${what}: the same base version at C1 and C2`).toBe(hex(change.baseVersion));
    expect(
      r.members.map((m) => [m.slot, hex(m.lookupTag)]),
      `${what}: C2 is sent every member of the group after the change`,
    ).toEqual(memberIds.flatMap((id, slot) => (id === null ? [] : [[slot, hex(this.tagOf(id))]])));
    if (change.columns) {
      expect(r.group!.columns?.distance.length, `${what}: C2's columns, one per pixel`).toBe(D);
      expect(r.group!.columns?.bound.length, `${what}: C2's columns, one per embedding coordinate`).toBe(EMBEDDING);
      expect(r.group!.columns?.coarse.length, `${what}: C2's columns, one per coarse coordinate`).toBe(COARSE);
      expect(r.group!.columns?.coarseConstant.length, `${what}: C2's columns carry no coarse constant`).toBe(0);
      expect(r.group!.columns?.distanceConstant.length, `${what}: C2's columns carry no constants`).toBe(0);
      // Both are encryptions of the group's packed plaintexts over all its members after the change.
      const plain = groupPlaintexts(
        memberIds.map((id) => (id === null ? null : this.record(d, id).pixels)),
        packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE),
      );
      const c1Side = change.columns;
      const c2Side = r.group!.columns!;
      expect(
        c1Side.distance.map((c) => sk.decrypt(codec.fromCipher(c))),
        `${what}: C1's pixel columns`,
      ).toEqual(plain.pixels);
      expect(
        c1Side.bound.map((c) => sk.decrypt(codec.fromCipher(c))),
        `${what}: C1's embedding columns`,
      ).toEqual(plain.embedding);
      expect(
        [c1Side.distanceConstant, c1Side.boundConstant, c1Side.coarseConstant].map((c) => sk.decrypt(codec.fromCipher(c))),
        `${what}: C1's constants`,
      ).toEqual([plain.distanceConstant, plain.boundConstant, plain.coarseConstant]);
      expect(
        c1Side.coarse.map((c) => sk.decrypt(codec.fromCipher(c))),
        `${what}: C1's coarse columns`,
      ).toEqual(plain.coarseEmbedding);
      expect(
        c2Side.distance.map((c) => sk1.decrypt(codec.fromCipher(c))),
        `${what}: C2's pixel columns, under C1's key`,
      ).toEqual(plain.pixels);
      expect(
        c2Side.bound.map((c) => sk1.decrypt(codec.fromCipher(c))),
        `${what}: C2's embedding columns`,
      ).toEqual(plain.embedding);
      expect(
        c2Side.coarse.map((c) => sk1.decrypt(codec.fromCipher(c))),
        `${what}: C2's coarse columns`,
      ).toEqual(plain.coarseEmbedding);
    } else expect(r.group!.columns, `${what}: an emptied group has no columns at C2 either`).toBeUndefined();
  }

  // ----- the doctor, as client/src/commands/query.ts -----

  /** The doctor's encrypted query of the paper's protocols, for an image of this size. */
  async wireQuery(pixels: Uint16Array, width = WIDTH, height = HEIGHT): Promise<PaperQueryParts> {
    return {
      header: queryHeader(this.pk.fingerprint(), width, height),
      query: this.codec.paperQueryToWire(await encryptQuery(this.underPk2, pixels)),
    };
  }

  /** A paper query's whole request for this image. */
  async paperQuery(pixels: Uint16Array, protocol: PaperProtocol = FNN, k = 1): Promise<wire.QueryRequest> {
    return paperRequest(await this.wireQuery(pixels), protocol, k);
  }

  /**
   * A fast query as the doctor builds it: the packing from C1's Status, the
   * query split into shares, v deposited at C2 (PutShare), u and the ticket to C1.
   */
  async fastRequest(
    pixels: Uint16Array,
    options: { k?: number; c2Share?: (s: wire.QueryShare) => wire.QueryShare; to?: Deployment } = {},
  ): Promise<wire.QueryRequest> {
    const d = options.to ?? this.main;
    const status = await databaseStatus(d.db);
    expect(status.keyFingerprint, "C1 must hold the collection under the doctor's key").toBe(this.pk.fingerprint());
    const params = packingParams(status.keyBits, status.width, status.height, status.maxValue);
    const shares = await shareQuery(pixels, params, this.underPk2);
    const forC2 = {
      distance: shares.forC2.distance.map(residueToBytes),
      bound: shares.forC2.bound.map(residueToBytes),
      coarse: shares.forC2.coarse.map(residueToBytes),
    };
    const { ticket } = await this.putShare(options.c2Share ? options.c2Share(forC2) : forC2, d);
    return fastQueryRequest(this.pk.fingerprint(), options.k ?? 1, {
      distanceShare: shares.forC1.shares.distance.map(residueToBytes),
      boundShare: shares.forC1.shares.bound.map(residueToBytes),
      distanceConstant: this.codec.cipher(shares.forC1.distanceConstant),
      boundConstant: this.codec.cipher(shares.forC1.boundConstant),
      coarseShare: shares.forC1.shares.coarse.map(residueToBytes),
      coarseConstant: this.codec.cipher(shares.forC1.coarseConstant),
      shareTicket: ticket,
    });
  }

  /** The request for this image under either protocol, as the doctor builds it. */
  async requestFor(pixels: Uint16Array, protocol: ProtocolName, k: number, d = this.main): Promise<wire.QueryRequest> {
    return protocol === FNN || protocol === BF ? this.paperQuery(pixels, protocol, k) : this.fastRequest(pixels, { k, to: d });
  }

  /**
   * The doctor's whole step 7 of the paper protocols: decrypt each E_k(ID), fetch
   * m + r from C2 with the ticket, subtract C1's r (expanded from its seed) mod N;
   * returns the ids and the exact pixels.
   */
  async redeem(reply: wire.QueryReply, d = this.main): Promise<{ id: string; pixels: bigint[] }[]> {
    const n = this.pk.n;
    const answer = reply.answer;
    if (answer?.$case !== 'fnn' && answer?.$case !== 'bf') throw new Error(`a paper query answered as ${answer?.$case}`);
    const fetched = await this.retrieve(answer.value.retrievalTicket, d);
    expect(fetched.length, `C2 must hold ${D} blinded values per result`).toBe(answer.value.neighbours.length * D);
    return answer.value.neighbours.map((result, i) => {
      const blinded = fetched.slice(i * D, (i + 1) * D);
      expect(result.blindingSeed.length, `C1's blinding seed ${i} must have ${BLINDING_SEED_BYTES} bytes`).toBe(BLINDING_SEED_BYTES);
      const r = new RetrievalBlinding(result.blindingSeed, n).next(D);
      const pixels = blinded.map((v, j) => {
        const m = (residueFromBytes(v) - r[j]) % n;
        return m < 0n ? m + n : m;
      });
      return { id: this.recordKey.decryptId(result.encryptedId), pixels };
    });
  }

  /** The fast protocol's results: E_k(ID) and the sealed image, opened with k; nothing to fetch from C2. */
  openResults(reply: wire.QueryReply): { id: string; pixels: bigint[] }[] {
    const answer = reply.answer;
    // The fast answer has no retrieval ticket and no blinding: the wire cannot carry them (FastAnswer).
    if (answer?.$case !== 'fast') throw new Error(`a fast query answered as ${answer?.$case}`);
    return answer.value.neighbours.map((result, i) => {
      const image = openSealedImage(this.recordKey, result.sealedImage);
      expect([image.width, image.height, image.maxValue], `sealed image ${i} must be the collection's shape`).toEqual([
        WIDTH,
        HEIGHT,
        MAX_VALUE,
      ]);
      return { id: this.recordKey.decryptId(result.encryptedId), pixels: Array.from(image.pixels, BigInt) };
    });
  }

  /** Asks C1 for the k nearest of `pixels` and checks ids and returned images against the plaintext reference. */
  async expectExactNeighbours(pixels: Uint16Array, protocol: ProtocolName, k: number, what: string, d = this.main) {
    const reply = await query(d.db, await this.requestFor(pixels, protocol, k, d));
    const expected = plaintextNearest(d.collection, pixels, Math.max(k, 1));
    expect(reply.tag, `${what}: the query tag must be echoed`).toBe('test');
    const stats = reply.stats!;
    expect(stats.total, `${what}: every record must be searched`).toBe(BigInt(d.collection.length));
    expect((stats.bound?.rejected ?? 0n) <= stats.total, `${what}: more records rejected than searched`).toBe(true);
    expect(stats.bound === undefined, `${what}: a bound stage is reported exactly when the protocol has one`).toBe(
      !protocolModule(protocol).bounded,
    );
    expect(
      stats.levels.map((l) => l.level),
      `${what}: the fast protocol reports its stages (coarse, fine, distance), the others none`,
    ).toEqual(isFast(protocol) ? ['coarse', 'fine', 'distance'] : []);
    if (isFast(protocol)) {
      const distance = stats.levels[2];
      expect(stats.bound!.rejected, `${what}: the records rejected are those whose distances were not computed`).toBe(
        stats.total - distance.recordsVisited,
      );
    }
    expect(reply.answer?.$case, `${what}: the reply must name the protocol that ran`).toBe(protocol);
    const got = isFast(protocol) ? this.openResults(reply) : await this.redeem(reply, d);
    expect(
      got.map((g) => g.id),
      `${what}: the neighbours (nearest first) differ from the plaintext reference`,
    ).toEqual(expected.map((e) => e.id));
    for (const g of got) {
      const stored = this.record(d, g.id);
      expect(g.pixels, `${what}: returned pixels of ${g.id} differ from the stored image`).toEqual(Array.from(stored.pixels, BigInt));
    }
    return { reply, ids: got.map((g) => g.id) };
  }

  /** Opens a raw SecureComputation session as a (misbehaving) C1 would. */
  rawSession(messages: wire.C1Message[]) {
    return rawSession(this.secure, messages);
  }
}
