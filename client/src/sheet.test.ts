import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodePng, type GrayImage } from '@fnn/shared';
import { windowed, writeSheet } from './sheet';

const dir = mkdtempSync(join(tmpdir(), 'fnn-sheet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const image = (maxValue: number, values: number[]): GrayImage => ({ width: 2, height: 1, maxValue, pixels: Uint16Array.from(values) });
const drawn = (html: string) =>
  [...html.matchAll(/src="data:image\/png;base64,([^"]+)"/g)].map((m) => Array.from(decodePng(Buffer.from(m[1], 'base64'), 'x').pixels));

describe('the result sheet', () => {
  it('keeps a distance on one line and lets only the ID wrap', () => {
    const html = readFileSync(
      writeSheet(dir, 'a', 'q.png', image(255, [1, 2]), [
        { id: 'r.png', distance: '65710', rmsPerPixel: 181, metadata: {}, image: image(255, [1, 3]) },
      ]),
      'utf8',
    );
    expect(html).toContain('1. r.png<br><span class="nowrap">squared distance 65710, RMS 181 per pixel</span>');
    expect(html).not.toContain('break-all');
  });

  it('draws 8-bit images as stored, and deeper ones through one window for all (no stretch per image)', () => {
    const eight = readFileSync(
      writeSheet(dir, 'b', 'q.png', image(255, [10, 20]), [
        { id: 'r', distance: '1', rmsPerPixel: 0.707, metadata: {}, image: image(255, [11, 20]) },
      ]),
      'utf8',
    );
    expect(drawn(eight)).toEqual([
      [10, 20],
      [11, 20],
    ]);
    const deep = readFileSync(
      writeSheet(dir, 'c', 'q.dcm', image(65535, [0, 1000]), [
        { id: 'r', distance: '1', rmsPerPixel: 0.707, metadata: {}, image: image(65535, [0, 500]) },
      ]),
      'utf8',
    );
    // One map, 0..1000 -> 0..255: the darker neighbour stays darker.
    expect(drawn(deep)).toEqual([
      [0, 255],
      [0, 128],
    ]);
  });
});

// The sheet draws a record with its DICOM window: PS3.3 C.11.2.1.2.1's linear
// function, on the stored value less the collection's offset.

describe('windowed', () => {
  it('maps below the window to black, above to white, the centre to mid-gray, after taking off the offset', () => {
    // CT in Hounsfield units stored with --offset 1024; a brain window W 80 / L 40.
    const hu = [-1000, 0, 40, 79, 80, 3000];
    const image = { width: hu.length, height: 1, maxValue: 65535, pixels: Uint16Array.from(hu, (v) => v + 1024) };
    const shown = windowed(image, 40, 80, 1024);
    expect(shown.maxValue).toBe(255);
    expect(Array.from(shown.pixels)).toEqual([0, 0, 129, 255, 255, 255]);
    // Without the offset taken off, -1000 HU (stored 24) would fall inside the window.
    expect(Array.from(windowed(image, 40, 80, 0).pixels)).toEqual([77, 255, 255, 255, 255, 255]);
  });
});
