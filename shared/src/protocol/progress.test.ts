import { describe, expect, it } from 'vitest';
import { throttleProgress, type QueryProgress } from './progress';

const at = (phase: QueryProgress['phase'], done: number, total = 10): QueryProgress => ({ phase, done, total, rejected: 0 });

describe('throttleProgress', () => {
  it("passes one event per interval, but always a new phase and a phase's last event", () => {
    let t = 0;
    const sent: QueryProgress[] = [];
    const report = throttleProgress(
      (p) => sent.push(p),
      100,
      () => t,
    );
    report(at('lower-bounds', 0)); // first of its phase
    t = 10;
    report(at('lower-bounds', 1)); // too soon
    t = 99;
    report(at('lower-bounds', 2)); // too soon
    t = 110;
    report(at('lower-bounds', 3)); // an interval after the last one sent
    t = 115;
    report(at('lower-bounds', 10)); // the phase's end
    report(at('candidates', 0)); // a new phase
    t = 120;
    report(at('candidates', 4)); // too soon
    report(at('candidates', 10)); // the end
    expect(sent.map((p) => `${p.phase}:${p.done}`)).toEqual([
      'lower-bounds:0',
      'lower-bounds:3',
      'lower-bounds:10',
      'candidates:0',
      'candidates:10',
    ]);
  });
});
