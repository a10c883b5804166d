import { fixedBlobToValues, fixedWidthCount, toFixedWidth, valuesToFixedBlob, type FixedWidthValues } from './codec';
import { native } from './native';

// prod_i base_i^(exp_i) mod m by the bucket (Pippenger) method. Naively each
// term costs a full exponentiation (~1.5 * bits multiplications); with buckets a
// window of c bits costs n + 2^(c+1) multiplications for all n terms together,
// so a term costs about bits/c multiplications instead. The products run in C
// (shared/native/multiexp.c, ~2.5x BigInt's speed): ~35 us per term for
// 49-bit exponents mod the N^2 of a 2048-bit key.

/** The window that minimises (bits / c) * (n + 2^(c+1)). */
export function bestWindow(terms: number, exponentBits: number): number {
  let best = 1;
  let bestCost = Infinity;
  for (let c = 1; c <= 20; c++) {
    const cost = Math.ceil(exponentBits / c) * (terms + 2 ** (c + 1) + c);
    if (cost < bestCost) {
      best = c;
      bestCost = cost;
    }
  }
  return best;
}

/** prod base_i^(e_i) mod m for bases in [0, m) and non-negative exponents (in the C module). */
export function multiExp(bases: readonly bigint[], exponents: readonly bigint[], modulus: bigint): bigint {
  if (bases.length !== exponents.length) throw new RangeError('multiExp needs one exponent per base');
  checkModulus(modulus);
  for (const b of bases) if (b < 0n || b >= modulus) throw new RangeError('multiExp takes bases in [0, modulus)');
  const width = byteLength(modulus);
  return multiExpFixed({ bytes: valuesToFixedBlob(bases, width), width }, toFixedWidth(exponents, 'exponent'), modulus);
}

/**
 * multiExp of values already in bytes (a stored column and a query's share):
 * no conversion to BigInt. The C module refuses a base that is not below the
 * modulus, so a corrupt column fails rather than gives a wrong product.
 */
export function multiExpFixed(bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint): bigint {
  checkModulus(modulus);
  const count = fixedWidthCount(bases, 'base');
  if (fixedWidthCount(exponents, 'exponent') !== count) throw new RangeError('multiExp needs one exponent per base');
  const bits = largestBitLength(exponents);
  if (bits === 0) return 1n;
  const modulusBytes = byteLength(modulus);
  const product = native.multiExp(
    valuesToFixedBlob([modulus], modulusBytes),
    asBuffer(bases.bytes),
    bases.width,
    asBuffer(exponents.bytes),
    exponents.width,
    bestWindow(count, bits),
  );
  return fixedBlobToValues(product, modulusBytes)[0];
}

function checkModulus(modulus: bigint): void {
  if (modulus <= 1n || modulus % 2n === 0n) throw new RangeError('multiExp needs an odd modulus above 1');
}

const byteLength = (x: bigint) => Math.ceil(x.toString(16).length / 2);

const asBuffer = (b: Uint8Array) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The bit length of the largest value (0 if all are zero), read from the bytes. */
function largestBitLength({ bytes, width }: FixedWidthValues): number {
  let best = 0;
  for (let start = 0; start < bytes.length; start += width) {
    let i = start;
    const end = start + width;
    while (i < end && bytes[i] === 0) i++;
    if (i === end) continue;
    const bits = (end - i - 1) * 8 + (32 - Math.clz32(bytes[i]));
    if (bits > best) best = bits;
  }
  return best;
}
