import { describe, expect, it } from 'vitest';
import { growthExponent } from './growth';

describe('growth exponent of query time against n', () => {
  it('recovers the exponent and coefficient of an exact power law', () => {
    const points = [1000, 2000, 5000, 10000].map((n) => ({ n, ms: 3 * n ** 0.4 }));
    const g = growthExponent(points)!;
    expect(g.exponent).toBeCloseTo(0.4, 10);
    expect(g.coefficient).toBeCloseTo(3, 8);
    expect(g.r2).toBeCloseTo(1, 10);
    expect(g.n).toEqual([1000, 2000, 5000, 10000]);
  });

  it('gives 1 for a linear scan and 0 for a flat time', () => {
    expect(growthExponent([100, 200, 400].map((n) => ({ n, ms: 7 * n })))!.exponent).toBeCloseTo(1, 10);
    const flat = growthExponent([100, 200, 400].map((n) => ({ n, ms: 50 })))!;
    expect(flat.exponent).toBeCloseTo(0, 12);
    expect(flat.r2).toBe(1);
  });

  it('is the least-squares slope on log-log when the points do not lie on a line', () => {
    // log2 n = 0, 1, 2 and log2 t = 0, 2, 2: slope 1 in log2, the same in any base; R² = 3/4.
    const g = growthExponent([
      { n: 1, ms: 1 },
      { n: 2, ms: 4 },
      { n: 4, ms: 4 },
    ])!;
    expect(g.exponent).toBeCloseTo(1, 12);
    expect(g.r2).toBeCloseTo(0.75, 12);
  });

  it('needs two distinct n and ignores non-positive times', () => {
    expect(growthExponent([])).toBeUndefined();
    expect(growthExponent([{ n: 500, ms: 10 }])).toBeUndefined();
    expect(
      growthExponent([
        { n: 500, ms: 10 },
        { n: 500, ms: 12 },
      ]),
    ).toBeUndefined();
    expect(
      growthExponent([
        { n: 500, ms: 10 },
        { n: 1000, ms: 0 },
      ]),
    ).toBeUndefined();
  });
});
