import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { startC1 } from '@fnn/server-c1';
import { startC2 } from '@fnn/server-c2';
import {
  CollectionWriter,
  DoctorClient,
  generateKeyPair,
  generateSymmetricKey,
  localC1Crypto,
  localC2Crypto,
  multiExpFixed,
  RecordKey,
  retrieveParts,
  silentLogger,
  type AuditEntry,
  type DoctorLink,
  type FixedWidthValues,
  type GroupOutcome,
  type PublicKey,
  type RunningDaemon,
  type TlsIdentity,
} from '@fnn/shared';
import { issueAuthority, issueParty, type Authority } from './certificates';
import { audit, parseSince } from './commands/audit';
import { runCli } from './harness';
import { call, connectC1, connectC2, connectReplica } from './connect';
import { CliError, EXIT, type Output } from './output';
import { grpcOwnerLink } from './owner-upload';

// The audit trail through real daemons over mutual TLS: an owner and two
// doctors with certificates of their own upload, query, delete and are
// refused; each daemon's file then holds one entry per call with the
// caller's CN and serial, never a record ID; `fnn audit --verify` (the
// command's function, as the CLI runs it) verifies the chain and names an
// entry edited or removed in the file.

const HOSTS = ['127.0.0.1'];
const WIDTH = 4;
const HEIGHT = 4;
const MAX_VALUE = 255;
const IDS = ['patient-Q7-alpha', 'patient-Q7-beta', 'patient-Q7-gamma'];

let root: string;
let c1: RunningDaemon;
let c2: RunningDaemon;
let pk: PublicKey;
let owner: TlsIdentity;
let doctorA: TlsIdentity;
let doctorB: TlsIdentity;
let c1Audit: string;
let c2Audit: string;
const recordKey = new RecordKey(generateSymmetricKey());
const clients: { close(): void }[] = [];

async function identity(authority: Authority, role: 'c1' | 'c2' | 'owner' | 'doctor', name: string): Promise<TlsIdentity> {
  const issued = await issueParty(authority, { role, name, hosts: role === 'c1' || role === 'c2' ? HOSTS : [], days: 1 });
  return { ca: Buffer.from(authority.cert), cert: Buffer.from(issued.cert), key: Buffer.from(issued.key) };
}

const image = (seed: number) => ({
  width: WIDTH,
  height: HEIGHT,
  maxValue: MAX_VALUE,
  pixels: Uint16Array.from({ length: WIDTH * HEIGHT }, (_, i) => (seed * 37 + i * 11) % (MAX_VALUE + 1)),
});

function doctor(id: TlsIdentity): DoctorClient {
  const db = connectC1(c1.address, id);
  const retrieval = connectC2(c2.address, id);
  clients.push(db, retrieval);
  const link: DoctorLink = {
    status: () => call(db.status.bind(db), {}, 30_000),
    putShare: async (share: wire.QueryShare) => (await call(retrieval.putShare.bind(retrieval), share, 30_000)).ticket,
    retrieve: (ticket) => retrieveParts(retrieval, ticket, new Date(Date.now() + 30_000)),
    query: (request) => call(db.query.bind(db), request, 60_000),
  };
  return new DoctorClient(link, { pk2: pk, recordKey }, async (values) => values.map((v) => pk.encrypt(v)), 'fast', 1);
}

/** `fnn audit` as the CLI runs it, with what it printed. */
async function runAudit(options: { daemon: 'c1' | 'c2'; verify?: boolean; since?: string; head?: string; transport?: TlsIdentity }) {
  const printed: { object: Record<string, unknown>; human: string }[] = [];
  const out: Output = {
    json: false,
    result: (object, human) => printed.push({ object: object as Record<string, unknown>, human }),
    note: () => {},
  };
  const address = options.daemon === 'c1' ? c1.address : c2.address;
  let error: unknown;
  try {
    await audit(out, {
      daemon: options.daemon,
      address,
      verify: options.verify,
      since: options.since,
      transport: options.transport ?? owner,
    });
  } catch (e) {
    error = e;
  }
  return { printed, error };
}

const entriesOf = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditEntry);

const whoOf = (e: AuditEntry) => (typeof e.who === 'string' ? e.who : e.who.subject);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fnn-audit-test-'));
  c1Audit = join(root, 'c1.db.audit.jsonl');
  c2Audit = join(root, 'c2.db.audit.jsonl');
  const ca = await issueAuthority(1);
  const [c1Id, c2Id] = [await identity(ca, 'c1', 'c1'), await identity(ca, 'c2', 'c2')];
  owner = await identity(ca, 'owner', 'Owner Olga');
  doctorA = await identity(ca, 'doctor', 'Dr Ada Lovelace');
  doctorB = await identity(ca, 'doctor', 'Dr Bob Hooke');
  const keys = await generateKeyPair(1024);
  const keys1 = await generateKeyPair(1024);
  pk = keys.publicKey;
  const multiExp = async (b: FixedWidthValues, e: FixedWidthValues, m: bigint) => multiExpFixed(b, e, m);
  c2 = await startC2({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c2.db'),
    auditPath: c2Audit,
    crypto: localC2Crypto(keys.secretKey),
    fast: { sk2: keys.secretKey, pk1: keys1.publicKey, multiExp },
    log: silentLogger,
    transport: c2Id,
  });
  c1 = await startC1({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c1.db'),
    auditPath: c1Audit,
    c2Address: c2.address,
    crypto: localC1Crypto(pk),
    fast: { pk2: pk, sk1: keys1.secretKey, multiExp },
    log: silentLogger,
    transport: c1Id,
  });
  const db = connectC1(c1.address, owner);
  const replica = connectReplica(c2.address, owner);
  clients.push(db, replica);
  const encrypt = (key: PublicKey) => async (values: bigint[]) => values.map((v) => key.encrypt(v));
  const writer = new CollectionWriter(
    grpcOwnerLink(db, replica),
    { pk2: pk, pk1: keys1.publicKey, recordKey },
    { underPk2: encrypt(pk), underPk1: encrypt(keys1.publicKey) },
    ['packed'],
  );
  const outcomes: GroupOutcome[] = [];
  await writer.upload(
    IDS.map((id, i) => ({ id, image: image(i) })),
    (o) => outcomes.push(o),
  );
  for (const o of outcomes) if (!o.ok) throw o.error;

  // Doctor A queries and tries to delete (refused); doctor B queries; the owner deletes one record.
  expect((await doctor(doctorA).query('a1', image(0))).neighbours.map((n) => n.id)).toEqual([IDS[0]]);
  const aAtC1 = connectC1(c1.address, doctorA);
  clients.push(aAtC1);
  const refused = await call(aAtC1.delete.bind(aAtC1), { lookupTags: [], groups: [] }, 10_000).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  expect(refused?.code).toBe(Code.PERMISSION_DENIED);
  await doctor(doctorB).query('b1', image(2));
  expect(await writer.delete([IDS[1]])).toMatchObject({ deleted: 1 });
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await c1?.stop();
  await c2?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the audit trail at C1 and C2', () => {
  it("holds one entry per upload, query, delete and refusal at C1, each naming the caller's certificate", () => {
    const entries = entriesOf(c1Audit);
    const summary = entries.map((e) => [whoOf(e), e.rpc, e.outcome]);
    expect(summary.filter(([, rpc]) => rpc === 'Upload')).toEqual([['Owner Olga', 'Upload', 'OK']]);
    expect(summary.filter(([, rpc]) => rpc === 'Query')).toEqual([
      ['Dr Ada Lovelace', 'Query', 'OK'],
      ['Dr Bob Hooke', 'Query', 'OK'],
    ]);
    expect(summary.filter(([, rpc]) => rpc === 'Delete')).toEqual([
      ['Dr Ada Lovelace', 'Delete', 'PERMISSION_DENIED'],
      ['Owner Olga', 'Delete', 'OK'],
    ]);
    const query = entries.find((e) => e.rpc === 'Query')!;
    expect(query.what).toEqual({ protocol: 'fast', k: 1, records: 3, rejected: 0 });
    expect(query.who).toMatchObject({ subject: 'Dr Ada Lovelace', role: 'doctor', serial: expect.stringMatching(/^[0-9a-f]+$/) });
    const doctors = entries.filter((e) => e.rpc === 'Query').map((e) => (e.who as { serial: string }).serial);
    expect(new Set(doctors).size, 'two doctors, two serials').toBe(2);
    expect(entries.find((e) => e.outcome === 'PERMISSION_DENIED')!.what).toEqual({ refused: true });
    expect(entries.find((e) => e.rpc === 'Delete' && e.outcome === 'OK')!.what).toEqual({ groups: '0', deleted: 1 });
    expect(
      entries.some((e) => e.rpc === 'Status'),
      'status calls are not audited',
    ).toBe(false);
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
  });

  it("holds C2's replica changes, C1's sessions and the doctors' shares and retrievals at C2", () => {
    const entries = entriesOf(c2Audit);
    const rpcs = new Set(entries.map((e) => `${whoOf(e)} ${e.rpc} ${e.outcome}`));
    for (const expected of [
      'Owner Olga Replica.PutGroup OK',
      'Owner Olga Replica.CommitGroup OK',
      'c1 Session OK',
      'Dr Ada Lovelace PutShare OK',
      'Dr Bob Hooke PutShare OK',
    ])
      expect(rpcs, expected).toContain(expected);
    expect(entries.find((e) => e.rpc === 'Replica.CommitGroup')!.what).toEqual({ group: 0, agrees: true });
  });

  it('never holds a record ID, in either file', () => {
    for (const file of [c1Audit, c2Audit]) {
      const text = readFileSync(file, 'utf8');
      for (const id of IDS) expect(text, `${file} names ${id}`).not.toContain(id);
      expect(text).not.toContain('Q7');
    }
  });

  it("is the owner's only: a doctor's read is refused, and that refusal is in the trail", async () => {
    const { error } = await runAudit({ daemon: 'c1', transport: doctorB });
    expect((error as ServiceError).code).toBe(Code.PERMISSION_DENIED);
    const last = entriesOf(c1Audit).at(-1)!;
    expect([whoOf(last), last.rpc, last.outcome]).toEqual(['Dr Bob Hooke', 'Audit.Read', 'PERMISSION_DENIED']);
  });

  it('fnn audit prints each entry (time, who, rpc, outcome, what), and --since leaves out older ones', async () => {
    const { printed, error } = await runAudit({ daemon: 'c1' });
    expect(error).toBeUndefined();
    const line = printed.find((p) => p.object.rpc === 'Query')!.human;
    expect(line).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}Dr Ada Lovelace \(doctor, serial [0-9a-f]+\) {2}Query {2}OK {2}protocol=fast k=1 records=3 rejected=0$/,
    );
    const later = await runAudit({ daemon: 'c1', since: new Date(Date.now() + 60_000).toISOString() });
    expect(later.printed).toEqual([]);
  });

  it('fnn audit --verify verifies both chains and prints the head to keep', async () => {
    for (const daemon of ['c1', 'c2'] as const) {
      const { printed, error } = await runAudit({ daemon, verify: true });
      expect(error).toBeUndefined();
      const verdict = printed.at(-1)!;
      expect(verdict.object).toMatchObject({ verified: true, entries: expect.any(Number) as number });
      expect(verdict.human).toMatch(/^chain of \d+ entries verified; head \d+:[0-9a-f]{64} /);
    }
    // The reads themselves are in the trail, by the owner.
    const last = entriesOf(c2Audit).at(-1)!;
    expect([whoOf(last), last.rpc, last.outcome]).toEqual(['Owner Olga', 'Audit.Read', 'OK']);
    // The head printed then is still held later, by a chain grown since.
    const { head } = (await runAudit({ daemon: 'c2', verify: true })).printed.at(-1)!.object as { head: { seq: number; hash: string } };
    const later = await runAudit({ daemon: 'c2', verify: true, head: `${head.seq}:${head.hash}` });
    expect(later.error).toBeUndefined();
    expect(later.printed.at(-1)!.object).toMatchObject({ verified: true, entries: head.seq + 1 });
  });

  it('fnn audit --verify names an entry edited in the file, and the entry after a removed line (exit 7)', async () => {
    const original = readFileSync(c1Audit, 'utf8');
    const lines = original.split('\n');
    const at = lines.findIndex((l) => l.includes('"PERMISSION_DENIED"'));
    const seq = (JSON.parse(lines[at]) as AuditEntry).seq;
    try {
      // The refused delete made to look allowed.
      lines[at] = lines[at].replace('"PERMISSION_DENIED"', '"OK"');
      writeFileSync(c1Audit, lines.join('\n'));
      const edited = await runAudit({ daemon: 'c1', verify: true });
      expect(edited.error).toBeInstanceOf(CliError);
      expect(EXIT[(edited.error as CliError).kind]).toBe(7);
      expect((edited.error as CliError).message).toBe(
        `C1's audit chain does not hold at entry ${seq} (line ${at + 1}): its content does not match its hash: the entry was edited`,
      );

      const removed = original.split('\n');
      removed.splice(at, 1);
      writeFileSync(c1Audit, removed.join('\n'));
      const cut = await runAudit({ daemon: 'c1', verify: true });
      expect((cut.error as CliError).message).toMatch(
        new RegExp(`^C1's audit chain does not hold at entry ${seq + 1} \\(line ${at + 1}\\): its seq follows ${seq - 1}`),
      );
    } finally {
      writeFileSync(c1Audit, original);
    }
  });
});

describe('fnn audit: its flags', () => {
  it('reads --since as a duration back from now or a date/time, and refuses anything else in one usage line', () => {
    const now = Date.UTC(2026, 11, 2, 12);
    expect(parseSince('24h', now)).toBe(now - 24 * 3_600_000);
    expect(parseSince('90m', now)).toBe(now - 90 * 60_000);
    expect(parseSince('2026-12-01', now)).toBe(Date.UTC(2026, 11, 1));
    expect(parseSince('2026-12-01T08:00Z', now)).toBe(Date.UTC(2026, 11, 1, 8));
    for (const bad of ['yesterday', '24', '-1h', '2026-13-45'])
      expect(() => parseSince(bad, now), bad).toThrow(`--since must be a date or time (2026-12-01, 2026-12-01T08:00Z) or a duration`);
  });

  it('needs exactly one daemon: exit 2 and one line', async () => {
    const env = { FNN_C1: '', FNN_C2: '' };
    for (const args of [
      ['audit', '--insecure'],
      ['audit', '--c1', '127.0.0.1:1', '--c2', '127.0.0.1:2', '--insecure'],
    ]) {
      const run = await runCli(args, env);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toBe('fnn: name one daemon: --c1 HOST:PORT or --c2 HOST:PORT. See fnn audit --help\n');
    }
  });
});
