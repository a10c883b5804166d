import { describe, expect, it } from 'vitest';
import { SPREAD_SCALE } from '../../encoding/lower-bound';
import { distanceScale, imageStats, lowerBoundInt } from '../../encoding/lower-bound';
import { squaredDistance } from '../../reference';
import { blockLowerBound, dot, embed, sumOf } from './embedding';
import { broadcast, chooseGrid, pack, packingParams, unpack } from './params';

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
  });

  it('the block-wise bound never exceeds K^2 d_b D and beats the whole-image bound on structured images', () => {
    const p = packingParams(2048, 16, 16, 255);
    let tighter = 0;
    for (let t = 0; t < 300; t++) {
      const x = Uint16Array.from({ length: 256 }, (_, i) => ((i >> 4) < 8 ? 200 : 20) + Math.floor(Math.random() * 30));
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
