import { describe, expect, it } from 'vitest';
import { assertGrayImage, centerCrop, centerFit, downsampleBox, sameSize, type GrayImage } from './image';

function image(width: number, height: number, values: number[], maxValue = 255): GrayImage {
  return { width, height, maxValue, pixels: Uint16Array.from(values) };
}

describe('assertGrayImage', () => {
  it('accepts consistent 8-bit and 16-bit images', () => {
    expect(() => assertGrayImage(image(2, 1, [0, 255]))).not.toThrow();
    expect(() => assertGrayImage(image(2, 1, [0, 65535], 65535))).not.toThrow();
  });

  it('refuses a pixel count that does not match the dimensions', () => {
    expect(() => assertGrayImage(image(2, 2, [1, 2, 3]))).toThrow(/3 pixels but 2 x 2 needs 4/);
  });

  it('refuses zero, negative and fractional dimensions', () => {
    expect(() => assertGrayImage(image(0, 1, []))).toThrow(/positive integers/);
    expect(() => assertGrayImage(image(-1, -1, [1]))).toThrow(/positive integers/);
    expect(() => assertGrayImage(image(1.5, 2, [1, 2, 3]))).toThrow(/positive integers/);
  });

  it('refuses a maxValue other than 255 or 65535', () => {
    expect(() => assertGrayImage(image(1, 1, [7], 4095))).toThrow(/maxValue must be 255/);
  });

  it('refuses a pixel above maxValue and says where, not what', () => {
    const err = (() => {
      try {
        assertGrayImage(image(3, 2, [0, 0, 0, 0, 256, 0]));
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a throw');
    })();
    expect(err.message).toMatch(/pixel at \(1, 1\) exceeds the image's maxValue 255/);
    expect(err.message).not.toMatch(/256/);
  });

  it('refuses pixels that are not a Uint16Array', () => {
    const bad = { width: 1, height: 1, maxValue: 255, pixels: [1] } as unknown as GrayImage;
    expect(() => assertGrayImage(bad)).toThrow(/Uint16Array/);
  });
});

describe('sameSize', () => {
  it('compares width and height only', () => {
    expect(sameSize(image(2, 1, [1, 2]), image(2, 1, [3, 4], 65535))).toBe(true);
    expect(sameSize(image(2, 1, [1, 2]), image(1, 2, [1, 2]))).toBe(false);
  });
});

describe('centerCrop', () => {
  // 5 x 4, pixel value = 10*row + column
  const grid = image(5, 4, [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24, 30, 31, 32, 33, 34]);

  it('takes the middle window', () => {
    const out = centerCrop(grid, 3, 2);
    expect(out).toMatchObject({ width: 3, height: 2, maxValue: 255 });
    expect(Array.from(out.pixels)).toEqual([11, 12, 13, 21, 22, 23]);
  });

  it('leaves an odd margin pixel on the right and bottom', () => {
    const out = centerCrop(grid, 2, 1);
    // margins: (5-2)/2 -> 1 left, 2 right; (4-1)/2 -> 1 top, 2 bottom
    expect(Array.from(out.pixels)).toEqual([11, 12]);
  });

  it('returns a copy at full size', () => {
    const out = centerCrop(grid, 5, 4);
    expect(Array.from(out.pixels)).toEqual(Array.from(grid.pixels));
    expect(out.pixels).not.toBe(grid.pixels);
  });

  it('refuses windows larger than the image or not whole', () => {
    expect(() => centerCrop(grid, 6, 1)).toThrow(RangeError);
    expect(() => centerCrop(grid, 1, 5)).toThrow(RangeError);
    expect(() => centerCrop(grid, 0, 1)).toThrow(RangeError);
    expect(() => centerCrop(grid, 1.5, 1)).toThrow(RangeError);
  });
});

describe('downsampleBox', () => {
  it('averages each block and rounds down', () => {
    // blocks: [0,1,2,4] -> 7/4 = 1.75 -> 1;  [3,3,3,4] -> 13/4 -> 3
    //         [255,255,255,255] -> 255;      [0,0,0,3] -> 0.75 -> 0
    const img = image(4, 4, [0, 1, 3, 3, 2, 4, 3, 4, 255, 255, 0, 0, 255, 255, 0, 3]);
    const out = downsampleBox(img, 2);
    expect(out).toMatchObject({ width: 2, height: 2, maxValue: 255 });
    expect(Array.from(out.pixels)).toEqual([1, 3, 255, 0]);
  });

  it('keeps 16-bit extremes', () => {
    const img = image(3, 3, new Array(9).fill(65535), 65535);
    expect(Array.from(downsampleBox(img, 3).pixels)).toEqual([65535]);
  });

  it('is the identity for factor 1', () => {
    const img = image(2, 2, [5, 6, 7, 8]);
    expect(Array.from(downsampleBox(img, 1).pixels)).toEqual([5, 6, 7, 8]);
  });

  it('refuses sizes that do not divide and bad factors', () => {
    expect(() => downsampleBox(image(3, 2, [1, 2, 3, 4, 5, 6]), 2)).toThrow(/does not divide/);
    expect(() => downsampleBox(image(2, 2, [1, 2, 3, 4]), 0)).toThrow(RangeError);
    expect(() => downsampleBox(image(2, 2, [1, 2, 3, 4]), 1.5)).toThrow(RangeError);
  });
});

describe('centerFit', () => {
  const grid = (w: number, h: number) =>
    image(
      w,
      h,
      Array.from({ length: w * h }, (_, i) => i + 1),
    );

  it('crops like centerCrop when the image is larger', () => {
    const src = grid(5, 4);
    expect(centerFit(src, 2, 2)).toEqual(centerCrop(src, 2, 2));
    expect(centerFit(src, 5, 4)).toBe(src);
  });

  it('pads with 0 around the middle when the image is smaller (extra pixel right/bottom)', () => {
    expect(Array.from(centerFit(grid(1, 1), 3, 2).pixels)).toEqual([0, 1, 0, 0, 0, 0]);
    expect(Array.from(centerFit(grid(2, 1), 4, 3).pixels)).toEqual([0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0]);
  });

  it('crops one axis and pads the other', () => {
    // 3 wide x 1 high -> 1 wide x 3 high: the middle column, padded above and below.
    const out = centerFit(grid(3, 1), 1, 3);
    expect([out.width, out.height, Array.from(out.pixels)]).toEqual([1, 3, [0, 2, 0]]);
    expect(out.maxValue).toBe(255);
  });
});
