// Guards what the demo promises about its bundled images (see
// demo/images/LICENSE.md): they decode as FNN images, and each query's plaintext
// nearest neighbour is the one the demo narrates.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePng } from '../shared/src/image/png';
import { plaintextNearest } from '../shared/src/reference';

const load = (dir: string) =>
  readdirSync(join(__dirname, dir))
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => ({ id: f, image: decodePng(readFileSync(join(__dirname, dir, f)), f) }));

describe('bundled demo images', () => {
  const stored = load('images');
  const records = stored.map(({ id, image }) => ({ id, pixels: image.pixels }));
  const query = (id: string) => load('queries').find((q) => q.id === id)!.image.pixels;

  it('are 24 stored slices and 2 queries, all 16 x 16 8-bit grayscale', () => {
    expect(stored).toHaveLength(24);
    for (const { image } of [...stored, ...load('queries')]) {
      expect(image).toMatchObject({ width: 16, height: 16, maxValue: 255 });
    }
  });

  it('find a stored copy of a query at distance 0', () => {
    const [nearest] = plaintextNearest(records, query('ch2-z106.png'), 1);
    expect(nearest).toMatchObject({ id: 'ch2-z106.png', distance: 0n });
  });

  it('find the adjacent stored slice for a slice that is not stored', () => {
    expect(stored.some((s) => s.id === 'ch2-z167.png')).toBe(false);
    const [first, second] = plaintextNearest(records, query('ch2-z167.png'), 2);
    expect(first.id).toBe('ch2-z166.png');
    expect(first.distance).toBeGreaterThan(0n);
    expect(second.distance).toBeGreaterThan(first.distance);
  });
});

describe('bundled 128 x 128 demo images (demo/mri128/LICENSE.md)', () => {
  const stored = load('mri128/images');
  const queries = load('mri128/queries');
  const records = stored.map(({ id, image }) => ({ id, pixels: image.pixels }));

  it('are the same 24 slices and 2 queries as the 16 x 16 set, at 128 x 128 8-bit', () => {
    expect(stored.map((s) => s.id)).toEqual(load('images').map((s) => s.id));
    expect(queries.map((q) => q.id)).toEqual(load('queries').map((q) => q.id));
    for (const { image } of [...stored, ...queries]) expect(image).toMatchObject({ width: 128, height: 128, maxValue: 255 });
  });

  it("find the held-out slice's adjacent stored slice first, and a stored copy at distance 0", () => {
    expect(stored.some((s) => s.id === 'ch2-z167.png')).toBe(false);
    const [first, second] = plaintextNearest(records, queries.find((q) => q.id === 'ch2-z167.png')!.image.pixels, 2);
    expect(first.id).toBe('ch2-z166.png');
    expect(second.distance).toBeGreaterThan(first.distance);
    expect(plaintextNearest(records, queries.find((q) => q.id === 'ch2-z106.png')!.image.pixels, 1)[0]).toMatchObject({
      id: 'ch2-z106.png',
      distance: 0n,
    });
  });
});
