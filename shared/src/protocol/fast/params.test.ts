import { describe, expect, it } from 'vitest';
import { SPREAD_SCALE } from '../../encoding/lower-bound';
import { distanceScale, imageStats, lowerBoundInt } from '../../encoding/lower-bound';
import { squaredDistance } from '../../reference';
import { blockLowerBound, coarseEmbed, coarseLowerBound, dot, embed, sumOf } from './embedding';
import { shareQuery } from './doctor';
import { PackedMask } from './c1';
import {
  boundScale,
  broadcast,
  checkShares,
  chooseCoarseGrid,
  chooseGrid,
  MAX_SHARE_VALUE_BYTES,
  pack,
  packingParams,
  shareValue,
  unpack,
} from './params';

const bitsOf = (x: bigint) => x.toString(2).length;

describe('packing parameters', () => {
  it('pack and unpack are inverse for values that fit their slots', () => {
    const values = [0n, 1n, (1n << 99n) - 1n, 12345n];
    expect(unpack(pack(values, 100), 100, 4)).toEqual(values);
    expect(unpack(broadcast(7n, 30, 5), 30, 5)).toEqual([7n, 7n, 7n, 7n, 7n]);
  });

  it('2048-bit keys hold about a dozen 256x256 records per ciphertext', () => {
    const p8 = packingParams(2048, 256, 256, 255);
    const p16 = packingParams(2048, 512, 512, 65535);
    expect(p8.groupSize).toBeGreaterThanOrEqual(12);
    expect(p16.groupSize).toBeGreaterThanOrEqual(10);
    expect(p8.groupSize * p8.slotBits).toBeLessThanOrEqual(2046);
  });

  it('the grid divides the image into equal blocks (1 block when nothing divides)', () => {
    expect(chooseGrid(256, 256, 4)).toEqual({ rows: 4, cols: 4 });
    expect(chooseGrid(256, 256), '256x256 gets 8x8-pixel blocks').toEqual({ rows: 32, cols: 32 });
    expect(chooseGrid(64, 64), '64x64 gets 8x8-pixel blocks').toEqual({ rows: 8, cols: 8 });
    expect(chooseGrid(16, 16), 'small images keep at least a 4x4 grid').toEqual({ rows: 4, cols: 4 });
    expect(chooseGrid(30, 21)).toEqual({ rows: 3, cols: 3 });
    expect(chooseGrid(7, 13)).toEqual({ rows: 1, cols: 1 });
  });

  it('the coarse grid groups whole fine blocks, up to 2 per side (§3.5a)', () => {
    expect(chooseCoarseGrid({ rows: 32, cols: 32 }), '256x256: a 16x16 coarse grid').toEqual({ rows: 16, cols: 16 });
    expect(chooseCoarseGrid({ rows: 8, cols: 8 }), '64x64: 4x4').toEqual({ rows: 4, cols: 4 });
    expect(chooseCoarseGrid({ rows: 3, cols: 6 }), 'a side with no divisor up to 2 keeps its blocks').toEqual({ rows: 3, cols: 3 });
    expect(chooseCoarseGrid({ rows: 8, cols: 8 }, 4)).toEqual({ rows: 2, cols: 2 });
    expect(chooseCoarseGrid({ rows: 1, cols: 1 }), 'one block: the coarse level is the fine one').toEqual({ rows: 1, cols: 1 });
    const p = packingParams(2048, 256, 256, 255);
    expect([p.coarseRows, p.coarseCols, p.coarseFactor, p.coarse.dimension]).toEqual([16, 16, 4, 512]);
    expect(p.coarseShift).toBe(4n * p.boundShift);
    expect(boundScale(p, 'coarse')).toBe(4n * boundScale(p, 'bound'));
    expect(p.groupSize, 'the coarse family costs no record per ciphertext at 256x256').toBe(14);
    expect(() => packingParams(2048, 64, 64, 255, { rows: 8, cols: 8 }, { rows: 3, cols: 2 })).toThrow(/whole fine blocks/);
  });

  // The worst case: every pixel at its maximum, the largest d we accept, and
  // the extreme shares and masks. Every value that ever sits in a slot must fit.
  it.each([
    [512, 512, 65535],
    [256, 256, 255],
    [7, 13, 65535],
  ])('no slot overflows at the worst case %ix%i, max %i', (w, h, max) => {
    const p = packingParams(2048, w, h, max);
    const d = w * h;
    const M = BigInt(max);
    const slot = (x: bigint) => expect(bitsOf(x), `value of ${bitsOf(x)} bits in a ${p.slotBits}-bit slot`).toBeLessThan(p.slotBits);
    // Distance family: x at max, the doctor's share v at its maximum 2 O - 1.
    const vMax = 2n * p.distance.shareOffset - 1n;
    const innerMax = BigInt(d) * M * vMax;
    slot(innerMax + (1n << BigInt(p.distance.maskBits))); // B + t
    const recordConstant = BigInt(d) * M * M + 2n * p.distance.shareOffset * BigInt(d) * M;
    slot(recordConstant);
    const dMax = BigInt(d) * M * M;
    const alphaMax = (1n << 64n) - 1n;
    slot(alphaMax * dMax + alphaMax * (1n << 64n)); // alpha D + beta'
    // Bound family, computed on real extreme images.
    const full = new Uint16Array(d).fill(max);
    const board = Uint16Array.from({ length: d }, (_, i) => (i % 2 ? max : 0));
    for (const x of [full, board]) {
      const e = embed(x, p);
      const veMax = 2n * p.bound.shareOffset - 1n;
      slot(sumOf(e.vector) * veMax + (1n << BigInt(p.bound.maskBits)));
      slot(dot(e.vector, e.vector) + 2n * p.bound.shareOffset * sumOf(e.vector));
    }
    const lbShifted = blockLowerBound(full, new Uint16Array(d), p) + p.boundShift;
    expect(lbShifted >= 0n).toBe(true);
    const kScale = SPREAD_SCALE * SPREAD_SCALE * BigInt(p.blockSize);
    // gamma = K^2 d_b beta - alpha Z with beta <= alpha Z / (K^2 d_b) + 2^64 (fast.ts, PackedMask).
    const gammaMax = kScale * ((1n << 64n) + 1n);
    slot(alphaMax * (lbShifted + p.boundShift) + gammaMax);
    // Coarse family (§3.5a), the same checks: C2's inner product plus mask, the record constant, the masked bound.
    for (const x of [full, board]) {
      const e = coarseEmbed(embed(x, p), p);
      const vcMax = 2n * p.coarse.shareOffset - 1n;
      slot(sumOf(e.vector) * vcMax + (1n << BigInt(p.coarse.maskBits)));
      slot(dot(e.vector, e.vector) + 2n * p.coarse.shareOffset * sumOf(e.vector));
    }
    const coarseShifted = coarseLowerBound(full, new Uint16Array(d), p) + p.coarseShift;
    expect(coarseShifted >= 0n).toBe(true);
    // gamma_c = m gamma < K^2 d_b m (2^64 + 1)
    const gammaCoarseMax = boundScale(p, 'coarse') * ((1n << 64n) + 1n);
    slot(alphaMax * (coarseShifted + p.coarseShift) + gammaCoarseMax);
    // The masks as C1 draws them: both gammas positive and below their worst case.
    for (let t = 0; t < 20; t++) {
      const mask = new PackedMask(p);
      expect(mask.gamma > 0n && mask.gamma < gammaMax, 'gamma in (0, K^2 d_b (2^64 + 1))').toBe(true);
      expect(mask.gammaCoarse > 0n && mask.gammaCoarse < gammaCoarseMax, 'gamma_c in (0, K^2 d_c (2^64 + 1))').toBe(true);
      expect(mask.gammaCoarse).toBe(BigInt(p.coarseFactor) * mask.gamma);
    }
  });

  it('the block-wise bound never exceeds K^2 d_b D and beats the whole-image bound on structured images', () => {
    const p = packingParams(2048, 16, 16, 255);
    let tighter = 0;
    for (let t = 0; t < 300; t++) {
      const x = Uint16Array.from({ length: 256 }, (_, i) => (i >> 4 < 8 ? 200 : 20) + Math.floor(Math.random() * 30));
      const y = Uint16Array.from({ length: 256 }, (_, i) => ((i & 15) < 8 ? 200 : 20) + Math.floor(Math.random() * 30));
      const lb = blockLowerBound(x, y, p);
      const scaled = SPREAD_SCALE * SPREAD_SCALE * BigInt(p.blockSize) * squaredDistance(x, y);
      expect(lb <= scaled, `block bound ${lb} above ${scaled}`).toBe(true);
      if (lb * BigInt(p.blockRows * p.blockCols) > lowerBoundInt(imageStats(x), imageStats(y))) tighter++;
      expect(distanceScale(256)).toBe(SPREAD_SCALE * SPREAD_SCALE * 256n);
    }
    expect(tighter).toBeGreaterThan(250);
  });
});

describe('query shares are checked against the collection (checkShares, shareValue)', () => {
  const p = packingParams(512, 8, 8, 255);
  const zeros = (n: number) => Array.from({ length: n }, () => 0n);
  const valid = () => ({ distance: zeros(p.distance.dimension), bound: zeros(p.bound.dimension), coarse: zeros(p.coarse.dimension) });

  it("accepts every share an honest doctor makes, at the extremes of the image's range", async () => {
    const encrypt = async (v: bigint[]) => v; // the constants are not checked here
    for (const value of [0, 255]) {
      const { forC1, forC2 } = await shareQuery(new Uint16Array(64).fill(value), p, encrypt);
      expect(() => checkShares(p, forC1.shares), `C1's share of a constant-${value} image`).not.toThrow();
      expect(() => checkShares(p, forC2), `C2's share of a constant-${value} image`).not.toThrow();
    }
  });

  it('accepts values up to 2 shareOffset - 1 and refuses 2 shareOffset, negative values and wrong lengths', () => {
    const top = valid();
    top.distance[0] = 2n * p.distance.shareOffset - 1n;
    top.bound[top.bound.length - 1] = 2n * p.bound.shareOffset - 1n;
    expect(() => checkShares(p, top)).not.toThrow();
    const cases: [string, ReturnType<typeof valid>][] = [
      ['a distance value of 2 shareOffset', { ...valid(), distance: [2n * p.distance.shareOffset, ...zeros(p.distance.dimension - 1)] }],
      ['a bound value of 2 shareOffset', { ...valid(), bound: [...zeros(p.bound.dimension - 1), 2n * p.bound.shareOffset] }],
      ['a negative value', { ...valid(), distance: [-1n, ...zeros(p.distance.dimension - 1)] }],
      ['one distance value short', { ...valid(), distance: zeros(p.distance.dimension - 1) }],
      ['one bound value too many', { ...valid(), bound: zeros(p.bound.dimension + 1) }],
      ['a coarse value of 2 shareOffset', { ...valid(), coarse: [2n * p.coarse.shareOffset, ...zeros(p.coarse.dimension - 1)] }],
      ['one coarse value short', { ...valid(), coarse: zeros(p.coarse.dimension - 1) }],
    ];
    for (const [what, shares] of cases) expect(() => checkShares(p, shares), what).toThrow(/query share/);
  });

  it('reads a share value of up to MAX_SHARE_VALUE_BYTES exactly and refuses a longer one before parsing it', () => {
    expect(shareValue(Uint8Array.from([1, 0]))).toBe(256n);
    expect(shareValue(new Uint8Array(MAX_SHARE_VALUE_BYTES).fill(255))).toBe((1n << BigInt(8 * MAX_SHARE_VALUE_BYTES)) - 1n);
    expect(() => shareValue(new Uint8Array(MAX_SHARE_VALUE_BYTES + 1))).toThrow('query share value too large');
  });
});
