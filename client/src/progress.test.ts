import { describe, expect, it } from 'vitest';
import { duration, progressBar, queryProgressBar } from './progress';

function fakeTerminal(isTTY = true) {
  const writes: string[] = [];
  return { isTTY, columns: 80, writes, write: (t: string) => (writes.push(t), true) };
}

describe('progressBar', () => {
  it('draws done/total, rate and ETA on a terminal, and steps aside for result lines', () => {
    const term = fakeTerminal();
    let t = 0;
    const bar = progressBar(4, 'records', true, term, () => t);
    // eslint-disable-next-line no-control-regex -- the bar's own escape sequence (ESC [ K: clear the line) is what is checked
    expect(term.writes.at(-1)).toMatch(/^\r\x1b\[K\[-+\] 0\/4 records .* ETA --$/);
    t = 2000;
    bar.tick();
    expect(term.writes.at(-1)).toMatch(/\[#+-+\] 1\/4 records {2}30\.0\/min {2}ETA 6s$/);
    const printed: string[] = [];
    bar.around(() => printed.push('line'));
    expect(printed).toEqual(['line']);
    expect(term.writes.slice(-2)[0]).toBe('\r\x1b[K'); // erased before the line, redrawn after
    t = 4000;
    bar.tick(3);
    expect(term.writes.at(-1)).toMatch(/4\/4 records {2}1\.0\/s {2}ETA 0s$/);
    bar.stop();
    expect(term.writes.at(-1)).toBe('\r\x1b[K');
  });

  it('is silent when disabled (--json) or when stderr is not a terminal', () => {
    for (const [term, enabled] of [
      [fakeTerminal(false), true],
      [fakeTerminal(true), false],
    ] as const) {
      const bar = progressBar(3, 'records', enabled, term);
      bar.tick();
      let ran = false;
      bar.around(() => (ran = true));
      bar.stop();
      expect([term.writes, ran]).toEqual([[], true]);
    }
  });

  it('formats durations', () => {
    expect([duration(5), duration(65), duration(3725)]).toEqual(['5s', '1m05s', '1h02m']);
  });

  it("draws a query's phase, done/total and rejected records as C1 reports them, and erases itself", () => {
    const term = fakeTerminal();
    let t = 0;
    const bar = queryProgressBar('groups', true, term, () => t);
    expect(term.writes.at(-1)).toBe('\r\x1b[Ksearching  0s');
    t = 3000;
    bar.show({ phase: 'lower-bounds', done: 2, total: 8, rejected: 0 });
    // eslint-disable-next-line no-control-regex -- the bar's own escape sequence (ESC [ K: clear the line) is what is checked
    expect(term.writes.at(-1)).toMatch(/^\r\x1b\[K\[#+-+\] lower bounds 2\/8 groups {2}3s$/);
    t = 5000;
    bar.show({ phase: 'candidates', done: 8, total: 8, rejected: 40 });
    expect(term.writes.at(-1)).toMatch(/\[#+\] candidates 8\/8 groups {2}40 records rejected {2}5s$/);
    bar.stop();
    expect(term.writes.at(-1)).toBe('\r\x1b[K');
  });

  it('draws no query progress with --json or when stderr is not a terminal', () => {
    for (const [term, enabled] of [
      [fakeTerminal(false), true],
      [fakeTerminal(true), false],
    ] as const) {
      const bar = queryProgressBar('records', enabled, term);
      bar.show({ phase: 'distances', done: 1, total: 3, rejected: 0 });
      bar.stop();
      expect(term.writes).toEqual([]);
    }
  });
});
