// The pure parts of `make dataset`'s scale collection (bench/make-scale-collection.mjs,
// docs/BENCHMARKS.md "The scale collection"): slicing a volume, the window
// grid, which slices are held out and where the queries' windows sit, and the
// brute-force nearest neighbour that the manifest records for every query.
// Kept here (built to client/dist) so that the held-out rule has a unit test.

import type { GrayImage } from '@fnn/shared';

/** A volume as 8-bit values, x fastest (NIfTI order). */
export interface Volume8 {
  nx: number;
  ny: number;
  nz: number;
  values: Uint8Array;
}

export type Axis = 'ax' | 'cor' | 'sag';
export const AXES: readonly Axis[] = ['ax', 'cor', 'sag'];

/**
 * Slice k along an axis, oriented as bench/make-dataset.mjs does for the
 * usual RAS storage order: axial rows run anterior -> posterior, coronal and
 * sagittal rows superior -> inferior; axial and coronal columns follow x,
 * sagittal columns run anterior -> posterior.
 */
export function sliceCount(v: Volume8, axis: Axis): number {
  return axis === 'ax' ? v.nz : axis === 'cor' ? v.ny : v.nx;
}

export function sliceOf(v: Volume8, axis: Axis, k: number): GrayImage {
  const { nx, ny, nz, values } = v;
  if (!Number.isInteger(k) || k < 0 || k >= sliceCount(v, axis)) throw new RangeError(`no ${axis} slice ${k}`);
  const [width, height] = axis === 'ax' ? [nx, ny] : axis === 'cor' ? [nx, nz] : [ny, nz];
  const pixels = new Uint16Array(width * height);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const at =
        axis === 'ax'
          ? c + nx * (ny - 1 - r + ny * k)
          : axis === 'cor'
            ? c + nx * (k + ny * (nz - 1 - r))
            : k + nx * (ny - 1 - c + ny * (nz - 1 - r));
      pixels[r * width + c] = values[at];
    }
  }
  return { width, height, maxValue: 255, pixels };
}

/**
 * Real-valued voxels as 8-bit integers. Integer volumes within 0..255 keep
 * their values (as bench/make-dataset.mjs does); any other volume is mapped
 * linearly from [min, max] onto 0..255, rounded to nearest, so the whole
 * scale collection has one pixel depth (8-bit: the cheaper packing).
 */
export function toEightBit(voxels: ArrayLike<number>): { values: Uint8Array; note: string } {
  let min = Infinity;
  let max = -Infinity;
  let integral = true;
  for (let i = 0; i < voxels.length; i++) {
    const v = voxels[i];
    if (v < min) min = v;
    if (v > max) max = v;
    if (integral && !Number.isInteger(v)) integral = false;
  }
  const values = new Uint8Array(voxels.length);
  if (integral && min >= 0 && max <= 255) {
    for (let i = 0; i < voxels.length; i++) values[i] = voxels[i];
    return { values, note: `native integer values 0..${max}, unchanged` };
  }
  const scale = max > min ? 255 / (max - min) : 0;
  for (let i = 0; i < voxels.length; i++) values[i] = Math.round((voxels[i] - min) * scale);
  return { values, note: `values mapped linearly from [${min}, ${max}] onto 0..255, rounded` };
}

/** The size x size window whose top-left corner is (left, top); 0 outside the image. */
export function windowAt(img: GrayImage, left: number, top: number, size: number): GrayImage {
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(left) || !Number.isInteger(top)) {
    throw new RangeError(`bad window ${size} at (${left}, ${top})`);
  }
  const pixels = new Uint16Array(size * size);
  const x0 = Math.max(0, -left);
  const x1 = Math.min(size, img.width - left);
  for (let y = 0; y < size; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.height || x1 <= x0) continue;
    const from = sy * img.width + left + x0;
    pixels.set(img.pixels.subarray(from, from + (x1 - x0)), y * size + x0);
  }
  return { width: size, height: size, maxValue: img.maxValue, pixels };
}

/**
 * Window origins along one side: centred, then every `stride` either way as
 * long as the window stays inside. A side shorter than the window has one
 * origin, centred, negative (the window is zero-padded there).
 */
export function gridOrigins(length: number, window: number, stride: number): number[] {
  if (!(stride >= 1) || !Number.isInteger(stride)) throw new RangeError(`stride must be a positive integer, got ${stride}`);
  const centre = Math.floor((length - window) / 2);
  if (length <= window) return [centre];
  const out: number[] = [];
  for (let o = centre - stride * Math.floor(centre / stride); o <= length - window; o += stride) out.push(o);
  return out;
}

/** Fraction of pixels above threshold: how much of a window is anatomy rather than background. */
export function occupancy(img: GrayImage, threshold: number): number {
  let above = 0;
  for (const v of img.pixels) if (v > threshold) above++;
  return above / img.pixels.length;
}

/**
 * The held-out slices of one volume and axis: `count` odd slices spread
 * evenly through `brain` (the sorted indices of the slices that hold
 * anatomy), each with both neighbours k-1 and k+1 in `brain`, no two within 2
 * of each other. Odd, so that their neighbours are even and stay collection
 * slices when the collection takes every second slice (a slice step of 2).
 */
export function heldOutSlices(brain: readonly number[], count: number): number[] {
  const have = new Set(brain);
  const out: number[] = [];
  const qualifies = (k: number | undefined): k is number =>
    k !== undefined && k % 2 === 1 && have.has(k - 1) && have.has(k + 1) && !out.some((h) => Math.abs(h - k) <= 2);
  for (let i = 0; i < count; i++) {
    const at = Math.round(((i + 1) * (brain.length - 1)) / (count + 1));
    // The qualifying slice nearest the ideal spot.
    for (let d = 0; d < brain.length; d++) {
      const k = [brain[at + d], brain[at - d]].find(qualifies);
      if (k !== undefined) {
        out.push(k);
        break;
      }
    }
  }
  if (out.length < count) throw new RangeError(`only ${out.length} of ${count} slices can be held out of ${brain.length}`);
  return out.sort((a, b) => a - b);
}

/** Whether the collection takes slice k: not held out, and on the slice step (1: every slice, 2: the even ones). */
export function inCollection(k: number, sliceStep: 1 | 2, held: readonly number[]): boolean {
  return k % sliceStep === 0 && !held.includes(k);
}

export type QueryKind = 'between-slices' | 'shifted-window';

export interface WindowRef {
  slice: number;
  left: number;
  top: number;
}

/** How far a shifted-window query is moved off the grid, in voxels (right, down): about one slice's distance. */
export const QUERY_SHIFT = { right: 2, down: 1 } as const;

/**
 * The queries of one held-out slice k, neither in the collection and each
 * with a near collection image:
 * - between-slices: slice k at the grid's centre window; the same window of
 *   slices k-1 and k+1 is in the collection;
 * - shifted-window: slice k+1 (a collection slice), the centre window moved by
 *   QUERY_SHIFT, which is no window of the grid (stride > shift); the centre
 *   window of the same slice is in the collection, a few voxels away.
 */
export function queryWindows(
  k: number,
  width: number,
  height: number,
  window: number,
  stride: number,
): { kind: QueryKind; at: WindowRef }[] {
  if (stride <= Math.max(QUERY_SHIFT.right, QUERY_SHIFT.down))
    throw new RangeError(`stride ${stride} would put a shifted query on the grid`);
  const cl = Math.floor((width - window) / 2);
  const ct = Math.floor((height - window) / 2);
  return [
    { kind: 'between-slices', at: { slice: k, left: cl, top: ct } },
    { kind: 'shifted-window', at: { slice: k + 1, left: cl + QUERY_SHIFT.right, top: ct + QUERY_SHIFT.down } },
  ];
}

/** Squared Euclidean distance; the images are the same size. */
export function squaredDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

/** Index and squared distance of the nearest of `collection` to `query` (the first of equals); brute force. */
export function nearest(query: ArrayLike<number>, collection: readonly ArrayLike<number>[]): { index: number; distance: number } {
  let index = -1;
  let distance = Infinity;
  for (let i = 0; i < collection.length; i++) {
    const c = collection[i];
    let s = 0;
    // Stop summing once this one cannot win: most of the collection is far.
    for (let j = 0; j < query.length && s < distance; j++) {
      const d = query[j] - c[j];
      s += d * d;
    }
    if (s < distance) {
      distance = s;
      index = i;
    }
  }
  return { index, distance };
}

/** The items in a fixed pseudo-random order (Fisher-Yates over mulberry32, as bench/make-dataset.mjs): the same on every machine. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed | 0;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
