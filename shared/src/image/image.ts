// The one in-memory form of an image in FNN: grayscale, integer pixels, row
// major. Everything that encrypts, compares or stores an image starts here, so
// the checks below are what keeps a malformed image out of the ciphertexts.

import { invalidInput } from '../errors';

export interface GrayImage {
  width: number;
  height: number;
  /** 255 for 8-bit, 65535 for 16-bit: the largest value a pixel of this collection may take. */
  maxValue: number;
  /** Row-major, length width*height. */
  pixels: Uint16Array;
}

/** The only two pixel ranges FNN stores: those of 8-bit and 16-bit grayscale PNGs. */
export const MAX_VALUE_8_BIT = 255;
export const MAX_VALUE_16_BIT = 65535;

/**
 * Throws if the image's fields disagree with one another. Messages name
 * positions, never pixel values (see errors.ts: messages reach logs).
 */
export function assertGrayImage(img: GrayImage): void {
  const { width, height, maxValue, pixels } = img;
  if (!Number.isSafeInteger(width) || width <= 0 || !Number.isSafeInteger(height) || height <= 0) {
    throw invalidInput(`image dimensions must be positive integers, got ${width} x ${height}`);
  }
  if (maxValue !== MAX_VALUE_8_BIT && maxValue !== MAX_VALUE_16_BIT) {
    throw invalidInput(`image maxValue must be 255 (8-bit) or 65535 (16-bit), got ${maxValue}`);
  }
  if (!(pixels instanceof Uint16Array)) {
    throw invalidInput('image pixels must be a Uint16Array');
  }
  if (pixels.length !== width * height) {
    throw invalidInput(`image has ${pixels.length} pixels but ${width} x ${height} needs ${width * height}`);
  }
  // A Uint16Array cannot exceed 65535, so only 8-bit images need the scan.
  if (maxValue < MAX_VALUE_16_BIT) {
    for (let i = 0; i < pixels.length; i++) {
      if (pixels[i] > maxValue) {
        throw invalidInput(`pixel at (${i % width}, ${Math.floor(i / width)}) exceeds the image's maxValue ${maxValue}`);
      }
    }
  }
}

export function sameSize(a: GrayImage, b: GrayImage): boolean {
  return a.width === b.width && a.height === b.height;
}

/** The w x h window in the middle; an odd margin leaves the extra pixel on the right/bottom. */
export function centerCrop(img: GrayImage, w: number, h: number): GrayImage {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > img.width || h > img.height) {
    throw new RangeError(`cannot crop ${w} x ${h} out of a ${img.width} x ${img.height} image`);
  }
  const left = Math.floor((img.width - w) / 2);
  const top = Math.floor((img.height - h) / 2);
  const pixels = new Uint16Array(w * h);
  for (let y = 0; y < h; y++) {
    const from = (top + y) * img.width + left;
    pixels.set(img.pixels.subarray(from, from + w), y * w);
  }
  return { width: w, height: h, maxValue: img.maxValue, pixels };
}

/**
 * Each output pixel is the mean of a factor x factor block, rounded down, so
 * the result stays an integer image within the same maxValue. The size must
 * divide exactly (crop first): silently dropping edge pixels would hide data loss.
 */
export function downsampleBox(img: GrayImage, factor: number): GrayImage {
  if (!Number.isInteger(factor) || factor < 1) {
    throw new RangeError(`downsample factor must be a positive integer, got ${factor}`);
  }
  if (img.width % factor !== 0 || img.height % factor !== 0) {
    throw new RangeError(`a ${img.width} x ${img.height} image does not divide into ${factor} x ${factor} blocks`);
  }
  const width = img.width / factor;
  const height = img.height / factor;
  const blockArea = factor * factor;
  const pixels = new Uint16Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // At most 65535 * factor^2: exact in a Number for any image that fits in memory.
      let sum = 0;
      for (let dy = 0; dy < factor; dy++) {
        const row = (y * factor + dy) * img.width + x * factor;
        for (let dx = 0; dx < factor; dx++) sum += img.pixels[row + dx];
      }
      pixels[y * width + x] = Math.floor(sum / blockArea);
    }
  }
  return { width, height, maxValue: img.maxValue, pixels };
}

/**
 * The image centred in a w x h frame: cropped where it is larger, padded with
 * 0 where it is smaller (each axis on its own). Crops leave the extra pixel of
 * an odd margin on the right/bottom, as centerCrop does; pads put it there too.
 */
export function centerFit(img: GrayImage, w: number, h: number): GrayImage {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new RangeError(`cannot fit an image into ${w} x ${h}`);
  }
  if (img.width === w && img.height === h) return img;
  // Where column/row 0 of the frame falls in the source image.
  const dx = w <= img.width ? Math.floor((img.width - w) / 2) : -Math.floor((w - img.width) / 2);
  const dy = h <= img.height ? Math.floor((img.height - h) / 2) : -Math.floor((h - img.height) / 2);
  const pixels = new Uint16Array(w * h);
  const x0 = Math.max(0, -dx);
  const x1 = Math.min(w, img.width - dx);
  for (let y = 0; y < h; y++) {
    const sy = y + dy;
    if (sy < 0 || sy >= img.height) continue;
    const from = sy * img.width + x0 + dx;
    pixels.set(img.pixels.subarray(from, from + (x1 - x0)), y * w + x0);
  }
  return { width: w, height: h, maxValue: img.maxValue, pixels };
}
