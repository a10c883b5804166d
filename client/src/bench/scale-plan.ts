// What `npm run bench:scale` runs: the n of each image size, which held-out
// queries, and whether the next upload fits the time budget and the disk.
// Pure, so the skipping rule has a unit test: an upload that does not fit is
// left out with the reason, never run part-way nor extrapolated.

import { duration } from './report';

/** Issue 11's points: n at 64x64 and at 256x256. */
export const DEFAULT_N: Readonly<Record<number, readonly number[]>> = {
  64: [1000, 2000, 5000, 10000],
  256: [500, 1000, 2000],
};

/** The n of each size: `--n` for every size when given, else the issue's. */
export function nPerSize(sizes: readonly number[], n: readonly number[] | undefined): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const size of sizes) {
    const list = n ?? DEFAULT_N[size];
    if (!list) throw new Error(`no default n for ${size}x${size}: give --n`);
    out.set(
      size,
      [...new Set(list)].sort((a, b) => a - b),
    );
  }
  return out;
}

/** `count` items spread evenly through the list (it is ordered by volume, axis and slice: a spread samples all of them). */
export function spread<T>(items: readonly T[], count: number): T[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
  if (count > items.length) throw new RangeError(`only ${items.length} to choose from, not ${count}`);
  return Array.from({ length: count }, (_, i) => items[Math.floor(((i + 0.5) * items.length) / count)]);
}

/**
 * `count` items with every kind as evenly represented as the count allows
 * (the manifest alternates between-slices and shifted-window queries, so a
 * plain spread of 3 of 108 would take one kind only), each kind's share
 * spread through its own items. Kinds in first-seen order; the first kinds
 * get the extra one when the count does not divide.
 */
export function spreadByKind<T>(items: readonly T[], count: number, kindOf: (item: T) => string): T[] {
  if (count > items.length) throw new RangeError(`only ${items.length} to choose from, not ${count}`);
  const kinds = new Map<string, T[]>();
  for (const item of items) kinds.set(kindOf(item), [...(kinds.get(kindOf(item)) ?? []), item]);
  const groups = [...kinds.values()];
  // Shares by round-robin, skipping a kind once it has no more items.
  const shares = groups.map(() => 0);
  for (let given = 0; given < count;) {
    for (let k = 0; k < groups.length && given < count; k++) {
      if (shares[k] < groups[k].length) {
        shares[k]++;
        given++;
      }
    }
  }
  return groups.flatMap((g, k) => (shares[k] ? spread(g, shares[k]) : []));
}

/**
 * Images uploaded first at a size, alone, to measure the upload rate there
 * before the rest is estimated from it. Small enough to cost little, large
 * enough to span a few groups (G is 12 to 14 at 2048 bits).
 */
export const PROBE_IMAGES = 50;

export interface UploadEstimate {
  /** Images the point still needs. */
  extra: number;
  /** Measured at this size (the last upload, or the probe); undefined before any. */
  msPerImage?: number;
  /** Both servers' bytes per image at this size, from the last point; undefined before any. */
  bytesPerImage?: number;
  /** Free bytes where the databases are. */
  freeBytes: number;
  budgetSeconds: number;
}

/** Why the upload must not run, or undefined when it fits (or cannot be estimated yet: the probe then measures it). */
export function uploadRefusal(e: UploadEstimate): string | undefined {
  if (e.msPerImage !== undefined) {
    const ms = e.msPerImage * e.extra;
    if (ms > e.budgetSeconds * 1000)
      return `uploading ${e.extra} more images is estimated at ${duration(ms)} (${duration(e.msPerImage)} per image, measured at this size) > the ${e.budgetSeconds} s upload budget`;
  }
  if (e.bytesPerImage !== undefined) {
    const bytes = e.bytesPerImage * e.extra;
    // A tenth kept free: SQLite's WAL and the checkpoint need room beyond the pages themselves.
    if (bytes > e.freeBytes * 0.9)
      return `${e.extra} more images would take an estimated ${gb(bytes)} at the two servers, more than 90% of the ${gb(e.freeBytes)} free`;
  }
  return undefined;
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
