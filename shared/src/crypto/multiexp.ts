// prod_i base_i^(exp_i) mod m by the bucket (Pippenger) method. Naively each
// term costs a full exponentiation (~1.5 * bits multiplications); with buckets a
// window of c bits costs n + 2^(c+1) multiplications for all n terms together,
// so a term costs about bits/c multiplications instead (~50-70 us against
// ~800 us for 48-bit exponents at 2048-bit N).

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

export function multiExp(bases: bigint[], exponents: bigint[], modulus: bigint): bigint {
  if (bases.length !== exponents.length) throw new RangeError('multiExp needs one exponent per base');
  let maxExp = 0n;
  for (const e of exponents) {
    if (e < 0n) throw new RangeError('multiExp takes non-negative exponents');
    if (e > maxExp) maxExp = e;
  }
  if (maxExp === 0n) return 1n % modulus;
  const bits = maxExp.toString(2).length;
  const c = bestWindow(bases.length, bits);
  const mask = (1n << BigInt(c)) - 1n;
  const windows = Math.ceil(bits / c);
  const buckets: bigint[] = new Array(1 << c);
  let acc = 1n;
  for (let w = windows - 1; w >= 0; w--) {
    for (let s = 0; s < c; s++) acc = (acc * acc) % modulus;
    buckets.fill(1n);
    const shift = BigInt(w * c);
    for (let i = 0; i < bases.length; i++) {
      const digit = Number((exponents[i] >> shift) & mask);
      if (digit !== 0) buckets[digit] = (buckets[digit] * bases[i]) % modulus;
    }
    // sum_k k * bucket_k, as running products: prod_k bucket_k^k.
    let running = 1n;
    let total = 1n;
    for (let k = buckets.length - 1; k >= 1; k--) {
      if (buckets[k] !== 1n) running = (running * buckets[k]) % modulus;
      if (running !== 1n) total = (total * running) % modulus;
    }
    acc = (acc * total) % modulus;
  }
  return acc;
}
