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
  distance: FamilyParams;
  bound: FamilyParams;
  /** The bound is shifted by this public amount so every slot stays non-negative. */
  boundShift: bigint;
  /** Slot width w in bits, and records per group G. */
  slotBits: number;
  groupSize: number;
}

/** The two families of a collection: the distance's d pixels and the bound's 2 values per block. */
export type Family = 'bound' | 'distance';
export const FAMILIES: readonly Family[] = ['distance', 'bound'];

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
): PackingParams {
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
  const maxDistance = BigInt(d) * M * M;
  const maxShiftedBound = 2n * BigInt(blocks) * maxEmbedding * maxEmbedding + 2n * boundShift;
  const slotBits =
    Math.max(
      distance.maskBits + 1, // B + t at C1 (one carry bit)
      bound.maskBits + 1,
      ALPHA_BITS + bitsOf(maxDistance) + 2, // alpha D + beta'
      // alpha (LB + Z) + gamma, with gamma = K^2 d_b beta - alpha Z < K^2 d_b (2^ALPHA_BITS + 1) (fast.ts, PackedMask)
      Math.max(ALPHA_BITS + bitsOf(maxShiftedBound), bitsOf(K * K * BigInt(blockSize)) + ALPHA_BITS + 1) + 1,
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
    distance,
    bound,
    boundShift,
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
