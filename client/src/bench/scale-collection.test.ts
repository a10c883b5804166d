import { describe, expect, it } from 'vitest';
import {
  QUERY_SHIFT,
  gridOrigins,
  heldOutSlices,
  inCollection,
  nearest,
  occupancy,
  queryWindows,
  shuffled,
  sliceOf,
  squaredDistance,
  toEightBit,
  windowAt,
  type Volume8,
} from './scale-collection';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('scale collection: window grid', () => {
  it('centres the grid and steps by the stride while the window stays inside', () => {
    expect(gridOrigins(301, 256, 16)).toEqual([6, 22, 38]); // centre 22
    expect(gridOrigins(370, 256, 24)).toEqual([9, 33, 57, 81, 105]);
    expect(gridOrigins(256, 256, 16)).toEqual([0]);
  });

  it('gives a side shorter than the window one centred, negative origin', () => {
    expect(gridOrigins(181, 256, 16)).toEqual([-38]);
  });

  it('cuts a window anywhere, zero outside the image', () => {
    const img = { width: 3, height: 2, maxValue: 255, pixels: Uint16Array.from([1, 2, 3, 4, 5, 6]) };
    expect(Array.from(windowAt(img, 1, 0, 2).pixels)).toEqual([2, 3, 5, 6]);
    expect(Array.from(windowAt(img, -1, -1, 3).pixels)).toEqual([0, 0, 0, 0, 1, 2, 0, 4, 5]);
    expect(Array.from(windowAt(img, 5, 0, 2).pixels)).toEqual([0, 0, 0, 0]);
  });

  it('measures anatomy as the share of pixels above the threshold', () => {
    expect(occupancy({ width: 2, height: 2, maxValue: 255, pixels: Uint16Array.from([0, 6, 7, 100]) }, 6)).toBe(0.5);
  });
});

describe('scale collection: held-out queries', () => {
  it('holds out odd slices spread through the brain, each between two brain slices, none touching', () => {
    const brain = range(40, 277);
    const held = heldOutSlices(brain, 3);
    expect(held).toHaveLength(3);
    for (const k of held) {
      expect(k % 2).toBe(1);
      expect(brain).toContain(k - 1);
      expect(brain).toContain(k + 1);
    }
    expect(held[0]).toBeGreaterThan(80);
    expect(held[2]).toBeLessThan(240);
    for (let i = 1; i < held.length; i++) expect(held[i] - held[i - 1]).toBeGreaterThan(2);
  });

  it('refuses when too few slices can be held out', () => {
    expect(() => heldOutSlices([10, 11, 12], 2)).toThrow(/only 1 of 2/);
  });

  it('never puts a query in the collection, and puts a collection image next to every query', () => {
    const [width, height, window, stride] = [301, 370, 256, 16];
    const brain = range(45, 277);
    const held = heldOutSlices(brain, 3);
    for (const sliceStep of [1, 2] as const) {
      const stored = new Set<string>();
      const key = (k: number, l: number, t: number) => `${k}/${l}/${t}`;
      for (const k of brain.filter((k) => inCollection(k, sliceStep, held))) {
        for (const t of gridOrigins(height, window, stride)) for (const l of gridOrigins(width, window, stride)) stored.add(key(k, l, t));
      }
      for (const k of held) {
        const [between, shifted] = queryWindows(k, width, height, window, stride);
        for (const q of [between, shifted]) expect(stored.has(key(q.at.slice, q.at.left, q.at.top))).toBe(false);
        expect(between.kind).toBe('between-slices');
        expect(stored.has(key(k - 1, between.at.left, between.at.top))).toBe(true);
        expect(stored.has(key(k + 1, between.at.left, between.at.top))).toBe(true);
        expect(shifted.kind).toBe('shifted-window');
        expect(stored.has(key(shifted.at.slice, shifted.at.left - QUERY_SHIFT.right, shifted.at.top - QUERY_SHIFT.down))).toBe(true);
      }
    }
  });

  it('refuses a stride so small that the shifted query would land on the grid', () => {
    expect(() => queryWindows(11, 64, 64, 32, 2)).toThrow(/stride 2/);
  });
});

describe('scale collection: volumes and pixels', () => {
  // 2 x 3 x 4 voxels, value = its index (x fastest).
  const v: Volume8 = { nx: 2, ny: 3, nz: 4, values: Uint8Array.from(range(0, 23)) };

  it('cuts slices as bench/make-dataset.mjs does: anterior or superior at the top', () => {
    expect(sliceOf(v, 'ax', 1)).toEqual({ width: 2, height: 3, maxValue: 255, pixels: Uint16Array.from([10, 11, 8, 9, 6, 7]) });
    expect(Array.from(sliceOf(v, 'cor', 0).pixels)).toEqual([18, 19, 12, 13, 6, 7, 0, 1]);
    expect(Array.from(sliceOf(v, 'sag', 1).pixels)).toEqual([23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1]);
    expect(() => sliceOf(v, 'ax', 4)).toThrow(RangeError);
  });

  it('keeps 8-bit integer values and maps any other volume linearly onto 0..255', () => {
    expect(toEightBit([0, 130, 7])).toEqual({ values: Uint8Array.from([0, 130, 7]), note: 'native integer values 0..130, unchanged' });
    const mapped = toEightBit([0, 0.5, 383.175537109375, 191.5877685546875]);
    expect(Array.from(mapped.values)).toEqual([0, 0, 255, 128]);
    expect(mapped.note).toMatch(/mapped linearly/);
  });
});

describe('scale collection: nearest neighbour and order', () => {
  it('finds the exact nearest (the first of equals), despite stopping early on far candidates', () => {
    const q = [10, 10, 10];
    const c = [
      [0, 0, 0],
      [10, 11, 12],
      [9, 10, 11],
      [10, 10, 12],
      [200, 0, 0],
    ];
    expect(nearest(q, c)).toEqual({ index: 2, distance: 2 });
    expect(squaredDistance(q, c[3])).toBe(4);
    expect(
      nearest(q, [
        [10, 10, 12],
        [12, 10, 10],
      ]),
    ).toEqual({ index: 0, distance: 4 });
  });

  it('shuffles to a fixed permutation', () => {
    const items = range(0, 99);
    const a = shuffled(items, 20240602);
    expect(a).toEqual(shuffled(items, 20240602));
    expect([...a].sort((x, y) => x - y)).toEqual(items);
    expect(a).not.toEqual(items);
    expect(shuffled(items, 1)).not.toEqual(a);
  });
});
