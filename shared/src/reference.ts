// The plaintext answer every encrypted protocol must reproduce exactly: same
// records, same order, same distances. Deliberately naive so that it is
// obviously right.

export interface PlaintextRecord {
  id: string;
  pixels: Uint16Array;
}

export interface PlaintextNeighbour {
  id: string;
  distance: bigint;
  /** Position in the records array, i.e. upload order; the tie-breaker. */
  index: number;
}

/**
 * Each term is below 2^32, so a run of 2^20 terms stays below 2^52 and is
 * exact in a Number; the runs are added as bigints because a whole 512 x 512
 * 16-bit image can reach about 2^50 and larger images pass 2^53.
 */
const TERMS_PER_EXACT_RUN = 1 << 20;

export function squaredDistance(a: Uint16Array, b: Uint16Array): bigint {
  if (a.length !== b.length) {
    throw new RangeError(`cannot compare images of ${a.length} and ${b.length} pixels`);
  }
  let total = 0n;
  for (let start = 0; start < a.length; start += TERMS_PER_EXACT_RUN) {
    const end = Math.min(a.length, start + TERMS_PER_EXACT_RUN);
    let run = 0;
    for (let i = start; i < end; i++) {
      const d = a[i] - b[i];
      run += d * d;
    }
    total += BigInt(run);
  }
  return total;
}

/**
 * The k nearest records to the query. Tie rule (shared with the protocols, see
 * protocol/ranking.ts): ascending distance, then ascending position in
 * `records`. Asking for more than there are returns them all.
 */
export function plaintextNearest(records: PlaintextRecord[], query: Uint16Array, k: number): PlaintextNeighbour[] {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a non-negative integer, got ${k}`);
  const scored = records.map((record, index) => ({
    id: record.id,
    distance: squaredDistance(record.pixels, query),
    index,
  }));
  scored.sort((x, y) => (x.distance < y.distance ? -1 : x.distance > y.distance ? 1 : x.index - y.index));
  return scored.slice(0, k);
}
