import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng, metadataLine, type GrayImage, type RecordMetadata } from '@fnn/shared';

// The doctor's view of a query: one HTML page with the query beside its
// neighbours, each captioned with its rank, ID, distance (squared, and RMS per
// pixel) and what the owner sealed with it (modality, study, date, label...).
// Images are embedded (the page is one file a doctor can open or attach) and
// mapped to 8 bits for display only: with the record's DICOM window when it
// has one, else contrast-stretched; the PNG files next to it hold the exact values.

export interface SheetEntry {
  id: string;
  distance: string;
  rmsPerPixel: number;
  metadata: RecordMetadata;
  image: GrayImage;
}

/** Stretch min..max to 0..255 so a dark 16-bit scan is visible; display only. */
function stretched(image: GrayImage): GrayImage {
  let min = Infinity;
  let max = -Infinity;
  for (const v of image.pixels) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max > min ? max - min : 1;
  return { ...image, maxValue: 255, pixels: image.pixels.map((v) => Math.round(((v - min) * 255) / span)) };
}

/**
 * The DICOM linear VOI function (PS3.3 C.11.2.1.2.1) with center c and width
 * w, on the record's values less the collection's offset (the window is in the
 * file's modality units, the stored values are offset by the collection's).
 */
export function windowed(image: GrayImage, center: number, width: number, offset: number): GrayImage {
  const low = center - 0.5 - (width - 1) / 2;
  const high = center - 0.5 + (width - 1) / 2;
  const pixels = image.pixels.map((stored) => {
    const v = stored - offset;
    if (v <= low) return 0;
    if (v > high) return 255;
    return Math.round(((v - (center - 0.5)) / (width - 1) + 0.5) * 255);
  });
  return { ...image, maxValue: 255, pixels };
}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function figure(image: GrayImage, caption: string, details: string[] = []): string {
  const src = `data:image/png;base64,${encodePng(image).toString('base64')}`;
  const width = Math.max(256, image.width);
  const more = details.map((d) => `<br><span class="meta">${escape(d)}</span>`).join('');
  return `<figure><img src="${src}" width="${width}" alt="${escape(caption)}"><figcaption>${escape(caption)}${more}</figcaption></figure>`;
}

const rms = (x: number) => (x === 0 ? '0' : x >= 100 ? x.toFixed(0) : x.toPrecision(3));

function resultFigure(r: SheetEntry, rank: number, offset: number): string {
  const m = r.metadata;
  const hasWindow = m.windowCenter !== undefined && m.windowWidth !== undefined;
  const shown = hasWindow ? windowed(r.image, m.windowCenter!, m.windowWidth!, offset) : stretched(r.image);
  const about = metadataLine(m);
  return figure(shown, `${rank}. ${r.id}`, [
    `squared distance ${r.distance}, RMS ${rms(r.rmsPerPixel)} per pixel`,
    ...(about ? [about] : []),
    hasWindow ? 'shown with its DICOM window' : 'contrast-stretched',
  ]);
}

export function writeSheet(
  outDir: string,
  fileStem: string,
  queryName: string,
  query: GrayImage,
  results: SheetEntry[],
  offset = 0,
): string {
  const path = join(outDir, `${fileStem}.sheet.html`);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FNN: ${escape(queryName)}</title>
<style>
body { font-family: sans-serif; background: #111; color: #eee; margin: 1.5em; }
main { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } img { image-rendering: pixelated; display: block; border: 1px solid #444; }
figcaption { margin-top: 0.4em; font-size: 0.9em; max-width: 256px; word-break: break-all; }
.meta { color: #bbb; font-size: 0.9em; }
.note { color: #aaa; font-size: 0.85em; }
</style></head><body>
<h1>Nearest neighbours of ${escape(queryName)}</h1>
<main>
${figure(stretched(query), `query: ${queryName} (${query.width}x${query.height})`, ['contrast-stretched'])}
${results.map((r, i) => resultFigure(r, i + 1, offset)).join('\n')}
</main>
<p class="note">Exact search over encrypted records (FNN). The RMS per pixel is sqrt(D/d), in the collection's units. Images are shown with their DICOM window where the record has one, else contrast-stretched; the PNG files beside this page hold the exact pixel values.</p>
</body></html>
`;
  writeFileSync(path, html);
  return path;
}
