// The integer form of the paper's lower bound (SCHEME.md, "Integer form that
// never rejects the true neighbour"). Means and standard deviations are not
// integers; rounding them naively could push the bound above the true distance
// and reject the real nearest neighbour. This form cannot:
//
//   S = sum x_i,  V = d sum x_i^2 - S^2,  T = floor(K sqrt(V)) = isqrt(K^2 V)
//   LBint(x, y) = K^2 (S_x - S_y)^2 + (T_x - T_y)^2 - 2 (T_x + T_y) - 1
//               <= K^2 d |x - y|^2        for every pair of images.
//
// Why: d|x-y|^2 >= (S_x-S_y)^2 + (sqrt V_x - sqrt V_y)^2 (the paper's bound,
// multiplied by d^2), and with u = K(sqrt V_x - sqrt V_y), |T_x - T_y| < |u| + 1,
// so u^2 > (T_x-T_y)^2 - 2|T_x-T_y| + 1 >= (T_x-T_y)^2 - 2(T_x+T_y) - 1.

/** The public scale K of the spread term; 2^10 keeps the rounding slack far below pixel-level distances. */
export const SPREAD_SCALE = 1024n;

/** What the lower bound needs of one image: S and T above. */
export interface ImageStats {
  sum: bigint;
  spread: bigint;
}

/** Exact integer square root (floor), by Newton's method on bigints: no floating point. */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new RangeError('isqrt of a negative number');
  if (n < 2n) return n;
  // Start above the root: 2^(ceil(bits/2)).
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

export function imageStats(pixels: ArrayLike<number>): ImageStats {
  let sum = 0n;
  let sumOfSquares = 0n;
  // Accumulate in Numbers per chunk (exact below 2^53), then fold into bigints.
  const chunk = 4096;
  for (let start = 0; start < pixels.length; start += chunk) {
    let s = 0;
    let ss = 0;
    const end = Math.min(pixels.length, start + chunk);
    for (let i = start; i < end; i++) {
      const v = pixels[i];
      s += v;
      ss += v * v;
    }
    sum += BigInt(s);
    sumOfSquares += BigInt(ss);
  }
  const d = BigInt(pixels.length);
  const variance = d * sumOfSquares - sum * sum; // d^2 times the population variance
  return { sum, spread: isqrt(SPREAD_SCALE * SPREAD_SCALE * variance) };
}

/** LBint(x, y); may be negative (then it rejects nothing). */
export function lowerBoundInt(x: ImageStats, y: ImageStats): bigint {
  const ds = x.sum - y.sum;
  const dt = x.spread - y.spread;
  return SPREAD_SCALE * SPREAD_SCALE * ds * ds + dt * dt - 2n * (x.spread + y.spread) - 1n;
}

/** The scale at which a squared distance is compared with LBint: K^2 d D. */
export function distanceScale(dimension: number): bigint {
  return SPREAD_SCALE * SPREAD_SCALE * BigInt(dimension);
}
