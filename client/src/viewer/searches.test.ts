import { describe, expect, it } from 'vitest';
import type { QueryProgress } from '@fnn/shared';
import { CliError } from '../output';
import { Searches, type SearchEvent } from './searches';

const limits = { running: 1, waiting: 2, kept: 3, listenersPerSearch: 1, listeners: 2 };

/** A search the test finishes by hand. */
function controlled() {
  let finish!: (r: { n: number }) => void;
  let fail!: (e: unknown) => void;
  let report!: (p: QueryProgress) => void;
  const run = (onProgress: (p: QueryProgress) => void) =>
    new Promise<{ n: number }>((resolve, reject) => {
      report = onProgress;
      finish = resolve;
      fail = reject;
    });
  return { run, finish: (n: number) => finish({ n }), fail: (e: unknown) => fail(e), report: (p: QueryProgress) => report(p) };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('the viewer searches', () => {
  it('runs at most `running` at once, reports progress and the result, and replays the outcome to a late listener', async () => {
    const searches = new Searches<{ n: number }>({ ...limits, listenersPerSearch: 2 });
    const a = controlled();
    const b = controlled();
    const first = searches.start(a.run);
    const second = searches.start(b.run);
    expect([first.state, second.state]).toEqual(['running', 'waiting']);
    const seen: SearchEvent[] = [];
    searches.listen(first, (e) => seen.push(e));
    a.report({ phase: 'distances', done: 1, total: 2, rejected: 0 });
    a.finish(7);
    await settle();
    expect(seen.map((e) => e.type)).toEqual(['queued', 'progress', 'result']);
    expect(second.state).toBe('running');
    const late: SearchEvent[] = [];
    searches.listen(first, (e) => late.push(e));
    expect(late.at(-1)).toEqual({ type: 'result', result: { n: 7 } });
    b.fail(new CliError('unavailable', 'C1 is down'));
    await settle();
    expect(second.latest.at(-1)).toEqual({ type: 'failure', error: 'C1 is down', exitCode: 5 });
  });

  it('refuses a search past the waiting bound, and a listener past its bounds', async () => {
    const searches = new Searches<{ n: number }>(limits);
    const a = controlled();
    const first = searches.start(a.run);
    searches.start(controlled().run);
    expect(() => searches.start(controlled().run)).toThrow(/already under way or waiting/);
    expect(searches.listen(first, () => {})).toBeDefined();
    expect(searches.listen(first, () => {})).toBeUndefined();
    a.finish(1);
    await settle();
    // Finished ones make room, oldest first, once `kept` are held.
    searches.start(controlled().run);
    expect(searches.get(first.id)).toBeDefined();
  });

  it('forgets the oldest finished search to keep at most `kept`', async () => {
    const searches = new Searches<{ n: number }>({ ...limits, waiting: 5 });
    const runs = [controlled(), controlled(), controlled()];
    const started = runs.map((r) => searches.start(r.run));
    for (const [i, r] of runs.entries()) {
      r.finish(i);
      await settle();
    }
    searches.start(controlled().run);
    expect(searches.get(started[0].id)).toBeUndefined();
    expect(searches.get(started[2].id)?.result).toEqual({ n: 2 });
  });
});
