// The growth exponent of query time against n: t = c n^e fitted by least
// squares on log t against log n. e = 1 is a linear scan, e < 1 grows more
// slowly than n; it is read from measured points only, never extended.

export interface Growth {
  /** e in t = c n^e. */
  exponent: number;
  /** c in t = c n^e, in the unit of the times given. */
  coefficient: number;
  /** Share of the variance of log t the fit explains (1 when the points lie on the line; 1 with two points). */
  r2: number;
  /** The n the fit used, smallest first. */
  n: number[];
}

/** The fit over points with positive n and time; undefined with fewer than two distinct n. */
export function growthExponent(points: readonly { n: number; ms: number }[]): Growth | undefined {
  const used = points.filter((p) => p.n > 0 && p.ms > 0 && Number.isFinite(p.n) && Number.isFinite(p.ms));
  if (new Set(used.map((p) => p.n)).size < 2) return undefined;
  const xs = used.map((p) => Math.log(p.n));
  const ys = used.map((p) => Math.log(p.ms));
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxx += (xs[i] - mx) ** 2;
    sxy += (xs[i] - mx) * (ys[i] - my);
    syy += (ys[i] - my) ** 2;
  }
  const exponent = sxy / sxx;
  const coefficient = Math.exp(my - exponent * mx);
  // All times equal: the line (slope 0) explains everything there is.
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { exponent, coefficient, r2, n: [...new Set(used.map((p) => p.n))].sort((a, b) => a - b) };
}
