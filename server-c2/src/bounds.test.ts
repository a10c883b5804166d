import { status as Code, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { bigintContentBytes, shareQuery } from '@fnn/shared';
import { paperReply } from '@fnn/server-common/testing';
import { G, PARAMS, randomImage, RPC_DEADLINE_MS, startC2Fixture, expectCode, type C2Fixture } from './testing/fixtures';

// What a caller can fill at C2 is bounded (issue 12), on the real daemon on
// 127.0.0.1:0 with small limits: a PutShare flood is refused RESOURCE_EXHAUSTED
// at its byte or entry cap, the bytes held (the store's own count) never pass
// it, and a share deposited before the flood is still redeemed by its session;
// idle sessions are ended and counted closed; the session cap refuses the next
// one. Without TLS every caller is the same one ("insecure"): that distinct
// certificates are distinct callers is ticket-store.test.ts and
// services.test.ts; that no entry is evicted is what this file shows.

const RECORDS = G + 2;
/** The bytes C2 holds for one share of the test collection (every value fits one 64-bit digit). */
let S: number;

beforeAll(async () => {
  const { forC2 } = await shareQuery(randomImage(), PARAMS, async (values) => values);
  S = bigintContentBytes(forC2);
});

/** Deposits shares until C2 refuses one (at most `tries`): the tickets taken, and the refusal. */
async function flood(f: C2Fixture, tries: number, cap: { bytes: number; entries: number }) {
  const tickets: string[] = [];
  for (let i = 0; i < tries; i++) {
    try {
      tickets.push(await f.depositedShare());
    } catch (e) {
      return { tickets, refusal: e as ServiceError };
    } finally {
      const held = f.c2!.held().shares;
      expect(held.bytes, `after ${i + 1} deposits C2 must hold at most ${cap.bytes} bytes of shares`).toBeLessThanOrEqual(cap.bytes);
      expect(held.entries, `after ${i + 1} deposits C2 must hold at most ${cap.entries} shares`).toBeLessThanOrEqual(cap.entries);
    }
  }
  return { tickets, refusal: undefined };
}

/** A fast session opened on the ticket: C2 takes the share and answers (no groups asked for, so the answer is empty). */
async function redeem(f: C2Fixture, ticket: string, what: string): Promise<void> {
  const { replies, error } = await f.rawSession([f.messages.fastOpen('redeem', ticket, [])]);
  expect(error, `${what}: the session on the share deposited before the flood failed: ${error?.details}`).toBeUndefined();
  expect(replies.length, `${what}: C2 must answer the fast open`).toBe(1);
  expect(replies[0].protocol?.$case === 'fast' && replies[0].protocol.value.body?.$case, `${what}: the answer`).toBe('contributions');
}

describe('a PutShare flood from one caller', () => {
  let f: C2Fixture;
  let cap: { entries: number; bytes: number };

  beforeAll(async () => {
    cap = { entries: 1000, bytes: Math.floor(4.5 * S) };
    f = await startC2Fixture(RECORDS, { shares: { perCaller: cap, total: { entries: 1000, bytes: 1 << 30 } } });
  });

  afterAll(async () => {
    await f?.stop();
  });

  it('is refused RESOURCE_EXHAUSTED at its byte cap; the bytes held stay below it; the share deposited before is redeemed', async () => {
    const before = await f.depositedShare();
    expect(f.c2!.held().shares, 'one share held, measured by its bigints').toEqual({ entries: 1, bytes: S });
    const { tickets, refusal } = await flood(f, 20, cap);
    expect(refusal, 'the flood must be refused').toBeDefined();
    expectCode(refusal!, Code.RESOURCE_EXHAUSTED, 'the share past the byte cap');
    expect(refusal!.details).toMatch(/from this caller/);
    expect(tickets.length, 'shares taken before the cap: 4 in all fit 4.5 shares of bytes').toBe(3);
    // Refusals keep coming and change nothing held.
    for (let i = 0; i < 5; i++) await expect(f.depositedShare()).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
    expect(f.c2!.held().shares).toEqual({ entries: 4, bytes: 4 * S });
    await redeem(f, before, 'byte cap');
    expect(f.c2!.held().shares, 'the redeemed share is released').toEqual({ entries: 3, bytes: 3 * S });
    expect(await f.depositedShare(), 'what was released can be filled again').toMatch(/^[0-9a-f]{32}$/);
    for (const t of tickets) await redeem(f, t, "the flood's own shares");
    expect((await f.keyHolderStatus()).openSessions, 'no session is left open').toBe(0);
  });
});

describe('a PutShare flood at the entry cap', () => {
  let f: C2Fixture;

  beforeAll(async () => {
    f = await startC2Fixture(RECORDS, { shares: { perCaller: { entries: 4, bytes: 1 << 30 }, total: { entries: 1000, bytes: 1 << 30 } } });
  });

  afterAll(async () => {
    await f?.stop();
  });

  it('is refused RESOURCE_EXHAUSTED once the caller holds its entries; nothing held is evicted', async () => {
    const before = await f.depositedShare();
    const { tickets, refusal } = await flood(f, 20, { entries: 4, bytes: 4 * S });
    expect(refusal, 'the flood must be refused').toBeDefined();
    expectCode(refusal!, Code.RESOURCE_EXHAUSTED, 'the share past the entry cap');
    expect(tickets.length).toBe(3);
    await redeem(f, before, 'entry cap');
    for (const t of tickets) await redeem(f, t, "the flood's own shares");
    expect(f.c2!.held().shares).toEqual({ entries: 0, bytes: 0 });
  });
});

describe('shares capped in all', () => {
  let f: C2Fixture;

  beforeAll(async () => {
    f = await startC2Fixture(RECORDS, { shares: { total: { entries: 1000, bytes: Math.floor(2.5 * S) } } });
  });

  afterAll(async () => {
    await f?.stop();
  });

  it('refuse the share past the bytes C2 holds in all', async () => {
    const before = await f.depositedShare();
    const { tickets, refusal } = await flood(f, 10, { entries: 2, bytes: Math.floor(2.5 * S) });
    expectCode(refusal!, Code.RESOURCE_EXHAUSTED, 'the share past the bound in all');
    expect(refusal!.details).not.toMatch(/from this caller/);
    expect(tickets.length).toBe(1);
    await redeem(f, before, 'cap in all');
  });
});

/** A session that opens (paper open, C2 answers) and then says nothing: ends when C2 ends it. */
async function idleSession(f: C2Fixture, id: string) {
  const call: ClientDuplexStream<wire.C1Message, wire.C2Message> = f.secure.session({ deadline: new Date(Date.now() + RPC_DEADLINE_MS) });
  const ended = new Promise<ServiceError | undefined>((resolve) => {
    call.on('error', (e: ServiceError) => resolve(e));
    call.on('status', (s) => {
      if (s.code === Code.OK) resolve(undefined);
    });
  });
  const opened = new Promise<wire.C2Message>((resolve) => call.once('data', resolve));
  call.write(f.messages.open(id));
  const first = await Promise.race([opened, ended.then((e) => Promise.reject(new Error(`session ${id} ended: ${e?.details}`)))]);
  expect(paperReply(first)?.$case, `session ${id} must be opened`).toBe('opened');
  call.on('data', () => {});
  return { call, ended };
}

describe('idle sessions', () => {
  const IDLE_MS = 300;
  let f: C2Fixture;

  beforeAll(async () => {
    f = await startC2Fixture(RECORDS, { sessions: { idleMs: IDLE_MS, max: 64 } });
  });

  afterAll(async () => {
    await f?.stop();
  });

  it('50 sessions that go silent are ended by C2 with DEADLINE_EXCEEDED and counted closed', async () => {
    const sessions = await Promise.all(Array.from({ length: 50 }, (_, i) => idleSession(f, `idle-${i}`)));
    const errors = await Promise.all(sessions.map((s) => s.ended));
    errors.forEach((e, i) => {
      expect(e, `idle session ${i} must be ended by C2`).toBeDefined();
      expectCode(e!, Code.DEADLINE_EXCEEDED, `idle session ${i}`);
      // C2's status, not this client's deadline (a minute away): grpc-js words its own "Deadline exceeded after".
      expect(e!.details, `idle session ${i}`).toBe('deadline exceeded');
    });
    expect((await f.keyHolderStatus()).openSessions, 'every idle session is counted closed').toBe(0);
    const { replies, error } = await f.rawSession([f.messages.open('after'), f.messages.square('after', [f.messages.validCipher()])]);
    expect(error, `a session after the idle ones: ${error?.details}`).toBeUndefined();
    expect(replies.map((r) => paperReply(r)?.$case)).toEqual(['opened', 'products']);
  });
});

describe('the session cap', () => {
  const MAX = 3;
  let f: C2Fixture;

  beforeAll(async () => {
    f = await startC2Fixture(RECORDS, { sessions: { idleMs: RPC_DEADLINE_MS, max: MAX } });
  });

  afterAll(async () => {
    await f?.stop();
  });

  it('refuses the session past the cap with RESOURCE_EXHAUSTED; once one ends the next is taken', async () => {
    const open = await Promise.all(Array.from({ length: MAX }, (_, i) => idleSession(f, `held-${i}`)));
    expect((await f.keyHolderStatus()).openSessions).toBe(MAX);
    const refused = await f.rawSession([f.messages.open('one-too-many')]);
    expect(refused.error, 'the session past the cap must be refused').toBeDefined();
    expectCode(refused.error!, Code.RESOURCE_EXHAUSTED, 'the session past the cap');
    expect(refused.replies).toEqual([]);
    expect((await f.keyHolderStatus()).openSessions, 'a refused session is not counted').toBe(MAX);
    // C1 ends its sessions: each ends OK and is counted closed.
    for (const s of open) s.call.end();
    for (const [i, s] of open.entries()) expect(await s.ended, `held session ${i} ends OK`).toBeUndefined();
    expect((await f.keyHolderStatus()).openSessions).toBe(0);
    const { error } = await f.rawSession([f.messages.open('next')]);
    expect(error, `a session once the others ended: ${error?.details}`).toBeUndefined();
  });
});
