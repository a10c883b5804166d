import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { startC1, type RunningC1 } from '@fnn/server-c1';
import { startC2 } from '@fnn/server-c2';
import {
  CollectionWriter,
  DoctorClient,
  generateKeyPair,
  generateSymmetricKey,
  localC1Crypto,
  localC2Crypto,
  multiExpFixed,
  plaintextNearest,
  RecordKey,
  retrieveParts,
  silentLogger,
  type DoctorAnswer,
  type DoctorLink,
  type FixedWidthValues,
  type GroupOutcome,
  type PlaintextRecord,
  type PublicKey,
  type RunningDaemon,
  type TlsIdentity,
} from '@fnn/shared';
import { issueAuthority, issueParty, type Authority } from './certificates';
import { call, connectC1, connectC2, connectReplica } from './connect';
import { grpcOwnerLink } from './owner-upload';

// C1's admission queue through the daemon: C1 and C2 in this process over
// mutual TLS, two doctors with certificates of their own (the caller is the
// certificate). C1's multi-exponentiation is held at a gate, so an admitted
// fast query stays running until the test opens it: what is admitted when is
// read from C1's queue and the gate, never from a clock. A burst of doctor A
// gets its one per-caller place, its next three wait and a fifth is refused;
// doctor B's query is admitted at once, ahead of A's waiting ones; once the
// gate opens every answer is exact.

const HOSTS = ['127.0.0.1'];
const LIMITS = { running: 3, runningPerCaller: 1, queued: 10, queuedPerCaller: 3 };
const WIDTH = 4;
const HEIGHT = 4;
const MAX_VALUE = 255;
/** One group at these sizes: a fast query holds one multi-exponentiation at a time at the gate. */
const RECORDS = 3;

/** Holds every call until opened; counts the held ones, and says when a count is reached. */
class Gate {
  held = 0;
  private opened = false;
  private readonly waiting: (() => void)[] = [];
  private readonly listeners = new Set<() => void>();

  pass(): Promise<void> {
    if (this.opened) return Promise.resolve();
    this.held++;
    for (const l of [...this.listeners]) l();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  until(held: number): Promise<void> {
    if (this.held >= held) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.held < held) return;
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
    });
  }

  open(): void {
    this.opened = true;
    for (const release of this.waiting.splice(0)) release();
  }
}

const gate = new Gate();
let root: string;
let c1: RunningC1;
let c2: RunningDaemon;
let pk: PublicKey;
const recordKey = new RecordKey(generateSymmetricKey());
const collection: PlaintextRecord[] = [];
const clients: { close(): void }[] = [];
/** Doctors A and B: certificates of their own, so two callers to C1. */
let doctors: TlsIdentity[];

async function identity(authority: Authority, role: 'c1' | 'c2' | 'owner' | 'doctor', name: string): Promise<TlsIdentity> {
  const issued = await issueParty(authority, { role, name, hosts: role === 'c1' || role === 'c2' ? HOSTS : [], days: 1 });
  return { ca: Buffer.from(authority.cert), cert: Buffer.from(issued.cert), key: Buffer.from(issued.key) };
}

const randomImage = () => Uint16Array.from({ length: WIDTH * HEIGHT }, () => Math.floor(Math.random() * (MAX_VALUE + 1)));

/** A doctor's fast queries over its own certificate, as `fnn query` makes them (k = 2). */
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
  return new DoctorClient(link, { pk2: pk, recordKey }, async (values) => values.map((v) => pk.encrypt(v)), 'fast', 2);
}

const image = (pixels: Uint16Array) => ({ width: WIDTH, height: HEIGHT, maxValue: MAX_VALUE, pixels });

function expectExact(answer: DoctorAnswer, pixels: Uint16Array, what: string): void {
  expect(
    answer.neighbours.map((n) => n.id),
    `${what}: the neighbours differ from the plaintext reference`,
  ).toEqual(plaintextNearest(collection, pixels, 2).map((r) => r.id));
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fnn-admission-test-'));
  const ca = await issueAuthority(1);
  const [c1Id, c2Id, owner] = [await identity(ca, 'c1', 'c1'), await identity(ca, 'c2', 'c2'), await identity(ca, 'owner', 'owner')];
  const keys = await generateKeyPair(512);
  const keys1 = await generateKeyPair(512);
  pk = keys.publicKey;
  c2 = await startC2({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c2.db'),
    crypto: localC2Crypto(keys.secretKey),
    fast: { sk2: keys.secretKey, pk1: keys1.publicKey, multiExp: async (b, e, m) => multiExpFixed(b, e, m) },
    log: silentLogger,
    transport: c2Id,
  });
  c1 = await startC1({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c1.db'),
    c2Address: c2.address,
    crypto: localC1Crypto(pk),
    fast: {
      pk2: pk,
      sk1: keys1.secretKey,
      multiExp: async (bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint) => {
        await gate.pass();
        return multiExpFixed(bases, exponents, modulus);
      },
    },
    log: silentLogger,
    transport: c1Id,
    admission: LIMITS,
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
  for (let i = 0; i < RECORDS; i++) collection.push({ id: `patient-${i}`, pixels: randomImage() });
  const outcomes: GroupOutcome[] = [];
  await writer.upload(
    collection.map((r) => ({ id: r.id, image: image(r.pixels) })),
    (o) => outcomes.push(o),
  );
  for (const o of outcomes) if (!o.ok) throw o.error;
  doctors = [await identity(ca, 'doctor', 'doctor-a'), await identity(ca, 'doctor', 'doctor-b')];
});

afterAll(async () => {
  gate.open();
  for (const client of clients) client.close();
  await c1?.stop();
  await c2?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("C1's admission queue through the daemon", () => {
  it("admits another doctor's query at once while one doctor's burst waits behind its own per-caller place; every answer is exact", async () => {
    const [idA, idB] = doctors;
    const a = doctor(idA);
    const b = doctor(idB);
    const burst = Array.from({ length: 1 + LIMITS.queuedPerCaller }, () => randomImage());
    const answersA = burst.map((pixels, i) => a.query(`a${i}`, image(pixels)));
    // A's first query runs (held at the gate), the other three wait for A's one place.
    await gate.until(1);
    await c1.admission.until((s) => s.running === 1 && s.queued === LIMITS.queuedPerCaller);

    const refused = await a.query('a-over', image(randomImage())).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(refused?.code, `A's query beyond its queue: ${refused?.details}`).toBe(Code.RESOURCE_EXHAUSTED);
    expect(refused?.details).toBe(
      `C1 has ${LIMITS.queuedPerCaller} queries of this caller waiting, at most ${LIMITS.queuedPerCaller}; try later`,
    );

    const pixelsB = randomImage();
    const answerB = b.query('b0', image(pixelsB));
    // B is admitted at once and reaches the gate beside A's one running query.
    await gate.until(2);
    const state = c1.admission.state();
    expect(state.running, 'running: one of A, one of B').toBe(2);
    expect(state.queued, "A's burst still waits: B went before all of it").toBe(LIMITS.queuedPerCaller);
    expect(
      [...state.callers.values()].map((c) => [c.running, c.queued]).sort(),
      'per caller: A runs one and has three waiting, B runs one',
    ).toEqual([
      [1, 0],
      [1, LIMITS.queuedPerCaller],
    ]);

    gate.open();
    expectExact(await answerB, pixelsB, "B's query");
    const answered = await Promise.all(answersA);
    answered.forEach((answer, i) => expectExact(answer, burst[i], `A's query ${i}`));
    expect(c1.admission.state(), 'nothing left running or waiting').toMatchObject({ running: 0, queued: 0 });
  });
});
