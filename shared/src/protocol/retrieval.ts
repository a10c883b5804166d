import { randomBytes } from 'node:crypto';
import type { PublicKey } from '../crypto/paillier';
import { randomBelow } from '../crypto/random';
import { notFound } from '../errors';

// Algorithm 3 step 7 (retrieval). C1 adds a random r (uniform in Z_N, one per
// pixel) to the winner's encrypted pixels and gives r to the doctor; C2
// decrypts m + r and holds it for the doctor under a one-time ticket. Neither
// server sees m: C1 sees only ciphertexts, C2 only m + r.

/** C1: pick r and form E(m + r) for one result image. */
export function blindForRetrieval(pk: PublicKey, pixels: bigint[]): { blinded: bigint[]; blinding: bigint[] } {
  const blinding = pixels.map(() => randomBelow(pk.n));
  const blinded = pixels.map((c, i) => pk.rerandomize(pk.addPlain(c, blinding[i])));
  return { blinded, blinding };
}

/** The doctor: m = (m + r) - r mod N, which must be a valid pixel value. */
export function unblindRetrieved(n: bigint, blindedValues: bigint[], blinding: bigint[], maxValue: number): number[] {
  if (blindedValues.length !== blinding.length) throw new Error('C1 and C2 returned images of different sizes');
  return blindedValues.map((v, i) => {
    const m = (((v - blinding[i]) % n) + n) % n;
    if (m > BigInt(maxValue)) throw new Error('retrieved pixel out of range: C1 and C2 answers do not match');
    return Number(m);
  });
}

/** C2's short-lived holding area for m + r, until the doctor fetches it. */
export class RetrievalStore {
  private readonly items = new Map<string, { images: bigint[][]; expires: number }>();

  constructor(
    private readonly ttlMs = 10 * 60_000,
    private readonly capacity = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    this.sweep();
    return this.items.size;
  }

  put(images: bigint[][]): string {
    this.sweep();
    if (this.items.size >= this.capacity) {
      // Drop the oldest: a doctor who never fetched loses the result, the daemon keeps its memory bounded.
      const oldest = this.items.keys().next().value;
      if (oldest !== undefined) this.items.delete(oldest);
    }
    const ticket = randomBytes(16).toString('hex');
    this.items.set(ticket, { images, expires: this.now() + this.ttlMs });
    return ticket;
  }

  /** One use only: the blinded images are gone after this. */
  take(ticket: string): bigint[][] {
    this.sweep();
    const item = this.items.get(ticket);
    if (!item) throw notFound('retrieval ticket unknown, already used or expired; run the query again');
    this.items.delete(ticket);
    return item.images;
  }

  private sweep(): void {
    const t = this.now();
    for (const [ticket, item] of this.items) if (item.expires <= t) this.items.delete(ticket);
  }
}
