import { describe, expect, it } from 'vitest';
import { concurrencyLimit } from './concurrency';

/** A task that runs until released, recording when it starts. */
function gate(started: string[], name: string) {
  let release!: (value: string) => void;
  let fail!: (error: Error) => void;
  const done = new Promise<string>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return { task: () => (started.push(name), done), release: () => release(name), fail: () => fail(new Error(name)) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('concurrencyLimit', () => {
  it('runs at most max tasks at once, starts the waiting ones in order, and hands a place on when a task fails', async () => {
    const limit = concurrencyLimit(2);
    const started: string[] = [];
    const gates = ['a', 'b', 'c', 'd', 'e'].map((n) => gate(started, n));
    const results = gates.map((g) => limit(g.task).catch((e: Error) => `failed ${e.message}`));
    await settle();
    expect(started, 'two start, three wait').toEqual(['a', 'b']);
    gates[1].fail();
    await settle();
    expect(started, 'a failed task frees its place for the first waiting one').toEqual(['a', 'b', 'c']);
    // A task arriving now queues behind the waiting ones instead of taking the next free place.
    const late = gate(started, 'late');
    const lateResult = limit(late.task);
    gates[0].release();
    await settle();
    expect(started, 'd goes before the late task').toEqual(['a', 'b', 'c', 'd']);
    gates[2].release();
    gates[3].release();
    await settle();
    expect(started, 'then e and the late one, never more than two running').toEqual(['a', 'b', 'c', 'd', 'e', 'late']);
    gates[4].release();
    late.release();
    expect(await Promise.all([...results, lateResult])).toEqual(['a', 'failed b', 'c', 'd', 'e', 'late']);
  });

  it('refuses a limit below 1', () => {
    expect(() => concurrencyLimit(0)).toThrow(RangeError);
  });
});
