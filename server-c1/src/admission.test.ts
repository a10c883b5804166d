import { status as Code } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FnnError } from '@fnn/shared';
import { AdmissionQueue, AdmissionTimeout, UNKNOWN_CALLER, type AdmissionLimits } from './admission';

// C1's admission queue without gRPC: at most `running` queries in all and
// `runningPerCaller` of one caller, the waiting ones admitted round robin
// across callers, bounded queues refused with resource-exhausted, and a wait
// ended at the call's deadline or when the caller hangs up. Queries here are
// tasks that run until the test releases them; nothing is timed (the deadline
// cases use fake timers).

const LIMITS: AdmissionLimits = { running: 3, runningPerCaller: 2, queued: 5, queuedPerCaller: 3 };

/** A query of `caller` named `name`, which records when it starts and runs until released. */
function task(queue: AdmissionQueue, started: string[], caller: string, name: string, options = {}) {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  const result = queue.run(
    caller,
    async () => {
      started.push(name);
      await done;
      return name;
    },
    options,
  );
  return { result, release: () => release() };
}

/** Lets admitted tasks start (their work runs a tick after admission). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe('AdmissionQueue', () => {
  it('runs at most runningPerCaller queries of one caller and running in all; the rest wait', async () => {
    const queue = new AdmissionQueue(LIMITS);
    const started: string[] = [];
    const a = ['a1', 'a2', 'a3', 'a4'].map((n) => task(queue, started, 'A', n));
    await settle();
    expect(started, "a caller's third query waits though a place is free in all").toEqual(['a1', 'a2']);
    const b = ['b1', 'b2'].map((n) => task(queue, started, 'B', n));
    await settle();
    expect(started, 'another caller takes the free place at once; its second waits for a place in all (3)').toEqual(['a1', 'a2', 'b1']);
    expect(queue.state()).toMatchObject({ running: 3, queued: 3 });
    expect(queue.state().callers.get('A'), 'A: two running, two waiting').toEqual({ running: 2, queued: 2 });
    for (const t of [...a, ...b]) t.release();
    // Releasing admits the rest, one place at a time.
    expect(await Promise.all([...a, ...b].map((t) => t.result))).toEqual(['a1', 'a2', 'a3', 'a4', 'b1', 'b2']);
    expect(queue.state()).toMatchObject({ running: 0, queued: 0 });
    expect(queue.state().callers.size, 'no caller is left in the queue').toBe(0);
  });

  it("admits waiting queries round robin across callers: one caller's burst does not go before another's query", async () => {
    const queue = new AdmissionQueue({ running: 1, runningPerCaller: 1, queued: 20, queuedPerCaller: 10 });
    const started: string[] = [];
    const names = ['a0', 'a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'c1']; // in the order they arrive
    const tasks = new Map(names.map((n) => [n, task(queue, started, n[0].toUpperCase(), n)]));
    await settle();
    expect(started).toEqual(['a0']);
    // One place: each release hands it to the next caller in turn.
    for (let i = 1; i < names.length; i++) {
      tasks.get(started[started.length - 1])!.release();
      await settle();
    }
    expect(started, 'A, B, C in turn, then what is left of B and A').toEqual(['a0', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
    tasks.get('a4')!.release();
    expect(await Promise.all([...tasks.values()].map((t) => t.result))).toEqual(names);
  });

  it('refuses a query beyond the per-caller queue or the queue in all with resource-exhausted, and admits the others', async () => {
    const queue = new AdmissionQueue(LIMITS);
    const started: string[] = [];
    const running = ['a1', 'a2', 'b1'].map((n) => task(queue, started, n[0].toUpperCase(), n));
    const waiting = ['a3', 'a4', 'a5'].map((n) => task(queue, started, 'A', n));
    const refused = queue.run('A', async () => 'a6');
    await expect(refused, "A's fourth waiting query").rejects.toMatchObject({
      kind: 'resource-exhausted',
      message: 'C1 has 3 queries of this caller waiting, at most 3; try later',
    });
    const others = ['b2', 'c1'].map((n) => task(queue, started, n[0].toUpperCase(), n));
    const full = queue.run('D', async () => 'd1');
    await expect(full, 'a sixth waiting query in all').rejects.toMatchObject({
      kind: 'resource-exhausted',
      message: 'C1 has 5 queries waiting, at most 5; try later',
    });
    await expect(full).rejects.toBeInstanceOf(FnnError);
    expect(queue.state()).toMatchObject({ running: 3, queued: 5 });
    for (const t of [...running, ...waiting, ...others]) t.release();
    expect(await Promise.all([...running, ...waiting, ...others].map((t) => t.result))).toEqual([
      'a1',
      'a2',
      'b1',
      'a3',
      'a4',
      'a5',
      'b2',
      'c1',
    ]);
  });

  it("ends a wait at the call's deadline with DEADLINE_EXCEEDED and leaves the queue as if it never came", async () => {
    vi.useFakeTimers();
    const queue = new AdmissionQueue({ running: 1, runningPerCaller: 1, queued: 5, queuedPerCaller: 5 });
    const started: string[] = [];
    const holder = task(queue, started, 'A', 'a1');
    const late = queue.run('B', async () => 'b1', { deadline: Date.now() + 1000 });
    const after = task(queue, started, 'C', 'c1');
    const caught = late.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(999);
    expect(queue.state().queued, 'still waiting before its deadline').toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    const error = (await caught) as AdmissionTimeout;
    expect(error).toBeInstanceOf(AdmissionTimeout);
    expect(error.code, 'toStatus forwards it as DEADLINE_EXCEEDED').toBe(Code.DEADLINE_EXCEEDED);
    expect(error.message).toBe('no place at C1 before the deadline (1 queries running, at most 1; 0 of this caller, at most 1)');
    expect(queue.state()).toMatchObject({ running: 1, queued: 1 });
    holder.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(started, 'the next waiting query gets the place').toEqual(['a1', 'c1']);
    after.release();
    expect(await Promise.all([holder.result, after.result])).toEqual(['a1', 'c1']);
    await expect(
      queue.run('B', async () => 'b2', { deadline: Date.now() - 1 }),
      'a free place is taken whatever the deadline',
    ).resolves.toBe('b2');
  });

  it('drops a waiting query whose caller hangs up, and refuses one whose deadline has passed before it could wait', async () => {
    const queue = new AdmissionQueue({ running: 1, runningPerCaller: 1, queued: 5, queuedPerCaller: 5 });
    const started: string[] = [];
    const holder = task(queue, started, 'A', 'a1');
    const hangUp = new AbortController();
    const left = queue.run('B', async () => 'b1', { signal: hangUp.signal });
    await expect(queue.run('C', async () => 'c0', { deadline: Date.now() - 1 })).rejects.toBeInstanceOf(AdmissionTimeout);
    hangUp.abort();
    await expect(left).rejects.toThrow('the caller left before its query was admitted');
    expect(queue.state()).toMatchObject({ running: 1, queued: 0 });
    holder.release();
    await holder.result;
    expect(started, 'the query of the caller who left never ran').toEqual(['a1']);
  });

  it('caps the queries of an unknown caller (no TLS) in all only', async () => {
    const queue = new AdmissionQueue(LIMITS);
    const started: string[] = [];
    const running = ['u1', 'u2', 'u3'].map((n) => task(queue, started, UNKNOWN_CALLER, n));
    const waiting = ['u4', 'u5', 'u6', 'u7', 'u8'].map((n) => task(queue, started, UNKNOWN_CALLER, n));
    await settle();
    expect(started, 'as many as running in all, beyond runningPerCaller').toEqual(['u1', 'u2', 'u3']);
    expect(queue.state().queued, 'as many waiting as queued in all, beyond queuedPerCaller').toBe(5);
    await expect(queue.run(UNKNOWN_CALLER, async () => 'u9')).rejects.toMatchObject({
      kind: 'resource-exhausted',
      message: 'C1 has 5 queries waiting, at most 5; try later',
    });
    for (const t of [...running, ...waiting]) t.release();
    expect(await Promise.all([...running, ...waiting].map((t) => t.result))).toEqual(['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8']);
  });

  it('frees the place of a query that fails', async () => {
    const queue = new AdmissionQueue({ running: 1, runningPerCaller: 1, queued: 5, queuedPerCaller: 5 });
    await expect(queue.run('A', () => Promise.reject(new Error('query failed')))).rejects.toThrow('query failed');
    await expect(queue.run('A', async () => 'next')).resolves.toBe('next');
    expect(queue.state()).toMatchObject({ running: 0, queued: 0 });
  });

  it('refuses limits that are not positive integers', () => {
    expect(() => new AdmissionQueue({ ...LIMITS, runningPerCaller: 0 })).toThrow(/runningPerCaller must be a positive integer/);
  });
});
