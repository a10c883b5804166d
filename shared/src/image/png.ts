// PNG <-> GrayImage, with pngjs 7. Two pngjs behaviours shape this file (both
// read from node_modules/pngjs/lib, v7.0.0):
//
// * Reading: PNG.sync.read always expands to RGBA, and unless `skipRescale`
//   is set it rescales 16-bit samples to 8 bits (format-normaliser.js), which
//   would silently change every distance. With skipRescale, 16-bit images come
//   back as a Uint16Array of raw samples, and 1/2/4-bit images come back
//   unscaled (0..2^depth-1, alpha = 2^depth-1), so we scale those to 0..255
//   ourselves; 255 / (2^depth-1) is an integer (255, 85, 17), so this is exact.
//   Palettes are expanded to their 8-bit RGBA entries; a tRNS chunk turns the
//   matching pixels into RGBA 0,0,0,0.
//
// * Writing: with colorType = inputColorType = 0 and inputHasAlpha false,
//   bitpacker.js takes 8-bit data as one byte per pixel unchanged, and for
//   16-bit reinterprets `data.buffer` as a host-endian Uint16Array (from byte 0
//   of the ArrayBuffer, ignoring byteOffset) and writes each sample big-endian.
//   So 16-bit grayscale output works, provided the Buffer owns its ArrayBuffer
//   from offset 0, which is why the samples are copied into a fresh one.

import { PNG } from 'pngjs';
import { invalidInput } from '../errors';
import { assertGrayImage, MAX_VALUE_16_BIT, MAX_VALUE_8_BIT, type GrayImage } from './image';

const PALETTE_COLOR_TYPE = 3;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function decodePng(bytes: Uint8Array, name: string): GrayImage {
  if (bytes.length >= PNG_SIGNATURE.length && PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw invalidInput(`${name}: not a readable PNG (no PNG signature)`);
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(buffer, { skipRescale: true });
  } catch (e) {
    throw invalidInput(`${name}: not a readable PNG (${shortReason(e)})`);
  }
  const { width, height, depth } = png;
  if (width === 0 || height === 0) {
    throw invalidInput(`${name}: not a readable PNG (it has no pixels)`);
  }
  // @types/pngjs omits 3 from ColorType, but the parser reports palettes as 3.
  const isPalette = (png.colorType as number) === PALETTE_COLOR_TYPE;
  const nativeMax = isPalette ? 255 : 2 ** depth - 1;
  const toEightBit = depth < 8 && !isPalette ? MAX_VALUE_8_BIT / nativeMax : 1;
  // A Buffer for depth <= 8, a Uint16Array for 16-bit (skipRescale), 4 samples per pixel.
  const rgba = png.data as ArrayLike<number>;

  const pixels = new Uint16Array(width * height);
  let transparent = false;
  for (let i = 0, p = 0; i < pixels.length; i++, p += 4) {
    const gray = rgba[p];
    if (rgba[p + 1] !== gray || rgba[p + 2] !== gray) {
      throw invalidInput(`${name}: colour image; FNN stores grayscale images only`);
    }
    if (rgba[p + 3] !== nativeMax) transparent = true;
    pixels[i] = gray * toEightBit;
  }
  // Alpha is dropped, which is only faithful when nothing was see-through.
  if (transparent) {
    throw invalidInput(`${name}: has transparent pixels; FNN stores opaque grayscale images only`);
  }
  return { width, height, maxValue: depth === 16 ? MAX_VALUE_16_BIT : MAX_VALUE_8_BIT, pixels };
}

/** 8-bit grayscale when maxValue is 255, 16-bit grayscale when it is 65535. */
export function encodePng(img: GrayImage): Buffer {
  assertGrayImage(img);
  const sixteenBit = img.maxValue > MAX_VALUE_8_BIT;
  const samples = sixteenBit ? new Uint16Array(img.pixels) : Uint8Array.from(img.pixels);
  // PNG.sync.write reads only width, height, data and gamma (packer-sync.js),
  // so a plain object stands in for a PNG stream instance.
  const source = { width: img.width, height: img.height, data: Buffer.from(samples.buffer), gamma: 0 };
  return PNG.sync.write(source as unknown as PNG, {
    colorType: 0,
    inputColorType: 0,
    inputHasAlpha: false,
    bitDepth: sixteenBit ? 16 : 8,
  });
}

function shortReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.includes('waitng on finished stream')) return 'the file ends early';
  // PNG.sync.read stops at the first bad chunk (CRC mismatch, unsupported bit
  // depth, ...) but then throws this about the unread rest, hiding the cause.
  if (message.includes('unrecognised content at end of stream')) return 'corrupt or unsupported data';
  return message.length > 100 ? `${message.slice(0, 100)}...` : message;
}
