// The one rule that turns a file's stored sample values into the non-negative
// integers FNN encrypts, whatever the format (PNG, DICOM, NIfTI):
//
//   value = stored * slope + intercept + offset
//
// slope/intercept come from the file (DICOM RescaleSlope/RescaleIntercept,
// NIfTI scl_slope/scl_inter; PNG has none), offset from the collection
// (`--offset`, the same for every upload and every query). The arithmetic is
// exact: a value that is not an integer, or that falls outside 0..65535, is
// refused, never rounded or clamped, because a silently changed pixel changes
// every distance to it and no one would notice.
//
// Messages name the position and the file's metadata, never a pixel value
// (see errors.ts).

import { invalidInput } from '../errors';
import { MAX_VALUE_16_BIT, MAX_VALUE_8_BIT, type GrayImage } from './image';

export interface PixelRule {
  /** Added to every value after the file's own rescale; an integer. */
  offset: number;
}

export const DEFAULT_PIXEL_RULE: PixelRule = { offset: 0 };

/** The largest |offset| a collection may take: wider than any modality's range, small enough that no sum overflows a key. */
export const MAX_OFFSET = 1 << 20;

/**
 * What a collection is created with besides its size and layouts, kept with it
 * at C1 so every later upload and query maps pixels the same way.
 */
export interface CollectionSettings {
  offset: number;
  /** An image of another size: refused, or center-cropped/padded with 0 to the collection's size. */
  fit: 'refuse' | 'crop';
}

/** A decimal number held exactly: digits * 10^exponent. */
export interface Decimal {
  digits: bigint;
  exponent: number;
  /** As written in the file, for messages. */
  text: string;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** DICOM DS text ("-1024", "0.5", "1E-3") as an exact decimal; undefined if it is not one. */
export function parseDecimal(text: string): Decimal | undefined {
  const t = text.trim();
  if (!DECIMAL.test(t)) return undefined;
  const [mantissa, exp = '0'] = t.toLowerCase().split('e');
  const [whole, fraction = ''] = mantissa.replace(/^[+-]/, '').split('.');
  const negative = mantissa.startsWith('-');
  const digits = BigInt((whole || '0') + fraction) * (negative ? -1n : 1n);
  return { digits, exponent: Number(exp) - fraction.length, text: t };
}

/**
 * A float32 header field (NIfTI scl_slope) as the decimal its writer meant:
 * the shortest decimal that reads back as the same float32, so 0.1f is 0.1
 * and not 0.100000001490116.
 */
export function float32ToDecimal(value: number): Decimal {
  const f = Math.fround(value);
  for (let precision = 1; precision <= 9; precision++) {
    const text = f.toPrecision(precision);
    if (Math.fround(Number(text)) === f) return parseDecimal(String(Number(text)))!;
  }
  return parseDecimal(String(f))!;
}

export const decimalOf = (n: number): Decimal => parseDecimal(String(n))!;

export interface Rescale {
  slope: Decimal;
  intercept: Decimal;
  /** What the file calls them, for messages: "RescaleSlope"/"RescaleIntercept" or "scl_slope"/"scl_inter". */
  names: [string, string];
}

/** Stored values of one image, before the rule. */
export interface StoredImage {
  width: number;
  height: number;
  /** Row-major stored values; integers (a non-integer is refused). */
  values: ArrayLike<number>;
  /** The values the file's sample type can hold, [lowest, highest]; undefined when unbounded (floats). */
  range: [number, number] | undefined;
  /** Absent: slope 1, intercept 0. */
  rescale?: Rescale;
  /** How messages name this image: "scan.dcm" or "scan.dcm frame 3". */
  where: string;
}

const isOne = (d: Decimal) => d.exponent <= 0 && d.digits === 10n ** BigInt(-d.exponent);
const isIdentity = (r: Rescale | undefined) => !r || (isOne(r.slope) && r.intercept.digits === 0n);

/**
 * Applies the rule. maxValue (the collection's pixel depth) is 255 when every
 * value the file's sample type allows lands in 0..255 under the rule, else
 * 65535: it depends on the file's format and the rule, never on which pixels
 * happen to be present, so every image of a series gets the same depth.
 */
export function applyPixelRule(img: StoredImage, rule: PixelRule): GrayImage {
  const { width, height, values, where } = img;
  if (!Number.isSafeInteger(rule.offset)) throw new RangeError(`offset must be an integer, got ${rule.offset}`);
  const n = width * height;
  if (values.length !== n) throw invalidInput(`${where}: has ${values.length} values but ${width}x${height} needs ${n}`);
  const map = valueMap(img.rescale, rule.offset, img.range);
  const pixels = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const stored = values[i];
    if (!Number.isInteger(stored)) throw refusal(img, rule, i, 'is not an integer in the file (FNN stores integers and does not round)');
    const v = map(stored);
    if (v === undefined)
      throw refusal(img, rule, i, `is not an integer after ${rescaleText(img.rescale)} (FNN stores integers and does not round)`);
    if (v < 0) throw refusal(img, rule, i, `is below 0 after ${ruleText(img, rule)}`);
    if (v > MAX_VALUE_16_BIT) throw refusal(img, rule, i, `is above 65535 after ${ruleText(img, rule)}`);
    pixels[i] = v;
  }
  const span = ruledRange(img, rule);
  const maxValue = span && span[0] >= 0 && span[1] <= MAX_VALUE_8_BIT ? MAX_VALUE_8_BIT : MAX_VALUE_16_BIT;
  return { width, height, maxValue, pixels };
}

/**
 * stored -> stored*slope + intercept + offset, exactly; undefined when that is
 * not an integer. slope and intercept are brought to a common power of ten,
 * so the test is one integer division; Numbers while every intermediate is a
 * safe integer (always, for 8/16-bit data and the usual slopes), else BigInts.
 */
function valueMap(rescale: Rescale | undefined, offset: number, range: [number, number] | undefined) {
  if (isIdentity(rescale)) return (stored: number) => stored + offset;
  const { slope, intercept } = rescale!;
  const e = Math.min(slope.exponent, intercept.exponent, 0);
  const S = slope.digits * 10n ** BigInt(slope.exponent - e);
  const I = intercept.digits * 10n ** BigInt(intercept.exponent - e) + BigInt(offset) * 10n ** BigInt(-e);
  const D = 10n ** BigInt(-e);
  const maxStored = range ? Math.max(Math.abs(range[0]), Math.abs(range[1])) : Infinity;
  const abs = (x: bigint) => (x < 0n ? -x : x);
  const safe = BigInt(Number.MAX_SAFE_INTEGER);
  if (Number.isFinite(maxStored) && BigInt(maxStored) * abs(S) + abs(I) <= safe && D <= safe) {
    const s = Number(S);
    const i0 = Number(I);
    const d = Number(D);
    return (stored: number) => {
      const t = stored * s + i0;
      return t % d === 0 ? t / d : undefined;
    };
  }
  return (stored: number) => {
    const t = BigInt(stored) * S + I;
    return t % D === 0n ? Number(t / D) : undefined;
  };
}

/** The values the rule can produce from the file's sample range (before the 0..65535 check). */
function ruledRange(img: StoredImage, rule: PixelRule): [number, number] | undefined {
  if (!img.range) return undefined;
  const slope = img.rescale ? Number(img.rescale.slope.text) : 1;
  const intercept = img.rescale ? Number(img.rescale.intercept.text) : 0;
  const a = img.range[0] * slope + intercept + rule.offset;
  const b = img.range[1] * slope + intercept + rule.offset;
  return [Math.min(a, b), Math.max(a, b)];
}

const rescaleText = (r: Rescale | undefined) => (r ? `${r.names[0]} ${r.slope.text} and ${r.names[1]} ${r.intercept.text}` : 'no rescale');

const ruleText = (img: StoredImage, rule: PixelRule) =>
  `${img.rescale && !isIdentity(img.rescale) ? `${rescaleText(img.rescale)} and ` : ''}--offset ${rule.offset}`;

function refusal(img: StoredImage, rule: PixelRule, index: number, what: string) {
  const x = index % img.width;
  const y = Math.floor(index / img.width);
  let hint = '';
  const span = ruledRange(img, rule);
  if (span && img.range && (what.includes('below 0') || what.includes('above 65535'))) {
    // From the metadata only: the range the file's sample type allows.
    const withoutOffset: [number, number] = [span[0] - rule.offset, span[1] - rule.offset];
    const scaled = img.rescale && !isIdentity(img.rescale);
    hint = `; the file's stored values span ${img.range[0]}..${img.range[1]}`;
    if (scaled) hint += `, ${withoutOffset[0]}..${withoutOffset[1]} after ${rescaleText(img.rescale)}`;
    if (withoutOffset[1] - withoutOffset[0] <= MAX_VALUE_16_BIT) hint += `, so --offset ${-withoutOffset[0]} fits every value they allow`;
    hint += ' (use one --offset for the whole collection and its queries)';
  }
  return invalidInput(`${img.where}: pixel at (${x}, ${y}) ${what}${hint}`);
}
