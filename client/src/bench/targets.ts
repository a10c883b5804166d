// Issue 11's targets, judged from one run's measured points: met, not met, or
// not measured (the point was left out or failed). Never from an estimate.

export interface MeasuredPoint {
  size: number;
  n: number;
  /** Median query time; a point with a wrong answer or a failure is not passed here. */
  queryMs: number;
  plaintextMs: number;
  upload: { images: number; seconds: number };
  bytesPerImage: { c1: number; c2: number };
  /** Peak RSS of each daemon while the queries at this n ran. */
  queryRss: { c1: number; c2: number };
}

export type Verdict = 'met' | 'not met' | 'not measured';

export interface TargetResult {
  target: string;
  measured: string;
  verdict: Verdict;
  /** What holds the verdict back or qualifies it (e.g. the machine is slower than the target's). */
  caveat?: string;
}

/** The bounds. */
export const LIMITS = {
  growth64: { from: 1000, to: 10000, atMost: 3 },
  plaintext64: { n: 10000, atMost: 30 },
  plaintext256: { n: 500, atMost: 50 },
  growth256: { from: 500, to: 2000, atMost: 3 },
  upload256: { atLeast: 3, speedCheckUnderMs: 1000 },
  bytes256: { atMost: 1.5e6 },
  rss64: { from: 1000, to: 10000, flatWithin: 1.5 },
} as const;

const fmt = (x: number) => x.toLocaleString('en-US', { maximumSignificantDigits: 3 });
const secs = (ms: number) => `${fmt(ms / 1000)} s`;
const mb = (bytes: number) => `${fmt(bytes / 1e6)} MB`;
const mib = (bytes: number) => `${fmt(bytes / 2 ** 20)} MiB`;

function verdict(ok: boolean): Verdict {
  return ok ? 'met' : 'not met';
}

/**
 * Every target of the issue, in its order. `speedCheckMs` is the machine's
 * speed check (10^8 JavaScript additions): the upload target is stated for a
 * machine where it takes under a second.
 */
export function evaluateTargets(points: readonly MeasuredPoint[], speedCheckMs: number | undefined): TargetResult[] {
  const at = (size: number, n: number) => points.find((p) => p.size === size && p.n === n);
  const missing = (size: number, ns: number[]) =>
    `no measured point at ${size}x${size}, n = ${ns
      .filter((n) => !at(size, n))
      .map(fmt)
      .join(' and ')}`;
  const out: TargetResult[] = [];

  const growth = (size: number, { from, to, atMost }: { from: number; to: number; atMost: number }) => {
    const target = `${size}x${size}: query time at n = ${fmt(to)} at most ${atMost}x that at n = ${fmt(from)}`;
    const a = at(size, from);
    const b = at(size, to);
    if (!a || !b) return out.push({ target, measured: missing(size, [from, to]), verdict: 'not measured' });
    const r = b.queryMs / a.queryMs;
    out.push({ target, measured: `${fmt(r)}x (${secs(a.queryMs)} -> ${secs(b.queryMs)})`, verdict: verdict(r <= atMost) });
  };
  const againstPlaintext = (size: number, { n, atMost }: { n: number; atMost: number }) => {
    const target = `${size}x${size}, n = ${fmt(n)}: at most ${atMost}x plaintext brute force, same images, same run`;
    const p = at(size, n);
    if (!p) return out.push({ target, measured: missing(size, [n]), verdict: 'not measured' });
    const r = p.queryMs / p.plaintextMs;
    out.push({ target, measured: `${fmt(r)}x (${secs(p.queryMs)} against ${fmt(p.plaintextMs)} ms)`, verdict: verdict(r <= atMost) });
  };

  growth(64, LIMITS.growth64);
  againstPlaintext(64, LIMITS.plaintext64);
  againstPlaintext(256, LIMITS.plaintext256);
  growth(256, LIMITS.growth256);

  const at256 = points.filter((p) => p.size === 256);
  {
    const { atLeast, speedCheckUnderMs } = LIMITS.upload256;
    const target = `256x256: upload at least ${atLeast} images/s (on a machine whose speed check takes under ${speedCheckUnderMs / 1000} s)`;
    const images = at256.reduce((s, p) => s + p.upload.images, 0);
    const seconds = at256.reduce((s, p) => s + p.upload.seconds, 0);
    if (!images || !(seconds > 0)) out.push({ target, measured: 'no upload measured at 256x256', verdict: 'not measured' });
    else {
      const rate = images / seconds;
      const slow =
        speedCheckMs === undefined
          ? 'the speed check was not run'
          : speedCheckMs >= speedCheckUnderMs
            ? `this machine's speed check took ${secs(speedCheckMs)}, not under ${speedCheckUnderMs / 1000} s: the target's machine is faster`
            : undefined;
      out.push({
        target,
        measured: `${fmt(rate)} images/s (${images} images in ${secs(seconds * 1000)}, every 256x256 upload of the run)`,
        verdict: verdict(rate >= atLeast),
        ...(slow ? { caveat: slow } : {}),
      });
    }
  }
  {
    const target = `256x256: bytes stored per image at each server at most ${mb(LIMITS.bytes256.atMost)} (MB = 10^6 bytes)`;
    const p = at256.reduce<MeasuredPoint | undefined>((a, b) => (!a || b.n > a.n ? b : a), undefined);
    if (!p) out.push({ target, measured: 'no measured point at 256x256', verdict: 'not measured' });
    else
      out.push({
        target,
        measured: `C1 ${mb(p.bytesPerImage.c1)}, C2 ${mb(p.bytesPerImage.c2)} at n = ${fmt(p.n)}`,
        verdict: verdict(Math.max(p.bytesPerImage.c1, p.bytesPerImage.c2) <= LIMITS.bytes256.atMost),
      });
  }
  {
    const { from, to, flatWithin } = LIMITS.rss64;
    const target = `64x64: peak RSS of each daemon at n = ${fmt(to)} stated, and flat in n (during the queries at most ${flatWithin}x that at n = ${fmt(from)})`;
    const a = at(64, from);
    const b = at(64, to);
    if (!a || !b) out.push({ target, measured: missing(64, [from, to]), verdict: 'not measured' });
    else if (![a.queryRss.c1, a.queryRss.c2, b.queryRss.c1, b.queryRss.c2].every((x) => x > 0))
      out.push({ target, measured: 'peak RSS not readable (no /proc)', verdict: 'not measured' });
    else {
      const r1 = b.queryRss.c1 / a.queryRss.c1;
      const r2 = b.queryRss.c2 / a.queryRss.c2;
      out.push({
        target,
        measured: `C1 ${mib(b.queryRss.c1)} (${fmt(r1)}x n = ${fmt(from)}), C2 ${mib(b.queryRss.c2)} (${fmt(r2)}x)`,
        verdict: verdict(r1 <= flatWithin && r2 <= flatWithin),
      });
    }
  }
  return out;
}
