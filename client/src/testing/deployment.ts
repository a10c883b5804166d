import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  CollectionWriter,
  encodePng,
  MESSAGE_SIZE_OPTIONS,
  openSealedImage,
  type GroupOutcome,
  type Layout,
  type OwnerLink,
  type PublicKey,
  type RecordKey,
  type SecretKey,
} from '@fnn/shared';
import { CLI, jsonLines, runCli, startDaemon, type Daemon } from '../harness';
import { loadC1PublicKey, loadC1SecretKey, loadPublicKey, loadRecordKey, loadSecretKey } from '../key-files';

// A deployment for the reliability tests (malformed input, faults, load): the
// real `fnn` daemons started through the harness, the keys they use, and gRPC
// clients that talk to them the way any program on the network could. Every
// connection is made here, so a change in how daemons are reached (TLS) is
// one change for all of those tests. They run in plaintext: daemons and CLI
// commands get --insecure (no TLS, no role checks); the TLS tests are
// client/src/tls.test.ts and client/src/cli.e2e.test.ts.

export interface Keys {
  dir: string;
  pk: PublicKey; // C2's key: everything at C1 is under it
  sk: SecretKey;
  pk1: PublicKey; // C1's key: C2's replica is under it
  sk1: SecretKey;
  recordKey: RecordKey;
}

/** `fnn keygen` into dir, then the keys as the daemons will read them. */
export async function makeKeys(dir: string, bits = 512): Promise<Keys> {
  const run = await runCli(['keygen', '--out', dir, '--bits', String(bits), '--json']);
  if (run.code !== 0) throw new Error(`fnn keygen failed: ${run.stderr}`);
  // Each key as the party that holds it reads it from the keygen output.
  const pk = loadPublicKey(dir, 'owner');
  const pk1 = loadC1PublicKey(dir, 'owner');
  return { dir, pk, sk: loadSecretKey(dir, 'c2', pk), pk1, sk1: loadC1SecretKey(dir, 'c1', pk1), recordKey: loadRecordKey(dir, 'owner') };
}

/** What C1 holds by its own file (read-only, C1 dead or alive): ID and image of every record, in upload order. */
export function heldByC1(c1Db: string, keys: Keys): { id: string; pixels: Uint16Array }[] {
  const db = new Database(c1Db, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT encrypted_id, sealed_image FROM records ORDER BY seq').all() as {
      encrypted_id: Buffer;
      sealed_image: Buffer;
    }[];
    return rows.map((r) => ({
      id: keys.recordKey.decryptId(r.encrypted_id),
      pixels: openSealedImage(keys.recordKey, r.sealed_image).pixels,
    }));
  } finally {
    db.close();
  }
}

/** The flag every daemon and CLI run of these tests carries: plaintext, no certificates, no role checks. */
export const INSECURE = '--insecure';

export const startC2 = (keys: Keys, db: string, listen = '127.0.0.1:0', env: NodeJS.ProcessEnv = {}) =>
  startDaemon('c2', ['--listen', listen, '--keys', keys.dir, '--db', db, INSECURE], env);

export const startC1 = (keys: Keys, db: string, c2: string, listen = '127.0.0.1:0', env: NodeJS.ProcessEnv = {}) =>
  startDaemon('c1', ['--listen', listen, '--keys', keys.dir, '--c2', c2, '--db', db, INSECURE], env);

/** The generated clients of both daemons and a generic client of each (for raw bytes). */
export function connect(c1: string, c2: string) {
  const creds = () => credentials.createInsecure();
  const o = MESSAGE_SIZE_OPTIONS;
  const clients = {
    db: new wire.DatabaseClient(c1, creds(), o),
    retrieval: new wire.RetrievalClient(c2, creds(), o),
    replica: new wire.ReplicaClient(c2, creds(), o),
    secure: new wire.SecureComputationClient(c2, creds(), o),
    // Generic clients with gRPC's default limits: no limit on what they send.
    rawC1: new Client(c1, creds()),
    rawC2: new Client(c2, creds()),
  };
  return {
    ...clients,
    close: () => Object.values(clients).forEach((c) => c.close()),
  };
}
export type Connections = ReturnType<typeof connect>;

// ----- calls as promises -----

type Callback<Res> = (error: ServiceError | null, reply: Res) => void;
export const DEADLINE_MS = 60_000;

export function rpc<Res>(
  invoke: (metadata: Metadata, options: { deadline: Date }, cb: Callback<Res>) => unknown,
  deadlineMs = DEADLINE_MS,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    invoke(new Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (error, reply) => (error ? reject(error) : resolve(reply))),
  );
}

const identity = (b: Buffer) => b;

/** Any bytes as the request of a unary method (path such as /fnn.v1.Database/Upload); the reply's bytes. */
export function rawUnary(client: Client, path: string, bytes: Buffer): Promise<Buffer> {
  return rpc<Buffer>((m, o, cb) => client.makeUnaryRequest(path, identity, identity, bytes, m, o, (e, r) => cb(e, r!)));
}

/** Any bytes as the messages of a bidirectional stream; resolves with the replies and the final error, if any. */
export function rawStream(client: Client, path: string, messages: Buffer[]): Promise<{ replies: Buffer[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, identity, identity, new Metadata(), { deadline: new Date(Date.now() + DEADLINE_MS) });
    const replies: Buffer[] = [];
    call.on('data', (b: Buffer) => replies.push(b));
    call.on('error', (error: ServiceError) => resolve({ replies, error }));
    call.on('status', (s) => {
      if (s.code === 0) resolve({ replies });
    });
    for (const m of messages) call.write(m);
    call.end();
  });
}

/** The call must fail; its gRPC error. */
export async function grpcError(call: Promise<unknown>, what: string): Promise<ServiceError> {
  let reply: unknown;
  try {
    reply = await call;
  } catch (e) {
    if (typeof (e as ServiceError).code !== 'number') throw new Error(`${what}: expected a gRPC error, got ${String(e)}`);
    return e as ServiceError;
  }
  const shown = JSON.stringify(reply, (_k, v) => (typeof v === 'bigint' ? String(v) : Buffer.isBuffer(v) ? `<${v.length} bytes>` : v));
  throw new Error(`${what} succeeded (${shown}) but must fail`);
}

// ----- what the daemons hold -----

export interface Counts {
  c1Records: bigint;
  c1Width: number;
  c1Height: number;
  c1MaxValue: number;
  c2Replica: bigint;
}

/** Both daemons' Status: each throws if the daemon does not answer. */
export async function counts(conn: Connections): Promise<Counts> {
  const [s, k] = await Promise.all([
    rpc<wire.DatabaseStatus>((m, o, cb) => conn.db.status({}, m, o, cb), 10_000),
    rpc<wire.KeyHolderStatus>((m, o, cb) => conn.retrieval.status({}, m, o, cb), 10_000),
  ]);
  return { c1Records: s.records, c1Width: s.width, c1Height: s.height, c1MaxValue: s.maxValue, c2Replica: k.replicaRecords };
}

// ----- images and CLI runs -----

export function writeImage(path: string, pixels: Uint16Array, width: number, height: number, maxValue = 255): string {
  writeFileSync(path, encodePng({ width, height, maxValue, pixels }));
  return path;
}

export function randomPixels(n: number, low = 0, high = 255): Uint16Array {
  return Uint16Array.from({ length: n }, () => low + Math.floor(Math.random() * (high - low + 1)));
}

export function freshDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

/** The connection flags of a CLI run against these daemons (plaintext). */
export const conn = (c1: Daemon, c2: Daemon, keys: Keys) => ['--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE];

/** One query through the CLI: its JSON result, or the exit code and stderr. */
export async function cliQuery(args: string[]) {
  const started = Date.now();
  const run = await runCli(['query', ...args, '--json']);
  const [result] = jsonLines(run.stdout) as { results?: { id: string; distance: string }[] }[];
  return { code: run.code, stderr: run.stderr, result, ms: Date.now() - started };
}

/**
 * A CLI run whose stdout is read line by line as it comes (runCli waits for
 * the end): `onLine` sees each line and the child, e.g. to kill a daemon
 * after the nth progress line.
 */
export function runCliStreaming(
  args: string[],
  onLine: (line: string, child: ChildProcess) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout += line + '\n';
      onLine(line, child);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// ----- the owner's requests, to be taken apart by the malformed-input tests -----

/** The owner's writes the capturing link was given, in order (nothing of them was sent). */
export interface Captured {
  uploads: wire.UploadRequest[];
  deletes: wire.DeleteRequest[];
  replicaGroups: wire.ReplicaGroup[];
}

/**
 * The owner's link (as grpcOwnerLink in client/src/owner-upload.ts) that reads
 * from C1 (Status, AllocateSlots, GetGroup) but only records its writes
 * (Upload, Delete, Replica.PutGroup), answering them with made-up replies.
 */
export function capturingLink(conn: Connections): OwnerLink & { captured: Captured } {
  const captured: Captured = { uploads: [], deletes: [], replicaGroups: [] };
  return {
    captured,
    status: () => rpc<wire.DatabaseStatus>((m, o, cb) => conn.db.status({}, m, o, cb)),
    allocateSlots: (req) => rpc<wire.SlotAssignments>((m, o, cb) => conn.db.allocateSlots(req, m, o, cb)),
    getGroup: (req) => rpc<wire.GroupContents>((m, o, cb) => conn.db.getGroup(req, m, o, cb)),
    listGroups: () => rpc<wire.GroupList>((m, o, cb) => conn.db.listGroups({}, m, o, cb)),
    listReplicaGroups: () => rpc<wire.GroupList>((m, o, cb) => conn.replica.listGroups({}, m, o, cb)),
    upload: async (req) => {
      captured.uploads.push(req);
      return { stored: req.records.length, replaced: 0, total: 0n };
    },
    delete: async (req) => {
      captured.deletes.push(req);
      return { deleted: req.lookupTags.length, total: 0n };
    },
    putReplicaGroup: async (req) => {
      captured.replicaGroups.push(req);
      return { total: 0n };
    },
    commitReplicaGroup: async () => ({ agrees: true, total: 0n }),
  };
}

/** The real owner's writer (client/src/owner-upload.ts, without worker pools) over a link. */
export function ownerWriter(link: OwnerLink, keys: Keys, layouts: Layout[] = ['packed', 'paper']): CollectionWriter {
  const underPk2 = async (v: bigint[]) => v.map((x) => keys.pk.encrypt(x));
  const underPk1 = async (v: bigint[]) => v.map((x) => keys.pk1.encrypt(x));
  return new CollectionWriter(link, { pk2: keys.pk, pk1: keys.pk1, recordKey: keys.recordKey }, { underPk2, underPk1 }, layouts);
}

/**
 * One new record as the real owner would upload it (CollectionWriter), built
 * against what C1 holds now and captured, not sent: the Upload of its group
 * (the record, and the group's change: base version, new version, packed
 * columns of all its members under C2's key) and C2's side of the same change
 * (every member, columns under C1's key). Nothing is stored.
 */
export async function ownerGroupUpload(
  conn: Connections,
  keys: Keys,
  id: string,
  pixels: Uint16Array,
  width: number,
  height: number,
  maxValue = 255,
  layouts: Layout[] = ['packed', 'paper'],
) {
  const link = capturingLink(conn);
  const outcomes: GroupOutcome[] = [];
  await ownerWriter(link, keys, layouts).upload([{ id, image: { width, height, maxValue, pixels } }], (o) => outcomes.push(o));
  for (const o of outcomes) if (!o.ok) throw o.error;
  const { uploads, replicaGroups } = link.captured;
  if (uploads.length !== 1 || replicaGroups.length !== 1)
    throw new Error(`one record made ${uploads.length} uploads and ${replicaGroups.length} replica groups`);
  return { upload: uploads[0], replica: replicaGroups[0], lookupTag: keys.recordKey.lookupTag(id) };
}

/** A delete by ID as the real owner would send it, captured: C1's Delete (tags and group changes) and C2's groups. */
export async function ownerDeleteRequest(conn: Connections, keys: Keys, ids: string[]) {
  const link = capturingLink(conn);
  await ownerWriter(link, keys).delete(ids);
  return { request: link.captured.deletes[0], replicaGroups: link.captured.replicaGroups };
}
