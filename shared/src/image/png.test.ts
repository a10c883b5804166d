import { crc32, deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import type { GrayImage } from './image';
import { decodePng, encodePng } from './png';

/**
 * Builds a PNG byte by byte (filter 0 on every row), independently of pngjs,
 * for the cases pngjs cannot write: palettes, 1/2/4-bit, tRNS.
 * `rows` holds the samples of each row (several per pixel for colour/alpha).
 */
function handMadePng(o: {
  width: number;
  height: number;
  depth: 1 | 2 | 4 | 8 | 16;
  colorType: 0 | 2 | 3 | 4 | 6;
  rows: number[][];
  palette?: [number, number, number][];
  transparency?: Buffer;
}): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    typeAndData.copy(out, 4);
    out.writeUInt32BE(crc32(typeAndData), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(o.width, 0);
  header.writeUInt32BE(o.height, 4);
  header[8] = o.depth;
  header[9] = o.colorType;
  const scanlines = o.rows.map((samples) => {
    const bytes = Buffer.alloc(Math.ceil((samples.length * o.depth) / 8));
    samples.forEach((v, i) => {
      if (o.depth === 16) bytes.writeUInt16BE(v, 2 * i);
      else if (o.depth === 8) bytes[i] = v;
      else bytes[(i * o.depth) >> 3] |= v << (8 - o.depth - ((i * o.depth) & 7));
    });
    return Buffer.concat([Buffer.from([0]), bytes]);
  });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    ...(o.palette ? [chunk('PLTE', Buffer.from(o.palette.flat()))] : []),
    ...(o.transparency ? [chunk('tRNS', o.transparency)] : []),
    chunk('IDAT', deflateSync(Buffer.concat(scanlines))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** pngjs writing from RGBA input, for colour and alpha test files. */
function pngjsPng(width: number, height: number, rgba: number[], colorType: 2 | 4 | 6, bitDepth: 8 | 16 = 8): Buffer {
  const data = bitDepth === 16 ? Buffer.from(Uint16Array.from(rgba).buffer) : Buffer.from(rgba);
  return PNG.sync.write({ width, height, data, gamma: 0 } as unknown as PNG, { colorType, bitDepth });
}

const ihdr = (png: Buffer) => ({ depth: png[24], colorType: png[25] });

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a throw');
}

describe('encodePng / decodePng round trip', () => {
  it('keeps 8-bit values exactly and writes 8-bit grayscale', () => {
    const img: GrayImage = { width: 3, height: 2, maxValue: 255, pixels: Uint16Array.from([0, 1, 127, 128, 254, 255]) };
    const png = encodePng(img);
    expect(ihdr(png)).toEqual({ depth: 8, colorType: 0 });
    expect(decodePng(png, 'a.png')).toEqual(img);
  });

  it('keeps 16-bit values exactly (no rescaling to 8 bits) and writes 16-bit grayscale', () => {
    const values = [0, 1, 255, 256, 300, 4095, 32768, 65534, 65535];
    const img: GrayImage = { width: 3, height: 3, maxValue: 65535, pixels: Uint16Array.from(values) };
    const png = encodePng(img);
    expect(ihdr(png)).toEqual({ depth: 16, colorType: 0 });
    const back = decodePng(png, 'b.png');
    expect(back.maxValue).toBe(65535);
    expect(Array.from(back.pixels)).toEqual(values);
  });

  it('writes 16-bit pixels that are a view into a larger buffer', () => {
    // pngjs reads 16-bit input from byte 0 of data.buffer, so a view must be copied.
    const backing = Uint16Array.from([9, 9, 9, 300, 0, 65535, 7, 9, 9]);
    const img: GrayImage = { width: 2, height: 2, maxValue: 65535, pixels: backing.subarray(3, 7) };
    expect(Array.from(decodePng(encodePng(img), 'c.png').pixels)).toEqual([300, 0, 65535, 7]);
  });

  it('round-trips a 16-bit image with only small values as 16-bit', () => {
    const img: GrayImage = { width: 2, height: 1, maxValue: 65535, pixels: Uint16Array.from([3, 200]) };
    expect(decodePng(encodePng(img), 'd.png')).toEqual(img);
  });

  it('refuses to encode an inconsistent image', () => {
    const img: GrayImage = { width: 2, height: 1, maxValue: 255, pixels: Uint16Array.from([3, 300]) };
    expect(() => encodePng(img)).toThrow(/exceeds the image's maxValue 255/);
  });
});

describe('decodePng on files not written by encodePng', () => {
  it('reads 16-bit grayscale samples as stored', () => {
    const png = handMadePng({ width: 3, height: 1, depth: 16, colorType: 0, rows: [[0, 300, 65535]] });
    expect(decodePng(png, 'x.png')).toEqual({ width: 3, height: 1, maxValue: 65535, pixels: Uint16Array.from([0, 300, 65535]) });
  });

  it('accepts a Uint8Array view with an offset', () => {
    const png = handMadePng({ width: 2, height: 1, depth: 8, colorType: 0, rows: [[10, 20]] });
    const padded = new Uint8Array(png.length + 5);
    padded.set(png, 5);
    expect(Array.from(decodePng(padded.subarray(5), 'v.png').pixels)).toEqual([10, 20]);
  });

  it('scales 1-, 2- and 4-bit grayscale exactly onto 0..255', () => {
    const one = handMadePng({ width: 3, height: 1, depth: 1, colorType: 0, rows: [[1, 0, 1]] });
    const two = handMadePng({ width: 4, height: 1, depth: 2, colorType: 0, rows: [[0, 1, 2, 3]] });
    const four = handMadePng({ width: 3, height: 1, depth: 4, colorType: 0, rows: [[0, 7, 15]] });
    expect(decodePng(one, '1.png')).toMatchObject({ maxValue: 255, pixels: Uint16Array.from([255, 0, 255]) });
    expect(Array.from(decodePng(two, '2.png').pixels)).toEqual([0, 85, 170, 255]);
    expect(Array.from(decodePng(four, '4.png').pixels)).toEqual([0, 119, 255]);
  });

  it('accepts RGB whose channels are equal everywhere as gray', () => {
    const png = pngjsPng(2, 1, [5, 5, 5, 255, 200, 200, 200, 255], 2);
    expect(ihdr(png).colorType).toBe(2);
    expect(decodePng(png, 'g.png')).toEqual({ width: 2, height: 1, maxValue: 255, pixels: Uint16Array.from([5, 200]) });
  });

  it('refuses colour, naming the file', () => {
    const png = pngjsPng(2, 1, [5, 5, 5, 255, 200, 10, 200, 255], 2);
    expect(messageOf(() => decodePng(png, 'scan-017.png'))).toBe('scan-017.png: colour image; FNN stores grayscale images only');
  });

  it('accepts a palette of grays and refuses a palette colour in use', () => {
    const palette: [number, number, number][] = [
      [0, 0, 0],
      [90, 90, 90],
      [255, 0, 0],
    ];
    const gray = handMadePng({ width: 2, height: 1, depth: 8, colorType: 3, rows: [[1, 0]], palette });
    const red = handMadePng({ width: 2, height: 1, depth: 8, colorType: 3, rows: [[1, 2]], palette });
    expect(decodePng(gray, 'p.png')).toEqual({ width: 2, height: 1, maxValue: 255, pixels: Uint16Array.from([90, 0]) });
    expect(() => decodePng(red, 'p.png')).toThrow('p.png: colour image; FNN stores grayscale images only');
  });

  describe('gray + alpha', () => {
    it('drops alpha when every pixel is opaque (8-bit)', () => {
      const png = pngjsPng(2, 1, [7, 7, 7, 255, 250, 250, 250, 255], 4);
      expect(ihdr(png)).toEqual({ depth: 8, colorType: 4 });
      expect(decodePng(png, 'ga.png')).toEqual({ width: 2, height: 1, maxValue: 255, pixels: Uint16Array.from([7, 250]) });
    });

    it('drops alpha when every pixel is opaque (16-bit)', () => {
      const png = pngjsPng(2, 1, [300, 300, 300, 65535, 65535, 65535, 65535, 65535], 4, 16);
      expect(ihdr(png)).toEqual({ depth: 16, colorType: 4 });
      expect(decodePng(png, 'ga16.png')).toEqual({
        width: 2,
        height: 1,
        maxValue: 65535,
        pixels: Uint16Array.from([300, 65535]),
      });
    });

    it('refuses an image with any see-through pixel', () => {
      const png = pngjsPng(2, 1, [7, 7, 7, 255, 250, 250, 250, 254], 4);
      expect(() => decodePng(png, 'ga.png')).toThrow('ga.png: has transparent pixels; FNN stores opaque grayscale images only');
    });

    it('refuses grayscale whose tRNS colour occurs in the image', () => {
      const trns = Buffer.from([0, 20]);
      const used = handMadePng({ width: 2, height: 1, depth: 8, colorType: 0, rows: [[10, 20]], transparency: trns });
      const unused = handMadePng({ width: 2, height: 1, depth: 8, colorType: 0, rows: [[10, 30]], transparency: trns });
      expect(() => decodePng(used, 't.png')).toThrow(/t\.png: has transparent pixels/);
      expect(Array.from(decodePng(unused, 't.png').pixels)).toEqual([10, 30]);
    });
  });

  describe('unreadable input', () => {
    const good = encodePng({ width: 4, height: 4, maxValue: 255, pixels: new Uint16Array(16).fill(9) });

    it('refuses a truncated PNG, naming the file', () => {
      for (const cut of [good.length - 1, good.length - 12, 40, 8, 3]) {
        expect(messageOf(() => decodePng(good.subarray(0, cut), 'ct-042.png'))).toMatch(/^ct-042\.png: not a readable PNG \(.+\)$/);
      }
      expect(messageOf(() => decodePng(good.subarray(0, good.length - 12), 'ct-042.png'))).toBe(
        'ct-042.png: not a readable PNG (the file ends early)',
      );
    });

    it('refuses bytes that are not a PNG, empty input and trailing garbage', () => {
      expect(() => decodePng(Buffer.from('GIF89a not a png'), 'x.gif')).toThrow('x.gif: not a readable PNG (no PNG signature)');
      expect(() => decodePng(new Uint8Array(0), 'empty.png')).toThrow(/^empty\.png: not a readable PNG/);
      expect(() => decodePng(Buffer.concat([good, Buffer.from([1, 2, 3])]), 'tail.png')).toThrow(
        'tail.png: not a readable PNG (corrupt or unsupported data)',
      );
    });

    it('refuses a corrupted chunk', () => {
      const corrupt = Buffer.from(good);
      corrupt[good.length - 20] ^= 0xff; // inside IDAT: the CRC no longer matches
      expect(() => decodePng(corrupt, 'bad.png')).toThrow('bad.png: not a readable PNG (corrupt or unsupported data)');
    });
  });
});
