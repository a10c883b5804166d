import { fixedBlobToValues, valuesToFixedBlob } from './codec';
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
  if (modulus <= 1n || modulus % 2n === 0n) throw new RangeError('multiExp needs an odd modulus above 1');
  let maxExp = 0n;
  for (const e of exponents) {
    if (e < 0n) throw new RangeError('multiExp takes non-negative exponents');
    if (e > maxExp) maxExp = e;
  }
  for (const b of bases) if (b < 0n || b >= modulus) throw new RangeError('multiExp takes bases in [0, modulus)');
  if (maxExp === 0n) return 1n;
  const bits = maxExp.toString(2).length;
  const modulusBytes = Math.ceil(modulus.toString(2).length / 8);
  const exponentBytes = Math.ceil(bits / 8);
  const product = native.multiExp(
    valuesToFixedBlob([modulus], modulusBytes),
    valuesToFixedBlob(bases, modulusBytes),
    modulusBytes,
    valuesToFixedBlob(exponents, exponentBytes),
    exponentBytes,
    bestWindow(bases.length, bits),
  );
  return fixedBlobToValues(product, modulusBytes)[0];
}
