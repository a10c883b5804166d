import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng, type GrayImage } from '@fnn/shared';

// The doctor's view of a query: one HTML page with the query beside its
// neighbours, each captioned with its rank, ID and squared distance. Images are
// embedded (the page is one file a doctor can open or attach) and contrast-
// stretched for display only; the PNG files next to it hold the exact values.

export interface SheetEntry {
  id: string;
  distance: string;
  image: GrayImage;
}

/** Stretch min..max to 0..255 so a dark 16-bit scan is visible; display only. */
function forDisplay(image: GrayImage): GrayImage {
  let min = Infinity;
  let max = -Infinity;
  for (const v of image.pixels) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max > min ? max - min : 1;
  return { ...image, maxValue: 255, pixels: image.pixels.map((v) => Math.round(((v - min) * 255) / span)) };
}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function figure(image: GrayImage, caption: string): string {
  const src = `data:image/png;base64,${encodePng(forDisplay(image)).toString('base64')}`;
  const width = Math.max(256, image.width);
  return `<figure><img src="${src}" width="${width}" alt="${escape(caption)}"><figcaption>${escape(caption)}</figcaption></figure>`;
}

export function writeSheet(outDir: string, fileStem: string, queryName: string, query: GrayImage, results: SheetEntry[]): string {
  const path = join(outDir, `${fileStem}.sheet.html`);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FNN: ${escape(queryName)}</title>
<style>
body { font-family: sans-serif; background: #111; color: #eee; margin: 1.5em; }
main { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } img { image-rendering: pixelated; display: block; border: 1px solid #444; }
figcaption { margin-top: 0.4em; font-size: 0.9em; max-width: 256px; word-break: break-all; }
.note { color: #aaa; font-size: 0.85em; }
</style></head><body>
<h1>Nearest neighbours of ${escape(queryName)}</h1>
<main>
${figure(query, `query: ${queryName} (${query.width}x${query.height})`)}
${results.map((r, i) => figure(r.image, `${i + 1}. ${r.id}, squared distance ${r.distance}`)).join('\n')}
</main>
<p class="note">Exact search over encrypted records (FNN). Images are contrast-stretched for display; the PNG files beside this page hold the exact pixel values.</p>
</body></html>
`;
  writeFileSync(path, html);
  return path;
}
