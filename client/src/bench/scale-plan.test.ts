import { describe, expect, it } from 'vitest';
import { DEFAULT_N, nPerSize, spread, spreadByKind, uploadRefusal } from './scale-plan';

describe('scale plan: which n at which size', () => {
  it("takes the issue's n by default and --n for every size when given, sorted, once each", () => {
    expect(nPerSize([64, 256], undefined)).toEqual(
      new Map([
        [64, [1000, 2000, 5000, 10000]],
        [256, [500, 1000, 2000]],
      ]),
    );
    expect(nPerSize([64, 256], [200, 100, 200])).toEqual(
      new Map([
        [64, [100, 200]],
        [256, [100, 200]],
      ]),
    );
    expect(DEFAULT_N[64]).toEqual([1000, 2000, 5000, 10000]);
  });

  it('refuses a size with no default n unless --n is given', () => {
    expect(() => nPerSize([32], undefined)).toThrow(/no default n for 32x32/);
    expect(nPerSize([32], [10]).get(32)).toEqual([10]);
  });
});

describe('scale plan: held-out queries spread through the list', () => {
  it('takes items evenly spaced, the first and last quarter included', () => {
    const items = Array.from({ length: 108 }, (_, i) => i);
    expect(spread(items, 3)).toEqual([18, 54, 90]);
    expect(spread(items, 108)).toEqual(items);
  });

  it('takes every kind as evenly as the count allows, each spread through its own items', () => {
    // As the manifest: kinds alternate, so a plain spread of 3 would take "a" only.
    const items = Array.from({ length: 108 }, (_, i) => ({ i, kind: i % 2 ? 'b' : 'a' }));
    expect(spread(items, 3).map((x) => x.kind)).toEqual(['a', 'a', 'a']);
    const chosen = spreadByKind(items, 3, (x) => x.kind);
    expect(chosen.map((x) => x.kind)).toEqual(['a', 'a', 'b']);
    expect(chosen.map((x) => x.i)).toEqual([26, 80, 55]);
    expect(spreadByKind(items, 4, (x) => x.kind).map((x) => x.kind)).toEqual(['a', 'a', 'b', 'b']);
  });

  it('gives a kind with few items what it has and the rest to the others', () => {
    const items = [{ kind: 'rare' }, ...Array.from({ length: 9 }, () => ({ kind: 'common' }))];
    expect(spreadByKind(items, 5, (x) => x.kind).map((x) => x.kind)).toEqual(['rare', 'common', 'common', 'common', 'common']);
    expect(() => spreadByKind(items, 11, (x) => x.kind)).toThrow(/only 10/);
  });

  it('refuses more than there are and a count below one', () => {
    expect(() => spread([1, 2], 3)).toThrow(/only 2/);
    expect(() => spread([1, 2], 0)).toThrow(/positive/);
  });
});

describe('scale plan: the upload budget', () => {
  const base = { extra: 5000, freeBytes: 1e12, budgetSeconds: 3600 };

  it('lets a point run whose estimated upload fits, and one with no measurement yet (the probe measures it)', () => {
    expect(uploadRefusal({ ...base, msPerImage: 700 })).toBeUndefined(); // 3500 s
    expect(uploadRefusal(base)).toBeUndefined();
  });

  it('leaves out a point whose estimated upload exceeds the budget, and says by how much', () => {
    const why = uploadRefusal({ ...base, msPerImage: 800 }); // 4000 s
    expect(why).toMatch(/uploading 5000 more images is estimated at 1\.11 h/);
    expect(why).toMatch(/> the 3600 s upload budget/);
  });

  it('leaves out a point whose estimated bytes would fill the disk', () => {
    expect(uploadRefusal({ ...base, bytesPerImage: 2e6, freeBytes: 11.2e9 })).toBeUndefined(); // 10 GB of 90% of 11.2
    expect(uploadRefusal({ ...base, bytesPerImage: 2e6, freeBytes: 11e9 })).toMatch(
      /10\.0 GB at the two servers, more than 90% of the 11\.0 GB free/,
    );
  });
});
