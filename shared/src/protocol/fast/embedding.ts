import { imageStats, lowerBoundInt, SPREAD_SCALE } from '../../encoding/lower-bound';
import type { PackingParams } from './params';

// The lower bound of the fast protocol (docs/PROTOCOLS.md §3.2), block-wise: split the image into a grid
// of equal blocks, bound each block's distance with the integer form of
// encoding/lower-bound.ts, and add. The sum is still <= K^2 d_b |x - y|^2 (each
// block's bound is below its own share of the distance), and much tighter on
// real images than the whole-image bound (the one-block case).
//
// As vectors: e = (K S_1, T_1, ..., K S_B, T_B), so that
//   LB = |e_x - e_y|^2 - 2 sum_b (T_bx + T_by) - B,
// which the packed machinery evaluates exactly like a squared distance.

export function blockPixels(pixels: ArrayLike<number>, p: PackingParams): Uint16Array[] {
  const bh = p.height / p.blockRows;
  const bw = p.width / p.blockCols;
  const blocks: Uint16Array[] = [];
  for (let br = 0; br < p.blockRows; br++)
    for (let bc = 0; bc < p.blockCols; bc++) {
      const out = new Uint16Array(bh * bw);
      for (let r = 0; r < bh; r++) for (let c = 0; c < bw; c++) out[r * bw + c] = pixels[(br * bh + r) * p.width + bc * bw + c];
      blocks.push(out);
    }
  return blocks;
}

export interface Embedding {
  /** (K S_b, T_b) for every block. */
  vector: bigint[];
  /** sum_b T_b */
  spreadSum: bigint;
}

export function embed(pixels: ArrayLike<number>, p: PackingParams): Embedding {
  const vector: bigint[] = [];
  let spreadSum = 0n;
  for (const block of blockPixels(pixels, p)) {
    const s = imageStats(block);
    vector.push(SPREAD_SCALE * s.sum, s.spread);
    spreadSum += s.spread;
  }
  return { vector, spreadSum };
}

/**
 * The coarse embedding (docs/PROTOCOLS.md §3.5a), derived from the fine one: coarse block c (row-major
 * over the coarse grid) gets (sum_{b in c} K S_b, sum_{b in c} T_b), the sums over its m fine blocks.
 * By Cauchy-Schwarz |E_x - E_y|^2 <= m |e_x - e_y|^2 exactly in integers, which is what keeps the
 * coarse bound below m times the fine one. spreadSum is the fine one's (sum_b T_b).
 */
export function coarseEmbed(fine: Embedding, p: PackingParams): Embedding {
  const rowsPer = p.blockRows / p.coarseRows;
  const colsPer = p.blockCols / p.coarseCols;
  const vector = new Array<bigint>(2 * p.coarseRows * p.coarseCols).fill(0n);
  for (let br = 0; br < p.blockRows; br++)
    for (let bc = 0; bc < p.blockCols; bc++) {
      const b = br * p.blockCols + bc;
      const c = Math.floor(br / rowsPer) * p.coarseCols + Math.floor(bc / colsPer);
      vector[2 * c] += fine.vector[2 * b];
      vector[2 * c + 1] += fine.vector[2 * b + 1];
    }
  return { vector, spreadSum: fine.spreadSum };
}

/**
 * The plaintext coarse bound LB_c = |E_x - E_y|^2 - m (2 sum_b (T_bx + T_by) + B) <= m LB <= K^2 d_b m D
 * (§3.5a), in the integers the protocol computes; for tests.
 */
export function coarseLowerBound(x: ArrayLike<number>, y: ArrayLike<number>, p: PackingParams): bigint {
  const ex = coarseEmbed(embed(x, p), p);
  const ey = coarseEmbed(embed(y, p), p);
  const m = BigInt(p.coarseFactor);
  const blocks = BigInt(p.blockRows * p.blockCols);
  const diff = ex.vector.reduce((acc, v, i) => acc + (v - ey.vector[i]) ** 2n, 0n);
  return diff - m * (2n * (ex.spreadSum + ey.spreadSum) + blocks);
}

/** The plaintext block-wise bound, for tests and for choosing the grid. */
export function blockLowerBound(x: ArrayLike<number>, y: ArrayLike<number>, p: PackingParams): bigint {
  const bx = blockPixels(x, p);
  const by = blockPixels(y, p);
  return bx.reduce((acc, block, b) => acc + lowerBoundInt(imageStats(block), imageStats(by[b])), 0n);
}

export const dot = (a: bigint[], b: bigint[]) => a.reduce((acc, x, i) => acc + x * b[i], 0n);
export const sumOf = (a: bigint[]) => a.reduce((acc, x) => acc + x, 0n);
