import { describe, expect, it } from 'vitest';
import { plaintextNearest, squaredDistance } from './reference';

const px = (...values: number[]) => Uint16Array.from(values);

describe('squaredDistance', () => {
  it('sums squared pixel differences', () => {
    expect(squaredDistance(px(1, 2, 3), px(4, 0, 3))).toBe(13n);
    expect(squaredDistance(px(), px())).toBe(0n);
  });

  it('is symmetric and ignores Uint16 wrap-around', () => {
    expect(squaredDistance(px(0), px(65535))).toBe(65535n * 65535n);
    expect(squaredDistance(px(65535), px(0))).toBe(65535n * 65535n);
  });

  it('is exact beyond 2^53', () => {
    // 65535^2 * n passes 2^53 once n > 2^21 + 2^6; the extra 1 is lost by any
    // float accumulation at this size.
    const n = (1 << 21) + (1 << 16);
    const a = new Uint16Array(n).fill(65535);
    const b = new Uint16Array(n);
    b[n - 1] = 65534; // last difference 1 instead of 65535
    const expected = BigInt(n - 1) * 65535n * 65535n + 1n;
    expect(expected > 2n ** 53n).toBe(true);
    expect(squaredDistance(a, b)).toBe(expected);
  });

  it('refuses images of different sizes', () => {
    expect(() => squaredDistance(px(1, 2), px(1))).toThrow(RangeError);
  });
});

describe('plaintextNearest', () => {
  const records = [
    { id: 'a', pixels: px(10, 10) }, // distance 200 to query (0,0)
    { id: 'b', pixels: px(1, 0) }, //   1
    { id: 'c', pixels: px(0, 1) }, //   1, ties with b, uploaded later
    { id: 'd', pixels: px(0, 0) }, //   0
    { id: 'e', pixels: px(1, 0) }, //   1, ties again
  ];
  const query = px(0, 0);

  it('orders by distance, ties by upload order', () => {
    expect(plaintextNearest(records, query, 5)).toEqual([
      { id: 'd', distance: 0n, index: 3 },
      { id: 'b', distance: 1n, index: 1 },
      { id: 'c', distance: 1n, index: 2 },
      { id: 'e', distance: 1n, index: 4 },
      { id: 'a', distance: 200n, index: 0 },
    ]);
  });

  it('cuts a tie at k by upload order', () => {
    expect(plaintextNearest(records, query, 2).map((n) => n.id)).toEqual(['d', 'b']);
    expect(plaintextNearest(records, query, 3).map((n) => n.id)).toEqual(['d', 'b', 'c']);
  });

  it('keeps duplicate IDs apart by position', () => {
    const dup = [
      { id: 'same', pixels: px(5) },
      { id: 'same', pixels: px(5) },
    ];
    expect(plaintextNearest(dup, px(5), 2).map((n) => n.index)).toEqual([0, 1]);
  });

  it('returns all records when k exceeds their number, none for k = 0 or no records', () => {
    expect(plaintextNearest(records, query, 99)).toHaveLength(5);
    expect(plaintextNearest(records, query, 0)).toEqual([]);
    expect(plaintextNearest([], query, 3)).toEqual([]);
  });

  it('does not reorder the caller’s array', () => {
    const copy = records.slice();
    plaintextNearest(copy, query, 5);
    expect(copy.map((r) => r.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('refuses a bad k and mismatched sizes', () => {
    expect(() => plaintextNearest(records, query, -1)).toThrow(RangeError);
    expect(() => plaintextNearest(records, query, 1.5)).toThrow(RangeError);
    expect(() => plaintextNearest(records, px(0, 0, 0), 1)).toThrow(RangeError);
  });

  it('compares distances beyond 2^53 exactly', () => {
    const n = (1 << 21) + (1 << 16);
    const far = new Uint16Array(n).fill(65535);
    const lessFar = new Uint16Array(n).fill(65535);
    lessFar[0] = 65534; // one unit closer in one pixel: d^2 differs by 2*65535 - 1
    const result = plaintextNearest(
      [
        { id: 'far', pixels: far },
        { id: 'lessFar', pixels: lessFar },
      ],
      new Uint16Array(n),
      2,
    );
    expect(result.map((r) => r.id)).toEqual(['lessFar', 'far']);
    expect(result[1].distance - result[0].distance).toBe(2n * 65535n - 1n);
  });
});
