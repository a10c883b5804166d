import { SPREAD_SCALE } from '../../encoding/lower-bound';
import { invalidInput } from '../../errors';
import { residueFromBytes } from '../../wire/codec';

// The packed two-server protocol ("fast"; docs/PROTOCOLS.md §3.1, from
// SCHEME.md's "a design that is not slow"). G records share one plaintext per coordinate, each in a slot of w
// bits: P_i = sum_j x_i^(j) 2^(w j). Everything computed on packed values must
// stay inside its slot, or a carry would corrupt the neighbour slot and the
// answer would no longer be exact. This module derives w and G from the public
// facts of a collection and is the one place that reasons about slot overflow.

/** Statistical hiding of query shares and combination masks, in bits. */
export const STATISTICAL_BITS = 40;
/** Bits of the order-preserving multiplier alpha. */
export const ALPHA_BITS = 64;

const bitsOf = (x: bigint) => (x <= 0n ? 0 : x.toString(2).length);

export interface FamilyParams {
  /** Coordinates of the vectors compared (d pixels, or 2 per block for the bound). */
  dimension: number;
  /** Largest coordinate value of a record or query. */
  maxCoordinate: bigint;
  /** Query shares: u uniform in [0, offset), v = y + offset - u, so both are in [0, 2 offset). */
  shareOffset: bigint;
  /** Bits of the largest inner product <x, share>. */
  innerProductBits: number;
  /** The combination mask t is uniform in [0, 2^maskBits). */
  maskBits: number;
}

export interface PackingParams {
  width: number;
  height: number;
  maxValue: number;
  /** Blocks of the lower bound: a grid of blockRows x blockCols equal tiles. */
  blockRows: number;
  blockCols: number;
  /** Pixels per block, d_b. */
  blockSize: number;
  /** The coarse level (§3.5a): a grid of coarseRows x coarseCols tiles, each the union of coarseFactor fine blocks. */
  coarseRows: number;
  coarseCols: number;
  /** Fine blocks per coarse block, m; the coarse bound is compared at the scale K^2 d_b m. */
  coarseFactor: number;
  distance: FamilyParams;
  bound: FamilyParams;
  coarse: FamilyParams;
  /** The bound is shifted by this public amount so every slot stays non-negative. */
  boundShift: bigint;
  /** The same for the coarse bound: m times boundShift. */
  coarseShift: bigint;
  /** Slot width w in bits, and records per group G. */
  slotBits: number;
  groupSize: number;
}

/**
 * The three families of a collection: the distance's d pixels, the (fine) bound's 2 values per block
 * and the coarse bound's 2 values per coarse block (§3.5a).
 */
export type Family = 'bound' | 'coarse' | 'distance';
export const FAMILIES: readonly Family[] = ['distance', 'bound', 'coarse'];

/**
 * A query's shares (§3.4) checked against the collection before anyone keeps
 * or uses them: one value per coordinate of each family, each in
 * [0, 2 shareOffset) as an honest doctor's are. A share held at C2 for minutes
 * is then never larger than the collection makes it.
 */
export function checkShares<T extends Record<Family, bigint[]>>(p: PackingParams, shares: T, what = 'the query share'): T {
  for (const family of FAMILIES) {
    const values = shares[family];
    const f = p[family];
    if (values.length !== f.dimension) throw invalidInput(`${what} does not match the collection (${family} family)`);
    const limit = 2n * f.shareOffset;
    for (const v of values) if (v < 0n || v >= limit) throw invalidInput(`${what} has a value out of range (${family} family)`);
  }
  return shares;
}

/** Bytes of one value of a doctor's query share: far above any share the packing gives (2 * 2^(bits of a coordinate + 40)); bounds the parsing before checkShares bounds the value exactly. */
export const MAX_SHARE_VALUE_BYTES = 64;

/** One value of a doctor's query share, read from the wire. */
export function shareValue(bytes: Uint8Array): bigint {
  if (bytes.length > MAX_SHARE_VALUE_BYTES) throw invalidInput('query share value too large');
  return residueFromBytes(bytes);
}

/** A group's packed columns (§3.3): one ciphertext per coordinate of each family. */
export function checkColumnCounts(p: PackingParams, columns: Record<Family, unknown[]>, what: string): void {
  for (const family of FAMILIES)
    if (columns[family].length !== p[family].dimension)
      throw invalidInput(
        `${what}: packed columns of the wrong size (${columns[family].length} ${family} columns, the collection has ${p[family].dimension})`,
      );
}

/**
 * Block side the grid aims at, in pixels. Measured on the real MRI of `make
 * dataset` (500 slices, 3 held-out queries, groups visited best-first): at
 * 256x256 a 4x4 grid leaves 6-14 of 42 groups to search, 32x32 (8x8-pixel
 * blocks) 1-2 of 39; the bound's own cost grows with the blocks (2 coordinates
 * each, for every group) but stays near one group's distances at 32x32.
 */
export const TARGET_BLOCK_SIDE = 8;

/**
 * Fine blocks per side of a coarse block (§3.5a). Measured in-process at 64x64, n = 500 of the scale
 * collection, 2048-bit keys, 3 held-out queries: 2 per side (a 4x4 coarse grid, m = 4) pruned 6-8 of
 * 36 groups at the coarse level and cost 17.1, 9.5, 8.9 s of CPU per query; 4 per side (2x2, m = 16)
 * pruned 2-4 and cost 18.1, 11.9, 13.4 s (the fine bound over every group: 15.1, 10.0, 10.7 s). At
 * 256x256 it gives a 16x16 coarse grid, 512 coordinates per group instead of 2048.
 */
export const COARSE_FACTOR = 2;

/** The coarse grid over a fine grid: the largest divisor of each side of the fine grid <= COARSE_FACTOR groups blocks. */
export function chooseCoarseGrid(fine: { rows: number; cols: number }, factor = COARSE_FACTOR): { rows: number; cols: number } {
  const largestDivisor = (n: number) => {
    for (let k = Math.min(factor, n); k >= 1; k--) if (n % k === 0) return k;
    return 1;
  };
  return { rows: fine.rows / largestDivisor(fine.rows), cols: fine.cols / largestDivisor(fine.cols) };
}

/** The grid for an image: about TARGET_BLOCK_SIDE-pixel blocks, never fewer than 4 x 4 tiles. */
export function defaultGridTarget(width: number, height: number): number {
  return Math.max(4, Math.floor(Math.min(width, height) / TARGET_BLOCK_SIDE));
}

/** The largest grid of at most `target` x `target` equal tiles that divides the image. */
export function chooseGrid(width: number, height: number, target = defaultGridTarget(width, height)): { rows: number; cols: number } {
  const largestDivisor = (n: number) => {
    for (let k = Math.min(target, n); k >= 1; k--) if (n % k === 0) return k;
    return 1;
  };
  return { rows: largestDivisor(height), cols: largestDivisor(width) };
}

function family(dimension: number, maxCoordinate: bigint): FamilyParams {
  const shareOffset = 1n << BigInt(bitsOf(maxCoordinate) + STATISTICAL_BITS);
  // <x, v> <= d * max * (2 offset)
  const innerProductBits = bitsOf(BigInt(dimension) * maxCoordinate * 2n * shareOffset);
  return { dimension, maxCoordinate, shareOffset, innerProductBits, maskBits: innerProductBits + STATISTICAL_BITS };
}

/**
 * Slot width and group size for a collection, or an error if the key is too
 * small to hold even one slot. Every quantity that ever sits in a slot is
 * bounded here; params.test.ts checks the bounds at the worst case.
 */
export function packingParams(
  keyBits: number,
  width: number,
  height: number,
  maxValue: number,
  grid = chooseGrid(width, height),
  coarseGrid = chooseCoarseGrid(grid),
): PackingParams {
  if (grid.rows % coarseGrid.rows !== 0 || grid.cols % coarseGrid.cols !== 0)
    throw new RangeError('the coarse grid must group whole fine blocks');
  const d = width * height;
  const blocks = grid.rows * grid.cols;
  const blockSize = d / blocks;
  const K = SPREAD_SCALE;
  const M = BigInt(maxValue);
  const distance = family(d, M);
  // Embedding coordinates: K S_b <= K d_b M, and T_b <= K d_b M / 2.
  const maxEmbedding = K * BigInt(blockSize) * M;
  const bound = family(2 * blocks, maxEmbedding);
  // LB >= -sum_b (2 (T_bx + T_bq) + 1) >= -blocks (2 K d_b M + 1)
  const boundShift = BigInt(blocks) * (2n * K * BigInt(blockSize) * M + 1n);
  // The coarse embedding sums m fine coordinates: K S_c <= K d_c M and sum T_b <= K d_c M / 2, d_c = m d_b.
  const coarseFactor = (grid.rows / coarseGrid.rows) * (grid.cols / coarseGrid.cols);
  const coarseBlocks = coarseGrid.rows * coarseGrid.cols;
  const maxCoarseEmbedding = BigInt(coarseFactor) * maxEmbedding;
  const coarse = family(2 * coarseBlocks, maxCoarseEmbedding);
  // LB_c >= -m sum_b (2 (T_bx + T_bq) + 1) >= -m Z (§3.5a)
  const coarseShift = BigInt(coarseFactor) * boundShift;
  const maxDistance = BigInt(d) * M * M;
  const maxShiftedBound = 2n * BigInt(blocks) * maxEmbedding * maxEmbedding + 2n * boundShift;
  const maxShiftedCoarse = 2n * BigInt(coarseBlocks) * maxCoarseEmbedding * maxCoarseEmbedding + 2n * coarseShift;
  const coarseScale = K * K * BigInt(blockSize * coarseFactor);
  const slotBits =
    Math.max(
      distance.maskBits + 1, // B + t at C1 (one carry bit)
      bound.maskBits + 1,
      coarse.maskBits + 1,
      ALPHA_BITS + bitsOf(maxDistance) + 2, // alpha D + beta'
      // alpha (LB + Z) + gamma, with gamma = K^2 d_b beta - alpha Z < K^2 d_b (2^ALPHA_BITS + 1) (c1.ts, PackedMask)
      Math.max(ALPHA_BITS + bitsOf(maxShiftedBound), bitsOf(K * K * BigInt(blockSize)) + ALPHA_BITS + 1) + 1,
      // alpha (LB_c + Z_c) + m gamma, with m gamma < K^2 d_b m (2^ALPHA_BITS + 1) (§3.5a)
      Math.max(ALPHA_BITS + bitsOf(maxShiftedCoarse), bitsOf(coarseScale) + ALPHA_BITS + 1) + 1,
    ) + 1;
  // The packed integer must stay below N/2 (signed decoding) with room to spare.
  const groupSize = Math.floor((keyBits - 2) / slotBits);
  if (groupSize < 1) throw new RangeError(`a ${keyBits}-bit key cannot hold one ${slotBits}-bit slot`);
  return {
    width,
    height,
    maxValue,
    blockRows: grid.rows,
    blockCols: grid.cols,
    blockSize,
    coarseRows: coarseGrid.rows,
    coarseCols: coarseGrid.cols,
    coarseFactor,
    distance,
    bound,
    coarse,
    boundShift,
    coarseShift,
    slotBits,
    groupSize,
  };
}

/** sum_j values_j 2^(w j) */
export function pack(values: bigint[], slotBits: number): bigint {
  let out = 0n;
  for (let j = values.length - 1; j >= 0; j--) out = (out << BigInt(slotBits)) + values[j];
  return out;
}

export function unpack(packed: bigint, slotBits: number, count: number): bigint[] {
  const mask = (1n << BigInt(slotBits)) - 1n;
  const out: bigint[] = [];
  for (let j = 0; j < count; j++) out.push((packed >> BigInt(slotBits * j)) & mask);
  return out;
}

/** The same value in every slot of a group: sum_j v 2^(w j). */
export function broadcast(value: bigint, slotBits: number, count: number): bigint {
  return pack(new Array<bigint>(count).fill(value), slotBits);
}

/** The two bound levels, cheapest first (§3.5a): 'coarse' over every group, 'bound' (the fine bound) for the survivors. */
export type BoundLevel = 'coarse' | 'bound';

/** The scale at which a level's bound is compared with a squared distance: K^2 d_b (fine), K^2 d_b m (coarse). */
export function boundScale(p: PackingParams, level: BoundLevel): bigint {
  return SPREAD_SCALE * SPREAD_SCALE * BigInt(p.blockSize * (level === 'coarse' ? p.coarseFactor : 1));
}
