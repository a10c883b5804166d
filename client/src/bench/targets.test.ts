import { describe, expect, it } from 'vitest';
import { evaluateTargets, type MeasuredPoint } from './targets';

const MiB = 2 ** 20;

function point(size: number, n: number, queryMs: number, extra: Partial<MeasuredPoint> = {}): MeasuredPoint {
  return {
    size,
    n,
    queryMs,
    plaintextMs: 100,
    upload: { images: n, seconds: n / 4 },
    bytesPerImage: { c1: 1e6, c2: 0.9e6 },
    queryRss: { c1: 300 * MiB, c2: 250 * MiB },
    ...extra,
  };
}

/** The points, every target met. */
const good = [
  point(64, 1000, 1000),
  point(64, 2000, 1300),
  point(64, 5000, 2000),
  point(64, 10000, 2900, { queryRss: { c1: 400 * MiB, c2: 300 * MiB } }),
  point(256, 500, 4900),
  point(256, 1000, 7000),
  point(256, 2000, 14000),
];

const verdicts = (points: MeasuredPoint[], speed = 800) => evaluateTargets(points, speed).map((t) => t.verdict);

describe("issue 11's targets", () => {
  it('marks every target met when every figure is within its bound', () => {
    const results = evaluateTargets(good, 800);
    expect(results.map((t) => t.verdict)).toEqual(['met', 'met', 'met', 'met', 'met', 'met', 'met']);
    expect(results[0].measured).toBe('2.9x (1 s -> 2.9 s)');
    expect(results[1].measured).toMatch(/^29x/);
    expect(results.every((t) => t.caveat === undefined)).toBe(true);
  });

  it('marks each target not met on its own when its figure is past the bound', () => {
    const at = (size: number, n: number) => good.findIndex((p) => p.size === size && p.n === n);
    const replace = (size: number, n: number, p: MeasuredPoint) => good.map((q, i) => (i === at(size, n) ? p : q));
    // growth 64: 3.1x (and 31x plaintext at 10,000)
    expect(verdicts(replace(64, 10000, point(64, 10000, 3100)))).toEqual(['not met', 'not met', 'met', 'met', 'met', 'met', 'met']);
    // plaintext 256 at 500: 51x; growth 256 then 14 / 5.1 < 3
    expect(verdicts(replace(256, 500, point(256, 500, 5100)))).toEqual(['met', 'met', 'not met', 'met', 'met', 'met', 'met']);
    // growth 256: 15.1 / 4.9 > 3
    expect(verdicts(replace(256, 2000, point(256, 2000, 15100)))).toEqual(['met', 'met', 'met', 'not met', 'met', 'met', 'met']);
    // upload at 256: 2.9 images/s over every 256 point
    const slow = good.map((p) => (p.size === 256 ? { ...p, upload: { images: p.n, seconds: p.n / 2.9 } } : p));
    expect(verdicts(slow)).toEqual(['met', 'met', 'met', 'met', 'not met', 'met', 'met']);
    // bytes at 256, largest n: 1.6 MB at C2
    const big = replace(256, 2000, point(256, 2000, 14000, { bytesPerImage: { c1: 1e6, c2: 1.6e6 } }));
    expect(verdicts(big)).toEqual(['met', 'met', 'met', 'met', 'met', 'not met', 'met']);
    // RSS at 10,000: C2 1.6x that at 1,000
    const fat = replace(64, 10000, point(64, 10000, 2900, { queryRss: { c1: 300 * MiB, c2: 400 * MiB } }));
    expect(verdicts(fat)).toEqual(['met', 'met', 'met', 'met', 'met', 'met', 'not met']);
  });

  it('says not measured, and which point is missing, when a point was left out', () => {
    const results = evaluateTargets(
      good.filter((p) => !(p.size === 64 && p.n === 10000) && p.size !== 256),
      800,
    );
    expect(results.map((t) => t.verdict)).toEqual(Array(7).fill('not measured'));
    expect(results[0].measured).toBe('no measured point at 64x64, n = 10,000');
    expect(results[2].measured).toBe('no measured point at 256x256, n = 500');
  });

  it('qualifies the upload verdict on a machine slower than the one the target is stated for', () => {
    const upload = evaluateTargets(good, 1700)[4];
    expect(upload.verdict).toBe('met');
    expect(upload.caveat).toMatch(/speed check took 1\.7 s, not under 1 s/);
    expect(evaluateTargets(good, undefined)[4].caveat).toMatch(/not run/);
  });
});
