import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng, metadataLine, type GrayImage, type RecordMetadata } from '@fnn/shared';

// The doctor's view of a query: one HTML page with the query beside its
// neighbours, each captioned with its rank, ID, distance (squared, and RMS per
// pixel) and what the owner sealed with it (modality, study, date, label...).
// Images are embedded (the page is one file a doctor can open or attach) and
// mapped to 8 bits for display only: with the record's DICOM window when it
// has one, else through one window shared by every image so they compare
// honestly (a stretch per image would make a dark neighbour look like a bright
// query); the PNG files next to it hold the exact values. `fnn viewer` is the
// interactive view (window/level).

export interface SheetEntry {
  id: string;
  distance: string;
  rmsPerPixel: number;
  metadata: RecordMetadata;
  image: GrayImage;
}

/** The shared window: 8-bit images as they are; deeper ones 0..the brightest value of any image shown. */
function displayScale(images: GrayImage[]): number {
  if (images.every((i) => i.maxValue <= 255)) return 1;
  let max = 1;
  for (const image of images) for (const v of image.pixels) if (v > max) max = v;
  return 255 / max;
}

const scaled = (image: GrayImage, scale: number): GrayImage =>
  scale === 1 ? image : { ...image, maxValue: 255, pixels: image.pixels.map((v) => Math.min(255, Math.round(v * scale))) };

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

/** The title (an ID) may wrap anywhere, a long accession number; the first detail (the distance), never. */
function figure(image: GrayImage, title: string, details: string[] = []): string {
  const src = `data:image/png;base64,${encodePng(image).toString('base64')}`;
  const width = Math.max(256, image.width);
  const more = details.map((d, i) => `<br><span class="${i === 0 ? 'nowrap' : 'meta'}">${escape(d)}</span>`).join('');
  const alt = [title, ...details.slice(0, 1)].join(', ');
  return `<figure><img src="${src}" width="${width}" alt="${escape(alt)}"><figcaption>${escape(title)}${more}</figcaption></figure>`;
}

const rms = (x: number) => (x === 0 ? '0' : x >= 100 ? x.toFixed(0) : x.toPrecision(3));

function resultFigure(r: SheetEntry, rank: number, offset: number, scale: number, shared: string): string {
  const m = r.metadata;
  const hasWindow = m.windowCenter !== undefined && m.windowWidth !== undefined;
  const shown = hasWindow ? windowed(r.image, m.windowCenter!, m.windowWidth!, offset) : scaled(r.image, scale);
  const about = metadataLine(m);
  return figure(shown, `${rank}. ${r.id}`, [
    `squared distance ${r.distance}, RMS ${rms(r.rmsPerPixel)} per pixel`,
    ...(about ? [about] : []),
    hasWindow ? 'shown with its DICOM window' : shared,
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
  const scale = displayScale([query, ...results.map((r) => r.image)]);
  const shared = scale === 1 ? 'drawn as stored (8-bit)' : `drawn through the sheet's one window, 0..${Math.round(255 / scale)}`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FNN: ${escape(queryName)}</title>
<style>
body { font-family: sans-serif; background: #111; color: #eee; margin: 1.5em; }
main { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } img { image-rendering: pixelated; display: block; border: 1px solid #444; }
figcaption { margin-top: 0.4em; font-size: 0.9em; max-width: 256px; overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
.meta { color: #bbb; font-size: 0.9em; }
.note { color: #aaa; font-size: 0.85em; }
</style></head><body>
<h1>Nearest neighbours of ${escape(queryName)}</h1>
<main>
${figure(scaled(query, scale), `query: ${queryName}`, [`${query.width}x${query.height}`, shared])}
${results.map((r, i) => resultFigure(r, i + 1, offset, scale, shared)).join('\n')}
</main>
<p class="note">Exact search over encrypted records (FNN). The RMS per pixel is sqrt(D/d), in the collection's units. Images are shown with their DICOM window where the record has one, else all through one window (8-bit images as stored); the PNG files beside this page hold the exact pixel values.</p>
</body></html>
`;
  writeFileSync(path, html);
  return path;
}
