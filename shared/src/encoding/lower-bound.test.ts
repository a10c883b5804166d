import { describe, expect, it } from 'vitest';
import { distanceScale, imageStats, isqrt, lowerBoundInt } from './lower-bound';
import { squaredDistance } from '../reference';

const image = (d: number, f: (i: number) => number) => Uint16Array.from({ length: d }, (_, i) => f(i));
const randomImage = (d: number, max: number) => image(d, () => Math.floor(Math.random() * (max + 1)));

function expectBoundHolds(x: Uint16Array, y: Uint16Array) {
  const bound = lowerBoundInt(imageStats(x), imageStats(y));
  const scaled = distanceScale(x.length) * squaredDistance(x, y);
  expect(bound <= scaled, `LBint ${bound} exceeds K^2 d D ${scaled}`).toBe(true);
}

describe('isqrt', () => {
  it('is the exact floor square root, including around perfect squares and huge values', () => {
    for (let n = 0n; n < 2000n; n++) {
      const r = isqrt(n);
      expect(r * r <= n && (r + 1n) * (r + 1n) > n).toBe(true);
    }
    const big = (1n << 200n) + 12345n;
    const r = isqrt(big);
    expect(r * r <= big && (r + 1n) * (r + 1n) > big).toBe(true);
    const square = 123456789123456789n ** 2n;
    expect(isqrt(square)).toBe(123456789123456789n);
    expect(isqrt(square - 1n)).toBe(123456789123456788n);
  });

  it('refuses negative input', () => {
    expect(() => isqrt(-1n)).toThrow(RangeError);
  });
});

describe('the integer lower bound never exceeds the true scaled distance', () => {
  it('holds for constant images (zero spread)', () => {
    for (const [a, b] of [
      [0, 0],
      [0, 255],
      [7, 8],
      [65535, 0],
      [65535, 65535],
    ])
      expectBoundHolds(
        image(64, () => a),
        image(64, () => b),
      );
  });

  it('holds for identical images, where the distance is 0', () => {
    for (const max of [1, 255, 65535]) {
      const x = randomImage(100, max);
      expectBoundHolds(x, Uint16Array.from(x));
      expect(lowerBoundInt(imageStats(x), imageStats(x))).toBeLessThanOrEqual(0n);
    }
  });

  it('holds for extreme images: checkerboards of 0 and the maximum, and their inverses', () => {
    for (const max of [255, 65535]) {
      const board = image(256, (i) => ((i + (i >> 4)) % 2 ? max : 0));
      const inverse = board.map((v) => max - v);
      expectBoundHolds(board, inverse);
      expectBoundHolds(
        board,
        image(256, () => max),
      );
      expectBoundHolds(
        board,
        image(256, () => 0),
      );
      expectBoundHolds(
        image(256, (i) => (i === 0 ? max : 0)),
        image(256, () => 0),
      );
    }
  });

  it('holds for permutations of the same pixels (equal sum and spread, distance > 0)', () => {
    const x = randomImage(97, 65535);
    const y = Uint16Array.from(x).reverse();
    expectBoundHolds(x, y);
  });

  it('holds on 3000 random pairs of mixed sizes and depths, and is often tight enough to reject', () => {
    let useful = 0;
    for (let t = 0; t < 3000; t++) {
      const d = 1 + Math.floor(Math.random() * 300);
      const max = [1, 3, 255, 4095, 65535][t % 5];
      const x = randomImage(d, max);
      const y = t % 7 === 0 ? x.map((v) => Math.min(max, v + 1)) : randomImage(d, Math.floor(max / (1 + (t % 3))));
      expectBoundHolds(x, y);
      if (lowerBoundInt(imageStats(x), imageStats(y)) > 0n) useful++;
    }
    expect(useful).toBeGreaterThan(1000);
  });
});
