#!/usr/bin/env node
// `make dataset`: the benchmark collection, real brain MRI slices from Debian's
// mricron-data (ch2better.nii.gz, BSD-3-clause; see demo/images/LICENSE.md).
//
//   node bench/make-dataset.mjs <ch2better.nii.gz> <dataDir>
//
// Writes <dataDir>/mri-{256,64,32,16}/ (the collection), <dataDir>/mri-*-queries/
// (slices held out of the collection) and <dataDir>/manifest.json (upload
// order, queries, provenance), which `npm run bench` reads.
//
// Derivation, the same for every slice:
// * slices along all three axes (axial, coronal, sagittal): one axis gives
//   only ~230 slices that contain brain, the benchmark needs >= 500;
// * the central 256 x 256 window of the slice at the volume's native 0.5 mm
//   (a 128 mm field of view: like the paper's central crops of CT images, the
//   rim of the brain is cut off), pixel values unchanged (0..130, 8-bit);
// * 64, 32 and 16 are that crop box-averaged (4, 8, 16), rounding down, with
//   shared's downsampleBox, so all sizes show the same tissue;
// * near-empty slices are skipped: fewer than a quarter of the best slice's
//   share (of that axis) of pixels above 5% of the volume maximum;
// * queries: 12 slices spread through the three axes, removed from the
//   collection, so a query's nearest neighbour is a real nearby slice and
//   never the query itself;
// * upload order: a fixed pseudo-random shuffle, so the first n records are a
//   sample of the whole brain for every n (n grows by uploading more).

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { readNifti, toPixelValues } from '../demo/extract-images.mjs';

// The built library (make dataset builds first): one crop/box/PNG implementation.
const { centerCrop, downsampleBox, encodePng } = createRequire(import.meta.url)('@fnn/shared');

const CROP = 256;
const SIZES = [256, 64, 32, 16];
const QUERIES_PER_AXIS = 4;
const SHUFFLE_SEED = 20240601;
const EXPECTED_SHA256 = 'a094f3ccf383c495c9569625bd0c06993fd4b02d2a8d9966da5fea7d7e530e8d';

/**
 * Slice k along one axis as a 2-D image, radiological conventions kept simple:
 * axial rows run anterior -> posterior, coronal and sagittal rows superior ->
 * inferior (assumes the usual RAS storage order, which ch2better has).
 */
const AXES = {
  ax: { count: (v) => v.nz, width: (v) => v.nx, height: (v) => v.ny, at: (v, k, c, r) => c + v.nx * (v.ny - 1 - r + v.ny * k) },
  cor: { count: (v) => v.ny, width: (v) => v.nx, height: (v) => v.nz, at: (v, k, c, r) => c + v.nx * (k + v.ny * (v.nz - 1 - r)) },
  sag: {
    count: (v) => v.nx,
    width: (v) => v.ny,
    height: (v) => v.nz,
    at: (v, k, c, r) => k + v.nx * (v.ny - 1 - c + v.ny * (v.nz - 1 - r)),
  },
};

function slice(volume, values, axis, k) {
  const a = AXES[axis];
  const width = a.width(volume);
  const height = a.height(volume);
  const pixels = new Uint16Array(width * height);
  for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) pixels[r * width + c] = values[a.at(volume, k, c, r)];
  return centerCrop({ width, height, maxValue: 255, pixels }, CROP, CROP);
}

/** Deterministic PRNG (mulberry32): the same upload order on every machine. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function main() {
  const [volumePath, dataDir] = process.argv.slice(2);
  if (!volumePath || !dataDir) throw new Error('usage: node bench/make-dataset.mjs <ch2better.nii.gz> <dataDir>');
  const sha256 = createHash('sha256').update(readFileSync(volumePath)).digest('hex');
  if (sha256 !== EXPECTED_SHA256)
    console.warn(`warning: ${volumePath} is not the ch2better.nii.gz of mricron-data 1.2.20211006+dfsg-4 (sha256 ${sha256})`);
  const volume = readNifti(volumePath);
  const { values, max, note } = toPixelValues(volume.voxels);
  if (max > 255) throw new Error(`expected an 8-bit volume, values reach ${max}`);
  const threshold = max * 0.05;

  // Every slice of every axis whose crop contains brain.
  const kept = [];
  for (const axis of Object.keys(AXES)) {
    const crops = Array.from({ length: AXES[axis].count(volume) }, (_, k) => slice(volume, values, axis, k));
    const occupancy = crops.map((img) => img.pixels.reduce((n, v) => n + (v > threshold ? 1 : 0), 0) / img.pixels.length);
    const best = Math.max(...occupancy);
    const axisKept = crops.map((image, k) => ({ axis, k, image })).filter(({ k }) => occupancy[k] >= best / 4);
    // Queries: odd-indexed slices spread evenly through the axis, held out.
    for (let i = 0; i < QUERIES_PER_AXIS; i++) {
      const at = Math.round(((i + 1) * (axisKept.length - 1)) / (QUERIES_PER_AXIS + 1));
      const pick = axisKept[at].k % 2 === 1 ? at : at + 1;
      axisKept[pick].query = true;
    }
    kept.push(...axisKept);
    console.log(`${axis}: ${axisKept.length} of ${crops.length} slices contain brain (k ${axisKept[0].k}..${axisKept.at(-1).k})`);
  }
  const name = ({ axis, k }) => `ch2-${axis}${String(k).padStart(3, '0')}.png`;
  const queries = [];
  for (let i = 0; i < QUERIES_PER_AXIS; i++)
    for (const axis of Object.keys(AXES)) queries.push(kept.filter((s) => s.query && s.axis === axis)[i]);
  const collection = kept.filter((s) => !s.query);
  const rand = random(SHUFFLE_SEED);
  for (let i = collection.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [collection[i], collection[j]] = [collection[j], collection[i]];
  }

  for (const size of SIZES) {
    for (const [dir, slices] of [
      [`mri-${size}`, collection],
      [`mri-${size}-queries`, queries],
    ]) {
      rmSync(join(dataDir, dir), { recursive: true, force: true });
      mkdirSync(join(dataDir, dir), { recursive: true });
      for (const s of slices) writeFileSync(join(dataDir, dir, name(s)), encodePng(downsampleBox(s.image, CROP / size)));
    }
  }
  const manifest = {
    source: {
      package: 'mricron-data 1.2.20211006+dfsg-4 (Debian)',
      file: 'ch2better.nii.gz',
      sha256,
      licence: 'BSD-3-clause, Copyright 2006-2010 Chris Rorden',
    },
    volume: `${volume.nx} x ${volume.ny} x ${volume.nz}, 0.5 mm, ${note}`,
    derivation: `central ${CROP}x${CROP} crop of axial, coronal and sagittal slices at native resolution; smaller sizes box-averaged (floor); slices with < 1/4 of the axis's best brain occupancy skipped; 8-bit values unchanged`,
    sizes: SIZES,
    collection: collection.map(name),
    queries: queries.map(name),
  };
  writeFileSync(join(dataDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(
    `${collection.length} collection slices and ${queries.length} held-out queries, sizes ${SIZES.join(', ')}, in ${dataDir}/mri-*`,
  );
}

try {
  main();
} catch (e) {
  console.error(`make-dataset: ${e.message}`);
  process.exit(1);
}
