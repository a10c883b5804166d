#!/usr/bin/env node
// One-off: cut the demo's grayscale PNGs out of a NIfTI-1 brain volume.
// Plain JS so it runs without a build; the crop and box average repeat
// shared/src/image/image.ts (centerCrop, downsampleBox) on purpose.
//
//   node demo/extract-images.mjs <volume.nii[.gz]> <imagesDir> <queriesDir>
//        [--size 32] [--count 24] [--prefix ch2] [--factor N]
//
// Writes <count> axial slices, evenly spaced through the slices that contain
// head (near-empty end slices skipped), as <prefix>-z<k>.png (k = 0-based index
// along the volume's third axis), each <size> x <size>; and two queries that
// are not stored images: the slice just above the middle stored slice (its
// nearest neighbour is that real adjacent slice) and an exact copy of the
// stored slice a quarter of the way up (nearest-neighbour distance 0).
//
// --factor is the box size of the average; by default the largest whose
// window fits the longer in-plane side (which can cut the head's front and
// back off: at 128 px, 2 x 2 boxes span 256 of 370 voxels; --factor 3 keeps
// the whole head in 384).
//
// Pixel values are the volume's own integers (after scl_slope/scl_inter),
// shifted up by -min if any are negative; 8-bit PNGs if they fit in 0..255,
// else 16-bit. Volumes whose values are not integers or span more than 65535
// are mapped linearly onto 0..65535 instead, and the script says so.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';

const { PNG } = createRequire(import.meta.url)('pngjs');

function parseArgs(argv) {
  const positional = [];
  const options = { size: 32, count: 24, prefix: undefined, factor: undefined };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : undefined;
    if (name === undefined) positional.push(argv[i]);
    else if (name === 'size' || name === 'count' || name === 'factor') options[name] = Number(argv[++i]);
    else if (name === 'prefix') options.prefix = argv[++i];
    else throw new Error(`unknown option --${name}`);
  }
  if (
    positional.length !== 3 ||
    !(options.size >= 1) ||
    !(options.count >= 2) ||
    (options.factor !== undefined && !(Number.isInteger(options.factor) && options.factor >= 1))
  ) {
    throw new Error(
      'usage: node demo/extract-images.mjs <volume.nii[.gz]> <imagesDir> <queriesDir> [--size 32] [--count 24] [--prefix name] [--factor N]',
    );
  }
  const [volumePath, imagesDir, queriesDir] = positional;
  options.prefix ??= basename(volumePath).replace(/\.nii(\.gz)?$/, '');
  return { volumePath, imagesDir, queriesDir, ...options };
}

// NIfTI-1 datatype code -> [bytes per voxel, DataView getter]
const DATATYPES = {
  2: [1, 'getUint8'],
  4: [2, 'getInt16'],
  8: [4, 'getInt32'],
  16: [4, 'getFloat32'],
  64: [8, 'getFloat64'],
  256: [1, 'getInt8'],
  512: [2, 'getUint16'],
  768: [4, 'getUint32'],
};

/** The first 3-D volume, as real-valued voxels with scl_slope/scl_inter applied; x fastest. */
export function readNifti(path) {
  let bytes = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const little = view.getInt32(0, true) === 348;
  if (!little && view.getInt32(0, false) !== 348) throw new Error(`${path}: not a NIfTI-1 file (sizeof_hdr != 348)`);
  const magic = bytes.toString('latin1', 344, 347);
  if (magic !== 'n+1') throw new Error(`${path}: expected a single-file NIfTI-1 ("n+1"), found "${magic}"`);
  const dim = Array.from({ length: 8 }, (_, i) => view.getInt16(40 + 2 * i, little));
  if (dim[0] < 3) throw new Error(`${path}: not a 3-D volume (dim[0] = ${dim[0]})`);
  const [nx, ny, nz] = [dim[1], dim[2], dim[3]];
  const datatype = view.getInt16(70, little);
  if (!(datatype in DATATYPES)) throw new Error(`${path}: unsupported NIfTI datatype ${datatype}`);
  const [size, getter] = DATATYPES[datatype];
  const offset = Math.floor(view.getFloat32(108, little));
  let slope = view.getFloat32(112, little);
  const intercept = view.getFloat32(116, little);
  if (!slope || !Number.isFinite(slope)) slope = 1; // NIfTI: 0 means "no scaling"
  const count = nx * ny * nz;
  if (offset + count * size > bytes.length) throw new Error(`${path}: voxel data is truncated`);
  const voxels = new Float64Array(count);
  for (let i = 0; i < count; i++) voxels[i] = view[getter](offset + i * size, little) * slope + (intercept || 0);
  return { nx, ny, nz, datatype, voxels };
}

/** Non-negative integers the PNG can hold, keeping the volume's own values whenever possible. */
export function toPixelValues(voxels) {
  let min = Infinity;
  let max = -Infinity;
  let integral = true;
  for (const v of voxels) {
    if (v < min) min = v;
    if (v > max) max = v;
    if (integral && !Number.isInteger(v)) integral = false;
  }
  const shift = min < 0 ? -min : 0;
  const out = new Uint16Array(voxels.length);
  if (integral && max + shift <= 65535) {
    for (let i = 0; i < voxels.length; i++) out[i] = voxels[i] + shift;
    const note = shift ? `native integers shifted up by ${shift} (volume minimum was ${min})` : 'native integer values';
    return { values: out, max: max + shift, note };
  }
  const scale = max > min ? 65535 / (max - min) : 0;
  for (let i = 0; i < voxels.length; i++) out[i] = Math.round((voxels[i] - min) * scale);
  return { values: out, max: 65535, note: `values mapped linearly from [${min}, ${max}] onto 0..65535` };
}

/**
 * Slice k as a size x size image: a centred square window of size*factor
 * voxels on the longer in-plane side (zero outside the volume: the head fills
 * the long axis, so cropping to the short side would cut off the frontal and
 * occipital lobes), box-averaged by factor, rounding down. Rows run from the
 * highest y index down so that, with the usual RAS orientation, anterior is at
 * the top; columns follow x (subject's left on the left).
 */
function axialSlice({ nx, ny }, values, k, size, factor = Math.floor(Math.max(nx, ny) / size)) {
  if (factor < 1) throw new Error(`slices are ${nx} x ${ny}, smaller than ${size} x ${size}`);
  const window = size * factor;
  const left = Math.floor((nx - window) / 2);
  const top = Math.floor((ny - window) / 2);
  const pixels = new Uint16Array(size * size);
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      let sum = 0;
      for (let dy = 0; dy < factor; dy++) {
        const y = ny - 1 - (top + row * factor + dy);
        if (y < 0 || y >= ny) continue;
        for (let dx = 0; dx < factor; dx++) {
          const x = left + col * factor + dx;
          if (x >= 0 && x < nx) sum += values[x + nx * (y + ny * k)];
        }
      }
      pixels[row * size + col] = Math.floor(sum / (factor * factor));
    }
  }
  return { pixels, factor, window, left, top };
}

/** Fraction of a slice's voxels clearly above the background (the volume minimum). */
function occupancy({ nx, ny }, values, k, threshold) {
  let above = 0;
  const start = nx * ny * k;
  for (let i = start; i < start + nx * ny; i++) if (values[i] > threshold) above++;
  return above / (nx * ny);
}

function encodeGrayPng(pixels, size, sixteenBit) {
  // Fresh ArrayBuffers: pngjs reads 16-bit input from byte 0 of data.buffer.
  const data = Buffer.from((sixteenBit ? new Uint16Array(pixels) : Uint8Array.from(pixels)).buffer);
  return PNG.sync.write(
    { width: size, height: size, data, gamma: 0 },
    { colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: sixteenBit ? 16 : 8 },
  );
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const volume = readNifti(args.volumePath);
  const { values, max, note } = toPixelValues(volume.voxels);
  volume.voxels = undefined;
  const sixteenBit = max > 255;

  // "Contains head": at least a quarter of the best slice's occupancy.
  const occupancies = Array.from({ length: volume.nz }, (_, k) => occupancy(volume, values, k, max * 0.05));
  const best = Math.max(...occupancies);
  const first = occupancies.findIndex((o) => o >= best / 4);
  const last = volume.nz - 1 - [...occupancies].reverse().findIndex((o) => o >= best / 4);
  const step = (last - first) / (args.count - 1);
  if (step < 2) throw new Error(`only ${last - first + 1} slices contain head: too few for ${args.count} spaced images`);
  const stored = Array.from({ length: args.count }, (_, i) => Math.round(first + i * step));
  const adjacentTo = stored[Math.floor(args.count / 2)];
  const exactCopyOf = stored[Math.floor(args.count / 4)];
  const queries = [adjacentTo + 1, exactCopyOf];

  const name = (k) => `${args.prefix}-z${String(k).padStart(3, '0')}.png`;
  let lowest = Infinity;
  let highest = -Infinity;
  let geometry;
  const write = (dir, k) => {
    const slice = axialSlice(volume, values, k, args.size, args.factor);
    geometry = slice;
    for (const v of slice.pixels) {
      lowest = Math.min(lowest, v);
      highest = Math.max(highest, v);
    }
    writeFileSync(join(dir, name(k)), encodeGrayPng(slice.pixels, args.size, sixteenBit));
  };
  mkdirSync(args.imagesDir, { recursive: true });
  mkdirSync(args.queriesDir, { recursive: true });
  for (const k of stored) write(args.imagesDir, k);
  for (const k of queries) write(args.queriesDir, k);

  const { factor, window, left, top } = geometry;
  console.log(`volume ${volume.nx} x ${volume.ny} x ${volume.nz}, NIfTI datatype ${volume.datatype}; ${note}`);
  console.log(
    `slices with head: z ${first}..${last}; window ${window} x ${window} voxels at x ${left}, y ${top} ` +
      `(zero outside the volume), box ${factor} x ${factor} -> ${args.size} x ${args.size}, ${sixteenBit ? 16 : 8}-bit`,
  );
  console.log(`stored ${stored.length} in ${args.imagesDir}: z ${stored.join(', ')}`);
  console.log(
    `queries in ${args.queriesDir}: ${name(queries[0])} (adjacent to stored ${name(adjacentTo)}), ` +
      `${name(queries[1])} (identical to the stored one)`,
  );
  console.log(`pixel values written: ${lowest}..${highest}`);
}

// Run only as a script: bench/make-dataset.mjs imports readNifti and toPixelValues.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    console.error(`extract-images: ${e.message}`);
    process.exit(1);
  }
}
