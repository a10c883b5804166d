import { describe, expect, it } from 'vitest';
import { modPow } from 'bigint-crypto-utils';
import { randomBelow, randomBits } from './random';
import { bestWindow, multiExp } from './multiexp';

const naive = (bases: bigint[], exps: bigint[], m: bigint) =>
  bases.reduce((acc, b, i) => (acc * modPow(b, exps[i], m)) % m, 1n);

describe('multiExp (bucket method)', () => {
  it('equals the product of separate exponentiations for many sizes and exponent widths', () => {
    const m = (1n << 521n) - 1n;
    for (const [n, bits] of [[1, 8], [2, 1], [7, 48], [33, 57], [200, 64], [50, 130]] as const) {
      const bases = Array.from({ length: n }, () => randomBelow(m));
      const exps = Array.from({ length: n }, () => randomBits(bits));
      expect(multiExp(bases, exps, m), `n=${n} bits=${bits}`).toBe(naive(bases, exps, m));
    }
  });

  it('handles zero exponents, exponent 1 and repeated bases', () => {
    const m = 1000003n * 999983n;
    const bases = [5n, 5n, 7n, 11n];
    const exps = [0n, 1n, 0n, 3n];
    expect(multiExp(bases, exps, m)).toBe(naive(bases, exps, m));
    expect(multiExp(bases, [0n, 0n, 0n, 0n], m)).toBe(1n);
    expect(multiExp([], [], m)).toBe(1n);
  });

  it('refuses negative exponents and mismatched lengths', () => {
    expect(() => multiExp([2n], [-1n], 7n)).toThrow(RangeError);
    expect(() => multiExp([2n, 3n], [1n], 7n)).toThrow(RangeError);
  });

  it('picks wider windows for more terms', () => {
    expect(bestWindow(65536, 57)).toBeGreaterThan(bestWindow(16, 57));
  });
});
