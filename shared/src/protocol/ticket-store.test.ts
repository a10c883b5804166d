import { describe, expect, it } from 'vitest';
import { FnnError } from '../errors';
import { bigintBytes, bigintContentBytes, TicketStore, type TicketLimits } from './ticket-store';

// The accounting of C2's ticket stores (pending query shares, retrieval
// results): entries and bytes per caller and in all, released by take and by
// expiry, and a full store refusing the newcomer without touching what it holds.

const LIMITS: TicketLimits = { perCaller: { entries: 3, bytes: 300 }, total: { entries: 5, bytes: 500 } };
const TTL = 1000;

/** A store on a clock the test moves; values are plain sizes, so the bytes are exact. */
function store(limits = LIMITS) {
  const clock = { t: 0 };
  const s = new TicketStore<number>('test ticket', { sizeOf: (v) => v, limits, ttlMs: TTL, now: () => clock.t });
  return { s, clock };
}

function refusal(f: () => unknown): FnnError {
  try {
    f();
  } catch (e) {
    if (e instanceof FnnError) return e;
    throw e;
  }
  throw new Error('expected a refusal, the store took the value');
}

describe('a value is measured by the bigints it holds', () => {
  it('a bigint costs its 64-bit digits plus a 16-byte header, whatever its sign', () => {
    expect(bigintBytes(0n)).toBe(24);
    expect(bigintBytes((1n << 49n) - 1n)).toBe(24);
    expect(bigintBytes((1n << 64n) - 1n)).toBe(24);
    expect(bigintBytes(1n << 64n)).toBe(32);
    expect(bigintBytes(-(1n << 64n))).toBe(32);
    expect(bigintBytes((1n << 2048n) - 1n)).toBe(16 + 8 * 32);
  });

  it('a share (object of arrays) and a result (arrays of arrays) are the sum of their bigints', () => {
    expect(bigintContentBytes({ distance: [1n, 2n], bound: [1n << 100n] })).toBe(24 + 24 + 32);
    expect(bigintContentBytes([[1n], [2n, 3n]])).toBe(3 * 24);
    expect(bigintContentBytes([])).toBe(0);
  });

  it('the default measure is the bigints: a store of shares counts their bytes', () => {
    const s = new TicketStore<{ distance: bigint[]; bound: bigint[] }>('share');
    s.put({ distance: [1n, 2n], bound: [3n] }, 'a');
    expect(s.bytes).toBe(72);
    expect(s.heldBy('a')).toEqual({ entries: 1, bytes: 72 });
  });
});

describe('TicketStore accounting', () => {
  it('put counts entries and bytes per caller and in all; take releases them', () => {
    const { s } = store();
    const t1 = s.put(100, 'a');
    const t2 = s.put(50, 'b');
    expect(s.heldBy('a')).toEqual({ entries: 1, bytes: 100 });
    expect(s.heldBy('b')).toEqual({ entries: 1, bytes: 50 });
    expect({ size: s.size, bytes: s.bytes }).toEqual({ size: 2, bytes: 150 });
    expect(s.take(t1)).toBe(100);
    expect(s.heldBy('a')).toEqual({ entries: 0, bytes: 0 });
    expect({ size: s.size, bytes: s.bytes }).toEqual({ size: 1, bytes: 50 });
    expect(s.take(t2)).toBe(50);
    expect({ size: s.size, bytes: s.bytes }).toEqual({ size: 0, bytes: 0 });
  });

  it('a ticket is taken once: the second take is NOT_FOUND and changes no count', () => {
    const { s } = store();
    const t = s.put(10, 'a');
    s.take(t);
    expect(refusal(() => s.take(t)).kind).toBe('not-found');
    expect({ size: s.size, bytes: s.bytes }).toEqual({ size: 0, bytes: 0 });
  });

  it('expiry releases entries and bytes, per caller and in all', () => {
    const { s, clock } = store();
    const old = s.put(200, 'a');
    clock.t = TTL / 2;
    s.put(100, 'a');
    expect(s.heldBy('a')).toEqual({ entries: 2, bytes: 300 });
    clock.t = TTL;
    expect(s.heldBy('a')).toEqual({ entries: 1, bytes: 100 });
    expect({ size: s.size, bytes: s.bytes }).toEqual({ size: 1, bytes: 100 });
    expect(refusal(() => s.take(old)).kind).toBe('not-found');
    // What expiry released can be filled again.
    s.put(200, 'a');
    expect(s.heldBy('a')).toEqual({ entries: 2, bytes: 300 });
  });

  it("a caller at its byte cap is refused RESOURCE_EXHAUSTED; its held values and others' stay redeemable", () => {
    const { s } = store();
    const theirs = s.put(10, 'b');
    const mine = s.put(250, 'a');
    const e = refusal(() => s.put(51, 'a'));
    expect(e.kind).toBe('resource-exhausted');
    expect(e.message).toContain('from this caller');
    expect(s.heldBy('a')).toEqual({ entries: 1, bytes: 250 });
    s.put(50, 'a'); // exactly at the cap is allowed
    expect(s.heldBy('a').bytes).toBe(300);
    s.put(100, 'b'); // another caller is not refused for a's flood
    expect(s.take(theirs)).toBe(10);
    expect(s.take(mine)).toBe(250);
  });

  it('a caller at its entry cap is refused, whatever the sizes', () => {
    const { s } = store();
    for (let i = 0; i < 3; i++) s.put(0, 'a');
    expect(refusal(() => s.put(0, 'a')).kind).toBe('resource-exhausted');
    expect(s.heldBy('a').entries).toBe(3);
    expect(s.put(0, 'b')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('a full store refuses the newcomer instead of evicting the oldest entry (in all, by entries and by bytes)', () => {
    const { s } = store();
    const tickets = ['a', 'b', 'c', 'd', 'e'].map((caller) => s.put(90, caller));
    expect(s.size).toBe(5);
    expect(refusal(() => s.put(0, 'f')).message).toContain('at most 5');
    const { s: bytes } = store();
    const held = [bytes.put(250, 'a'), bytes.put(250, 'b')];
    expect(refusal(() => bytes.put(1, 'c')).kind).toBe('resource-exhausted');
    expect(bytes.bytes).toBe(500);
    // Nothing was evicted: every held value is still there.
    expect(tickets.map((t) => s.take(t))).toEqual([90, 90, 90, 90, 90]);
    expect(held.map((t) => bytes.take(t))).toEqual([250, 250]);
  });

  it('a store without a per-caller bound (retrieval results) is capped in all only', () => {
    const { s } = store({ total: { entries: 5, bytes: 500 } });
    for (let i = 0; i < 5; i++) s.put(100);
    expect(s.bytes).toBe(500);
    expect(refusal(() => s.put(1)).kind).toBe('resource-exhausted');
  });

  it('a refusal says counts and bounds only, never a value', () => {
    const { s } = store();
    s.put(299, 'a');
    const e = refusal(() => s.put(77, 'a'));
    expect(e.message).not.toContain('77');
    expect(e.message).toMatch(/299 bytes.*at most 3 \(300 bytes\)/);
  });
});

describe('TicketStore reservations (a value that arrives in parts)', () => {
  it('counts against the bounds from the start: a reservation that does not fit is refused, one that does holds its space', () => {
    const { s } = store();
    expect(refusal(() => s.reserve(301, 'a')).kind, 'above the per-caller bytes').toBe('resource-exhausted');
    const r = s.reserve(200, 'a');
    expect(s.heldBy('a')).toEqual({ entries: 1, bytes: 200 });
    expect({ size: s.size, bytes: s.bytes }, 'held, but no ticket yet').toEqual({ size: 0, bytes: 200 });
    expect(refusal(() => s.put(101, 'a')).kind, 'what is reserved is not free').toBe('resource-exhausted');
    expect(refusal(() => s.reserve(301, 'b')).kind, 'nor in all').toBe('resource-exhausted');
    r.release();
    expect(s.bytes).toBe(0);
  });

  it('filling passes the space to a one-time ticket; the value must fit the space reserved', () => {
    const { s } = store();
    const r = s.reserve(100, 'a');
    expect(() => s.reserve(50, 'a').fill(51)).toThrow(/more than the space reserved/);
    const t = r.fill(80);
    expect(s.heldBy('a'), 'counted once, at the reserved size').toEqual({ entries: 2, bytes: 150 });
    expect(() => r.fill(1)).toThrow(/filled twice/);
    r.release(); // a filled reservation is not released: its ticket holds the space
    expect(s.take(t)).toBe(80);
    expect(s.heldBy('a')).toEqual({ entries: 1, bytes: 50 });
  });

  it('release is idempotent, and a reservation does not expire (its session releases it)', () => {
    const { s, clock } = store();
    const r = s.reserve(100);
    clock.t = 10 * TTL;
    expect(s.bytes, 'still held after the ticket lifetime').toBe(100);
    r.release();
    r.release();
    expect({ size: s.size, bytes: s.bytes }).toEqual({ size: 0, bytes: 0 });
    expect(() => r.fill(1)).toThrow(/after its release/);
    const t = s.reserve(10).fill(10);
    clock.t += TTL;
    expect(refusal(() => s.take(t)).kind, 'a filled value expires like any').toBe('not-found');
    expect(s.bytes).toBe(0);
  });
});
