import { describe, expect, it } from 'vitest';
import { squaredDistance } from '../../reference';
import { PackedMask } from './c1';
import { shareQuery } from './doctor';
import { blockLowerBound, coarseLowerBound } from './embedding';
import { boundScale, packingParams, unpack, type PackingParams } from './params';
import { groupPlaintexts } from './records';

// The bound cascade (docs/PROTOCOLS.md §3.5a): coarse <= m * fine <= K^2 d_b m D and
// fine <= K^2 d_b D, in the integers the protocol computes, on inputs chosen to be
// hard for the bounds and their rounding: constant, identical, extreme (0 and
// maxValue), checkerboards, blocks whose statistics are permuted inside a coarse
// block (the coarse level sees nothing), equal shifts in every block (Cauchy-Schwarz
// tight), and random images, at several sizes and grids.

const image = (d: number, f: (i: number) => number) => Uint16Array.from({ length: d }, (_, i) => f(i));
const randomImage = (d: number, max: number) => image(d, () => Math.floor(Math.random() * (max + 1)));

/** Pairs of images hard for the bounds at this shape. */
function adversarialPairs(p: PackingParams): [string, Uint16Array, Uint16Array][] {
  const { width, height, maxValue: M } = p;
  const d = width * height;
  const constant = (v: number) => new Uint16Array(d).fill(v);
  const board = image(d, (i) => (((i % width) + Math.floor(i / width)) % 2 ? M : 0));
  const inverse = board.map((v) => M - v);
  const x = randomImage(d, M);
  // Each fine block constant at a level depending on its block; y swaps levels between neighbouring blocks.
  const bh = height / p.blockRows;
  const bw = width / p.blockCols;
  const blockOf = (i: number) => ({ br: Math.floor(Math.floor(i / width) / bh), bc: Math.floor((i % width) / bw) });
  const levels = image(d, (i) => {
    const { br, bc } = blockOf(i);
    return ((br * 7 + bc * 3) % 5) * Math.floor(M / 4);
  });
  const swapped = image(d, (i) => {
    const { br, bc } = blockOf(i);
    return ((br * 7 + (bc ^ 1) * 3) % 5) * Math.floor(M / 4);
  });
  const shift = Math.max(1, Math.floor(M / 50));
  const shifted = x.map((v) => Math.min(M, v + shift));
  return [
    ['constant 0 vs 0', constant(0), constant(0)],
    ['constant 0 vs maxValue', constant(0), constant(M)],
    ['constant maxValue vs maxValue', constant(M), constant(M)],
    ['constant 1 vs 0', constant(1), constant(0)],
    ['identical random', x, Uint16Array.from(x)],
    ['identical checkerboard', board, Uint16Array.from(board)],
    ['checkerboard vs its inverse', board, inverse],
    ['checkerboard vs constant maxValue / 2', board, constant(Math.floor(M / 2))],
    ['checkerboard vs 0', board, constant(0)],
    ['block levels vs the same levels swapped', levels, swapped],
    ['random vs random shifted in every block', x, shifted],
    ['random vs random', randomImage(d, M), randomImage(d, M)],
    ['random vs random', randomImage(d, M), randomImage(d, M)],
  ];
}

const shapes: [string, PackingParams][] = [
  ['16x16, 4x4 grid, 2x2 coarse', packingParams(2048, 16, 16, 255)],
  ['16x16, 4x4 grid, 1x1 coarse (m = 16)', packingParams(2048, 16, 16, 255, { rows: 4, cols: 4 }, { rows: 1, cols: 1 })],
  ['64x64, 8x8 grid, 4x4 coarse', packingParams(2048, 64, 64, 255)],
  ['64x64, 8x8 grid, 4x2 coarse', packingParams(2048, 64, 64, 255, { rows: 8, cols: 8 }, { rows: 4, cols: 2 })],
  ['64x64 16-bit, 16x16 grid, 4x4 coarse', packingParams(2048, 64, 64, 65535, { rows: 16, cols: 16 }, { rows: 4, cols: 4 })],
  ['30x21 16-bit, 3x3 grid, 1x1 coarse (m = 9)', packingParams(2048, 30, 21, 65535, { rows: 3, cols: 3 }, { rows: 1, cols: 1 })],
  ['7x13 16-bit, one block (m = 1)', packingParams(2048, 7, 13, 65535)],
  ['256x256, 32x32 grid, 16x16 coarse', packingParams(2048, 256, 256, 255)],
];

/**
 * The shifted bounds as the protocol's packed arithmetic yields them in each slot:
 * record constant - 2 <column, share u + share v> + query constant (§3.5), from the
 * owner's packed plaintexts and the doctor's shares and constants, unencrypted.
 */
async function packedBounds(x: Uint16Array, y: Uint16Array, p: PackingParams) {
  const plain = groupPlaintexts([x, null], p);
  const q = await shareQuery(y, p, async (v) => v);
  const slot0 = (packed: bigint) => unpack(packed, p.slotBits, 2)[0];
  const value = (columns: bigint[], constant: bigint, u: bigint[], v: bigint[], queryConstant: bigint) =>
    slot0(constant) - 2n * columns.reduce((acc, c, i) => acc + slot0(c) * (u[i] + v[i]), 0n) + queryConstant;
  return {
    fine: value(plain.embedding, plain.boundConstant, q.forC1.shares.bound, q.forC2.bound, q.forC1.boundConstant),
    coarse: value(plain.coarseEmbedding, plain.coarseConstant, q.forC1.shares.coarse, q.forC2.coarse, q.forC1.coarseConstant),
  };
}

describe('the bound cascade: coarse <= m fine <= K^2 d_b m |x - y|^2 (§3.5a)', () => {
  it.each(shapes)('at adversarial and random inputs, %s', async (_, p) => {
    const m = BigInt(p.coarseFactor);
    // The doctor's shares cost about 2.5 s per query at 256x256 here: there the packed arithmetic is checked on a few pairs.
    const packedPairs =
      p.width * p.height > 4096 ? new Set(['checkerboard vs its inverse', 'random vs random shifted in every block']) : undefined;
    for (const [what, x, y] of adversarialPairs(p)) {
      for (const [a, b] of [
        [x, y],
        [y, x],
      ]) {
        const D = squaredDistance(a, b);
        const fine = blockLowerBound(a, b, p);
        const coarse = coarseLowerBound(a, b, p);
        expect(fine <= boundScale(p, 'bound') * D, `${what}: fine ${fine} above K^2 d_b D = ${boundScale(p, 'bound') * D}`).toBe(true);
        expect(coarse <= m * fine, `${what}: coarse ${coarse} above m fine = ${m * fine}`).toBe(true);
        expect(coarse <= boundScale(p, 'coarse') * D, `${what}: coarse above K^2 d_b m D`).toBe(true);
        expect(coarse >= -p.coarseShift && fine >= -p.boundShift, `${what}: a bound below its shift`).toBe(true);
        if (packedPairs && (!packedPairs.has(what) || a !== x)) continue;
        const packed = await packedBounds(a, b, p);
        expect(packed.fine, `${what}: the packed fine bound is LB + Z`).toBe(fine + p.boundShift);
        expect(packed.coarse, `${what}: the packed coarse bound is LB_c + Z_c`).toBe(coarse + p.coarseShift);
        expect(packed.coarse < 1n << BigInt(p.slotBits), `${what}: the coarse slot fits`).toBe(true);
      }
    }
  });

  it('is tight where it should be: far-apart constants are bounded near the distance at every level', () => {
    const p = packingParams(2048, 64, 64, 255);
    const d = 64 * 64;
    const x = new Uint16Array(d).fill(200);
    const y = new Uint16Array(d).fill(10);
    const D = squaredDistance(x, y);
    const coarse = coarseLowerBound(x, y, p);
    const fine = blockLowerBound(x, y, p);
    // Constants: no spread, so only the -B slack of the rounding is lost.
    expect(boundScale(p, 'bound') * D - fine).toBe(BigInt(p.blockRows * p.blockCols));
    expect(boundScale(p, 'coarse') * D - coarse).toBe(BigInt(p.coarseFactor * p.blockRows * p.blockCols));
  });

  it("C2's masked comparison at each level is the plain one: alpha LB_L + s_L beta > s_L (alpha D + beta) iff LB_L > s_L D", () => {
    const p = packingParams(2048, 64, 64, 255);
    const mask = new PackedMask(p);
    const pairs = adversarialPairs(p);
    // A k-th best distance from each other image of the set, so both outcomes of the comparison occur.
    for (const [what, x, y] of pairs)
      for (const [, other] of pairs) {
        const Dk = squaredDistance(other, y);
        const levels = [
          ['coarse', coarseLowerBound(x, y, p), p.coarseShift, mask.gammaCoarse],
          ['bound', blockLowerBound(x, y, p), p.boundShift, mask.gamma],
        ] as const;
        for (const [level, lb, shift, gamma] of levels) {
          const s = boundScale(p, level);
          const masked = mask.alpha * (lb + shift) + gamma;
          expect(masked, `${what}: masked ${level} bound`).toBe(mask.alpha * lb + s * mask.beta);
          expect(masked > s * (mask.alpha * Dk + mask.beta), `${what}: ${level} comparison`).toBe(lb > s * Dk);
        }
      }
  });
});
