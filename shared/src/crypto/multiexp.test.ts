import { describe, expect, it } from 'vitest';
// @ts-expect-error TS1479 under "module": "node16"; see the same import in paillier.ts
import { modPow } from 'bigint-crypto-utils';
import { randomBelow, randomBits } from './random';
import { valuesToFixedBlob } from './codec';
import { bestWindow, multiExp, multiExpFixed } from './multiexp';

const naive = (bases: bigint[], exps: bigint[], m: bigint) => bases.reduce((acc, b, i) => (acc * modPow(b, exps[i], m)) % m, 1n);

describe('multiExp (bucket method)', () => {
  it('equals the product of separate exponentiations for many sizes and exponent widths', () => {
    const m = (1n << 521n) - 1n;
    for (const [n, bits] of [
      [1, 8],
      [2, 1],
      [7, 48],
      [33, 57],
      [200, 64],
      [50, 130],
    ] as const) {
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

  it('reads stored bytes as they are: a column cut from a larger buffer, wider than its values, or a plain Uint8Array', () => {
    const m = (1n << 521n) - 1n;
    const n = 70;
    const bases = Array.from({ length: n }, (_, i) => (i === 0 ? m - 1n : randomBelow(m)));
    const exps = Array.from({ length: n }, (_, i) => (i === 1 ? 0n : randomBits(49)));
    const want = naive(bases, exps, m);
    const width = 70; // a 521-bit modulus needs 66 bytes: 4 leading zero bytes each
    const stored = Buffer.concat([Buffer.alloc(3 * width, 0xff), valuesToFixedBlob(bases, width), Buffer.alloc(width, 0xff)]);
    const column = { bytes: stored.subarray(3 * width, (3 + n) * width), width };
    const shares = { bytes: new Uint8Array(valuesToFixedBlob(exps, 9)), width: 9 };
    expect(multiExpFixed(column, shares, m)).toBe(want);
    expect(multiExpFixed(column, { bytes: Buffer.alloc(n * 9), width: 9 }, m), 'all exponents zero').toBe(1n);
  });

  it('refuses bytes that are not whole values, a count mismatch, and a stored base not below the modulus', () => {
    const m = 1000003n * 999983n;
    const one = (v: bigint, width: number) => ({ bytes: valuesToFixedBlob([v], width), width });
    expect(() => multiExpFixed({ bytes: Buffer.alloc(7), width: 4 }, one(1n, 1), m)).toThrow(/whole number of bases/);
    expect(() => multiExpFixed({ bytes: Buffer.alloc(8), width: 4 }, one(1n, 1), m)).toThrow(/one exponent per base/);
    expect(() => multiExpFixed(one(m, 8), one(3n, 1), m)).toThrow(/not below the modulus/);
  });

  it('picks wider windows for more terms', () => {
    expect(bestWindow(65536, 57)).toBeGreaterThan(bestWindow(16, 57));
  });
});
