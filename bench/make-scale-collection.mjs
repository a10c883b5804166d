#!/usr/bin/env node
// `make dataset`, second part: the scale collection, tens of thousands of real
// MRI images with what an archive holds (neighbouring slices, overlapping
// windows, the same anatomy at several positions and fields of view), and
// held-out queries whose nearest neighbour is near but never identical.
// Derivation and counts: docs/BENCHMARKS.md, "The scale collection".
//
//   node bench/make-scale-collection.mjs <templatesDir> <outDir>
//
// <templatesDir> is mricron-data's usr/share/mricron/templates (data/cache/root/...);
// writes <outDir>/{64,256}/ (collections), <outDir>/queries-{64,256}/ and
// <outDir>/manifest.json. Nothing here is read by `make test`.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { readNifti } from '../demo/extract-images.mjs';

const require = createRequire(import.meta.url);
// The built library and client (make dataset builds first): one box-average and PNG writer, and the tested helpers.
const { downsampleBox, encodePng } = require('@fnn/shared');
const sc = require('../client/dist/bench/scale-collection.js');

const PACKAGE = 'mricron-data 1.2.20211006+dfsg-4 (Debian)';
const VOLUMES = {
  ch2better: {
    file: 'ch2better.nii.gz',
    mm: 0.5,
    sha256: 'a094f3ccf383c495c9569625bd0c06993fd4b02d2a8d9966da5fea7d7e530e8d',
    what: 'human T1 template (Colin27), skull-stripped',
  },
  ch2: {
    file: 'ch2.nii.gz',
    mm: 1,
    sha256: 'a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309',
    what: 'human T1 template (Colin27), whole head',
  },
  inia19: {
    file: 'inia19-t1-brain.nii.gz',
    mm: 0.5,
    sha256: '3f0707f4999a0c6b56d6c9a0145310cba17753e2b4612f577d8dbfe65a89e231',
    what: 'rhesus macaque T1 template (INIA19), brain only',
  },
};

// Per output size: which volume, box factor (window = size * factor voxels),
// grid stride (voxels) and slice step (1: every slice, 2: every second).
// Overlapping windows and neighbouring slices are the near-duplicates of an
// archive; the strides and steps keep the counts near 20,000 and 3,000.
const SCALES = {
  64: [
    { volume: 'ch2better', factor: 4, stride: 16, sliceStep: 2 }, // 128 mm field, 2 mm pixels
    { volume: 'ch2better', factor: 2, stride: 64, sliceStep: 2 }, // 64 mm, 1 mm
    { volume: 'ch2', factor: 2, stride: 16, sliceStep: 2 }, // 128 mm, 2 mm
    { volume: 'ch2', factor: 1, stride: 32, sliceStep: 2 }, // 64 mm, 1 mm
    { volume: 'inia19', factor: 2, stride: 8, sliceStep: 2 }, // 64 mm, 1 mm
    { volume: 'inia19', factor: 1, stride: 32, sliceStep: 2 }, // 32 mm, 0.5 mm
  ],
  256: [
    { volume: 'ch2better', factor: 1, stride: 24, sliceStep: 2 }, // 128 mm, 0.5 mm
    { volume: 'ch2', factor: 1, stride: 16, sliceStep: 1 }, // 256 mm (zero-padded: one window per slice), 1 mm
  ],
};

const HELD_OUT_PER_AXIS = 3;
// A window carries anatomy if at least this share of its pixels is above 5% of the volume's maximum.
const MIN_OCCUPANCY = 0.25;
const SHUFFLE_SEED = 20240602;

const hashOf = (img) =>
  createHash('sha256')
    .update(Buffer.from(img.pixels.buffer, img.pixels.byteOffset, img.pixels.byteLength))
    .digest('hex');

function loadVolume(templatesDir, name) {
  const spec = VOLUMES[name];
  const path = join(templatesDir, spec.file);
  const bytes = readFileSync(path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== spec.sha256) console.warn(`warning: ${path} is not the ${spec.file} of ${PACKAGE} (sha256 ${sha256})`);
  const raw = readNifti(path);
  const { values, note } = sc.toEightBit(raw.voxels);
  let max = 0;
  for (const v of values) if (v > max) max = v;
  return { name, ...spec, sha256, nx: raw.nx, ny: raw.ny, nz: raw.nz, values, max, note };
}

/** Slice indices holding brain, as bench/make-dataset.mjs: at least a quarter of the axis's best share of bright pixels. */
function brainSlices(slices, threshold) {
  const occ = slices.map((img) => sc.occupancy(img, threshold));
  const best = Math.max(...occ);
  return occ.flatMap((o, k) => (o >= best / 4 ? [k] : []));
}

function main() {
  const [templatesDir, outDir] = process.argv.slice(2);
  if (!templatesDir || !outDir) throw new Error('usage: node bench/make-scale-collection.mjs <templatesDir> <outDir>');
  const started = Date.now();
  const sizes = Object.keys(SCALES).map(Number);
  const out = Object.fromEntries(sizes.map((s) => [s, { collection: [], queries: [], hashes: new Map(), pixels: [], stats: [] }]));
  for (const s of sizes) {
    for (const dir of [String(s), `queries-${s}`]) {
      rmSync(join(outDir, dir), { recursive: true, force: true });
      mkdirSync(join(outDir, dir), { recursive: true });
    }
  }
  const volumesInfo = [];
  const heldOut = {};
  const candidates = []; // queries, checked against the finished collections

  for (const name of Object.keys(VOLUMES)) {
    const vol = loadVolume(templatesDir, name);
    const threshold = vol.max * 0.05;
    volumesInfo.push({
      name,
      file: vol.file,
      sha256: vol.sha256,
      what: vol.what,
      voxels: `${vol.nx} x ${vol.ny} x ${vol.nz}`,
      mm: vol.mm,
      values: vol.note,
    });
    for (const axis of sc.AXES) {
      const slices = Array.from({ length: sc.sliceCount(vol, axis) }, (_, k) => sc.sliceOf(vol, axis, k));
      const brain = brainSlices(slices, threshold);
      const held = sc.heldOutSlices(brain, HELD_OUT_PER_AXIS);
      heldOut[`${name}-${axis}`] = held;
      const { width, height } = slices[0];
      for (const size of sizes) {
        for (const { volume, factor, stride, sliceStep } of SCALES[size].filter((c) => c.volume === name)) {
          const window = size * factor;
          const o = out[size];
          const st = { volume, axis, window, factor, stride, sliceStep, windows: 0, empty: 0, duplicates: 0, kept: 0 };
          const lefts = sc.gridOrigins(width, window, stride);
          const tops = sc.gridOrigins(height, window, stride);
          const entry = (k, left, top) => ({
            file: `${name}-${axis}${String(k).padStart(3, '0')}-w${window}-x${left}-y${top}.png`,
            volume: name,
            axis,
            slice: k,
            left,
            top,
            window,
            factor,
            mmPerPixel: vol.mm * factor,
          });
          for (const k of brain) {
            if (!sc.inCollection(k, sliceStep, held)) continue;
            for (const top of tops) {
              for (const left of lefts) {
                st.windows++;
                const crop = sc.windowAt(slices[k], left, top, window);
                if (sc.occupancy(crop, threshold) < MIN_OCCUPANCY) {
                  st.empty++;
                  continue;
                }
                const img = downsampleBox(crop, factor);
                const hash = hashOf(img);
                if (o.hashes.has(hash)) {
                  st.duplicates++;
                  continue;
                }
                const e = entry(k, left, top);
                o.hashes.set(hash, e.file);
                o.collection.push(e);
                o.pixels.push(Uint8Array.from(img.pixels));
                writeFileSync(join(outDir, String(size), e.file), encodePng(img));
                st.kept++;
              }
            }
          }
          o.stats.push(st);
          for (const k of held) {
            for (const { kind, at } of sc.queryWindows(k, width, height, window, stride)) {
              const crop = sc.windowAt(slices[at.slice], at.left, at.top, window);
              if (sc.occupancy(crop, threshold) < MIN_OCCUPANCY) continue;
              candidates.push({ size, kind, entry: entry(at.slice, at.left, at.top), img: downsampleBox(crop, factor) });
            }
          }
          console.log(
            `${size}: ${name} ${axis} window ${window} (box ${factor}, stride ${stride}, slice step ${sliceStep}): ${st.kept} kept of ${st.windows} windows (${st.empty} near-empty, ${st.duplicates} duplicates)`,
          );
        }
      }
    }
  }

  // Queries: never a collection image (nor another query), each with its exact nearest neighbour recorded.
  const queryHashes = new Set();
  let refused = 0;
  for (const q of candidates) {
    const o = out[q.size];
    const hash = hashOf(q.img);
    if (o.hashes.has(hash) || queryHashes.has(hash)) {
      refused++;
      continue;
    }
    queryHashes.add(hash);
    const nn = sc.nearest(q.img.pixels, o.pixels);
    const n = o.collection[nn.index];
    o.queries.push({
      ...q.entry,
      kind: q.kind,
      nearest: {
        file: n.file,
        distance: nn.distance,
        volume: n.volume,
        axis: n.axis,
        slice: n.slice,
        left: n.left,
        top: n.top,
        window: n.window,
      },
    });
    writeFileSync(join(outDir, `queries-${q.size}`, q.entry.file), encodePng(q.img));
  }

  const manifest = {
    source: {
      package: PACKAGE,
      licence: 'BSD-3-clause, Copyright 2006-2010 Chris Rorden (the package copyright file; inia19 header: CC-BY, PMID 23230398)',
      volumes: volumesInfo,
    },
    derivation:
      'slices along all three axes of each volume (8-bit, values unchanged where already 0..255 integers, else mapped linearly onto 0..255); ' +
      'square windows of size*factor voxels on a grid centred on the slice with the given stride (zero-padded where the slice is smaller), box-averaged by factor (floor); ' +
      `windows with < ${MIN_OCCUPANCY * 100}% of pixels above 5% of the volume maximum skipped; exact pixel duplicates dropped; ` +
      `${HELD_OUT_PER_AXIS} odd slices per volume and axis held out of every size and scale; queries: a held-out slice k at the centre window (between-slices) ` +
      `and slice k+1 at the centre window moved ${sc.QUERY_SHIFT.right} voxels right and ${sc.QUERY_SHIFT.down} down (shifted-window); docs/BENCHMARKS.md "The scale collection"`,
    minOccupancy: MIN_OCCUPANCY,
    heldOut,
    sizes: Object.fromEntries(
      sizes.map((s) => [
        s,
        {
          scales: SCALES[s],
          counts: out[s].stats,
          // Upload order: a fixed shuffle, so the first n records sample every volume, axis and scale.
          collection: sc.shuffled(out[s].collection, SHUFFLE_SEED),
          queries: out[s].queries,
        },
      ]),
    ),
  };
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest) + '\n');
  for (const s of sizes) {
    const d = out[s].queries.map((q) => q.nearest.distance).sort((a, b) => a - b);
    const dups = out[s].stats.reduce((n, st) => n + st.duplicates, 0);
    const empty = out[s].stats.reduce((n, st) => n + st.empty, 0);
    console.log(
      `${s}x${s}: ${out[s].collection.length} distinct collection images (${empty} near-empty windows skipped, ${dups} exact duplicates dropped), ` +
        `${out[s].queries.length} held-out queries, nearest-neighbour squared distance min ${d[0]}, median ${d[d.length >> 1]}, max ${d.at(-1)}`,
    );
  }
  if (refused) console.log(`${refused} query candidates dropped: pixel-identical to a collection image or another query`);
  console.log(`scale collection in ${outDir}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

try {
  main();
} catch (e) {
  console.error(`make-scale-collection: ${e.message}`);
  process.exit(1);
}
