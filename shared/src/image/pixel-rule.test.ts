import { describe, expect, it } from 'vitest';
import { applyPixelRule, decimalOf, float32ToDecimal, parseDecimal, type Rescale, type StoredImage } from './pixel-rule';

const rescale = (slope: string, intercept: string): Rescale => ({
  slope: parseDecimal(slope)!,
  intercept: parseDecimal(intercept)!,
  names: ['RescaleSlope', 'RescaleIntercept'],
});

function stored(values: number[], over: Partial<StoredImage> = {}): StoredImage {
  return { width: values.length, height: 1, values, range: [-32768, 32767], where: 'img', ...over };
}

describe('decimals', () => {
  it('reads DICOM DS text exactly', () => {
    expect(parseDecimal('-1024')).toMatchObject({ digits: -1024n, exponent: 0 });
    expect(parseDecimal(' 0.5 ')).toMatchObject({ digits: 5n, exponent: -1 });
    expect(parseDecimal('1E-3')).toMatchObject({ digits: 1n, exponent: -3 });
    expect(parseDecimal('+2.50e1')).toMatchObject({ digits: 250n, exponent: -1 });
    expect(parseDecimal('.25')).toMatchObject({ digits: 25n, exponent: -2 });
    expect(parseDecimal('1,5')).toBeUndefined();
    expect(parseDecimal('')).toBeUndefined();
  });

  it('reads a float32 header field as the decimal its writer meant', () => {
    expect(float32ToDecimal(Math.fround(0.1)).text).toBe('0.1');
    expect(float32ToDecimal(Math.fround(-1024)).text).toBe('-1024');
    expect(float32ToDecimal(Math.fround(0.0125)).text).toBe('0.0125');
    expect(decimalOf(2.5)).toMatchObject({ digits: 25n, exponent: -1 });
  });
});

describe('applyPixelRule', () => {
  it('adds the offset after the rescale', () => {
    const img = applyPixelRule(stored([0, 100, -1024], { rescale: rescale('1', '-1024') }), { offset: 2048 });
    expect(Array.from(img.pixels)).toEqual([1024, 1124, 0]);
    expect(img.maxValue).toBe(65535);
  });

  it('is exact for decimal slopes, through Numbers and BigInts alike', () => {
    expect(Array.from(applyPixelRule(stored([10, 30, 32760], { rescale: rescale('0.1', '0') }), { offset: 0 }).pixels)).toEqual([
      1, 3, 3276,
    ]);
    // 1E-9 * 2^31 range overflows the Number path: BigInts give the same exact answer.
    const tiny = stored([1_000_000_000, 2_000_000_000], { range: [0, 2 ** 32 - 1], rescale: rescale('0.000000001', '0.5') });
    expect(() => applyPixelRule(tiny, { offset: 0 })).toThrow(/not an integer/);
    const tinyWhole = stored([1_500_000_000, 2_500_000_000], { range: [0, 2 ** 32 - 1], rescale: rescale('0.000000001', '0.5') });
    expect(Array.from(applyPixelRule(tinyWhole, { offset: 0 }).pixels)).toEqual([2, 3]);
  });

  it('refuses a non-integer result rather than rounding it', () => {
    expect(() => applyPixelRule(stored([2, 3], { rescale: rescale('0.5', '0') }), { offset: 0 })).toThrow(
      /img: pixel at \(1, 0\) is not an integer after RescaleSlope 0\.5 and RescaleIntercept 0 \(FNN stores integers and does not round\)/,
    );
    expect(() => applyPixelRule(stored([2, 2.5], { range: undefined }), { offset: 0 })).toThrow(
      /pixel at \(1, 0\) is not an integer in the file/,
    );
  });

  it('refuses values outside 0..65535 by position, never clamps, and names the offset that fits the stored range', () => {
    const err = (() => {
      try {
        applyPixelRule(stored([1500, 10], { width: 1, height: 2, rescale: rescale('1', '-1024'), range: [0, 4095] }), { offset: 0 });
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(err).toMatch(/^img: pixel at \(0, 1\) is below 0 after RescaleSlope 1 and RescaleIntercept -1024 and --offset 0/);
    expect(err).toMatch(
      /stored values span 0\.\.4095, -1024\.\.3071 after RescaleSlope 1 and RescaleIntercept -1024, so --offset 1024 fits/,
    );
    expect(err).not.toMatch(/-1014|476/); // positions and metadata, never pixel values
    expect(() => applyPixelRule(stored([65535, 1]), { offset: 1 })).toThrow(/pixel at \(0, 0\) is above 65535 after --offset 1/);
  });

  it('depth: 255 exactly when every value the sample type allows lands in 0..255', () => {
    const depth = (range: [number, number], offset: number, r?: Rescale) =>
      applyPixelRule(stored([Math.max(0, range[0] + offset)], { range, rescale: r }), { offset }).maxValue;
    expect(depth([0, 255], 0)).toBe(255);
    expect(depth([-128, 127], 128)).toBe(255);
    expect(depth([0, 255], 1)).toBe(65535);
    expect(depth([0, 4095], 0)).toBe(65535);
    expect(depth([0, 255], 0, rescale('2', '0'))).toBe(65535);
    expect(applyPixelRule(stored([1], { range: undefined }), { offset: 0 }).maxValue).toBe(65535);
  });
});
