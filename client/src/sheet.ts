import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng, type GrayImage } from '@fnn/shared';

// The doctor's view of a query: one HTML page with the query beside its
// neighbours, each captioned with its rank, ID and squared distance. Images are
// embedded (the page is one file a doctor can open or attach), all drawn
// through one window so they compare honestly; the PNG files next to it hold
// the exact values. `fnn viewer` is the interactive view (window/level).

export interface SheetEntry {
  id: string;
  distance: string;
  image: GrayImage;
}

/**
 * The one window of a sheet: 8-bit images as they are; deeper ones 0..the
 * brightest value of any image shown, the same linear map for every image (a
 * stretch per image would make a dark neighbour look like a bright query).
 */
function displayScale(images: GrayImage[]): number {
  if (images.every((i) => i.maxValue <= 255)) return 1;
  let max = 1;
  for (const image of images) for (const v of image.pixels) if (v > max) max = v;
  return 255 / max;
}

const forDisplay = (image: GrayImage, scale: number): GrayImage =>
  scale === 1 ? image : { ...image, maxValue: 255, pixels: image.pixels.map((v) => Math.min(255, Math.round(v * scale))) };

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function figure(image: GrayImage, scale: number, title: string, detail: string): string {
  const src = `data:image/png;base64,${encodePng(forDisplay(image, scale)).toString('base64')}`;
  const width = Math.max(256, image.width);
  const caption = `${title}, ${detail}`;
  // The ID may wrap anywhere (a long accession number); the distance, never.
  return `<figure><img src="${src}" width="${width}" alt="${escape(caption)}"><figcaption><span class="id">${escape(title)}</span>, <span class="nowrap">${escape(detail)}</span></figcaption></figure>`;
}

export function writeSheet(outDir: string, fileStem: string, queryName: string, query: GrayImage, results: SheetEntry[]): string {
  const path = join(outDir, `${fileStem}.sheet.html`);
  const scale = displayScale([query, ...results.map((r) => r.image)]);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FNN: ${escape(queryName)}</title>
<style>
body { font-family: sans-serif; background: #111; color: #eee; margin: 1.5em; }
main { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } img { image-rendering: pixelated; display: block; border: 1px solid #444; }
figcaption { margin-top: 0.4em; font-size: 0.9em; max-width: 256px; }
.id { overflow-wrap: anywhere; } .nowrap { white-space: nowrap; }
.note { color: #aaa; font-size: 0.85em; }
</style></head><body>
<h1>Nearest neighbours of ${escape(queryName)}</h1>
<main>
${figure(query, scale, `query: ${queryName}`, `${query.width}x${query.height}`)}
${results.map((r, i) => figure(r.image, scale, `${i + 1}. ${r.id}`, `squared distance ${r.distance}`)).join('\n')}
</main>
<p class="note">Exact search over encrypted records (FNN). ${scale === 1 ? 'Images are drawn as stored (8-bit).' : `Images are drawn through one window, 0..${Math.round(255 / scale)} to black..white.`} The PNG files beside this page hold the exact pixel values.</p>
</body></html>
`;
  writeFileSync(path, html);
  return path;
}
