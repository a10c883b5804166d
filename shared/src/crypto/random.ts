import { randomBytes } from 'node:crypto';

// All protocol randomness comes from node:crypto.

/** Uniform in [0, 2^bits). */
export function randomBits(bits: number): bigint {
  const bytes = randomBytes(Math.ceil(bits / 8));
  const excess = bytes.length * 8 - bits;
  if (excess > 0) bytes[0] &= 0xff >> excess;
  return BigInt('0x' + (bytes.toString('hex') || '0'));
}

/** Uniform in [0, bound), by rejection sampling (no modulo bias). */
export function randomBelow(bound: bigint): bigint {
  if (bound <= 0n) throw new RangeError('randomBelow needs a positive bound');
  const bits = bound.toString(2).length;
  for (;;) {
    const x = randomBits(bits);
    if (x < bound) return x;
  }
}

/** Uniform in [low, high). */
export function randomBetween(low: bigint, high: bigint): bigint {
  return low + randomBelow(high - low);
}
