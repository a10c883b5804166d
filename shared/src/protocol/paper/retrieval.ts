import { createCipheriv, randomBytes } from 'node:crypto';
import type { PublicKey } from '../../crypto/paillier';
import { DEFAULT_TICKET_LIMITS, TicketStore, type TicketStoreOptions } from '../ticket-store';

// Algorithm 3 step 7 (retrieval, docs/PROTOCOLS.md §2.7). C1 adds a random r
// (in Z_N, one per pixel) to the winner's encrypted pixels and gives r to the
// doctor; C2 decrypts m + r and holds it for the doctor under a one-time
// ticket. Neither server sees m: C1 sees only ciphertexts, C2 only m + r.
// Everything travels in chunks below the message limit: C1's E(m + r) to C2,
// C2's m + r to the doctor; C1 gives the doctor a seed per result instead of r.

/** The seed of one result's blinding. */
export const BLINDING_SEED_BYTES = 32;

/** A new random seed for one result's blinding (C1). */
export const newBlindingSeed = (): Buffer => randomBytes(BLINDING_SEED_BYTES);

/**
 * r_1, r_2, ... of one result, expanded from its seed, the same at C1 and the
 * doctor. Deviation from paper: r is pseudo-random (AES-256-CTR under the
 * seed, |N| + 128 bits per value reduced mod N: 2^-128 from uniform), not
 * drawn value by value, so C1's reply carries 32 bytes per result instead of
 * d values of |N| bytes (16 MiB per 256x256 image at 2048 bits: k = 4 filled
 * the 64 MiB message limit). Cost: C2's view of m + r hides m under AES as a
 * PRG rather than perfectly; C1 and the doctor each expand d values per result.
 */
export class RetrievalBlinding {
  private readonly stream;
  private readonly width: number;

  constructor(
    seed: Uint8Array,
    private readonly n: bigint,
  ) {
    if (seed.length !== BLINDING_SEED_BYTES) throw new Error(`a blinding seed has ${BLINDING_SEED_BYTES} bytes, not ${seed.length}`);
    this.stream = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
    this.width = Math.ceil((n.toString(2).length + 128) / 8);
  }

  /** The next `count` values of r. */
  next(count: number): bigint[] {
    const bytes = this.stream.update(Buffer.alloc(count * this.width));
    const out = new Array<bigint>(count);
    for (let i = 0; i < count; i++) out[i] = BigInt('0x' + bytes.toString('hex', i * this.width, (i + 1) * this.width)) % this.n;
    return out;
  }
}

/** C1: E(m + r) for pixels of one result, r the next values of its blinding. */
export function blindForRetrieval(pk: PublicKey, pixels: bigint[], blinding: RetrievalBlinding): bigint[] {
  const r = blinding.next(pixels.length);
  return pk.rerandomizeMany(pixels.map((c, i) => pk.addPlain(c, r[i])));
}

/** The results to retrieve, nearest first: each one's encrypted pixels (read when its turn comes) and blinding seed. */
export interface RetrievalImages {
  pixels: number;
  images: { load(): Promise<bigint[]>; seed: Uint8Array }[];
}

/**
 * C1: the results' E(m + r), concatenated nearest first, in chunks of
 * `chunkValues` ciphertexts (the last holds the rest). One image is read at a
 * time, so C1 holds one image and one chunk, whatever k.
 */
export async function* blindedChunks(pk: PublicKey, results: RetrievalImages, chunkValues: number): AsyncGenerator<bigint[]> {
  let chunk: bigint[] = [];
  for (const image of results.images) {
    const pixels = await image.load();
    if (pixels.length !== results.pixels) throw new Error(`a stored record has ${pixels.length} pixels, not ${results.pixels}`);
    const blinding = new RetrievalBlinding(image.seed, pk.n);
    for (let at = 0; at < pixels.length;) {
      const take = Math.min(chunkValues - chunk.length, pixels.length - at);
      chunk.push(...blindForRetrieval(pk, pixels.slice(at, at + take), blinding));
      at += take;
      if (chunk.length === chunkValues) {
        yield chunk;
        chunk = [];
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** The number of chunks of a retrieval: what C1 announces and C2 expects. */
export const retrievalChunks = (values: number, chunkValues: number): number => Math.ceil(values / chunkValues);

/** The doctor: m = (m + r) - r mod N, which must be a valid pixel value. */
export function unblindRetrieved(n: bigint, blindedValues: bigint[], blinding: bigint[], maxValue: number): number[] {
  if (blindedValues.length !== blinding.length) throw new Error('C1 and C2 returned images of different sizes');
  return blindedValues.map((v, i) => {
    const m = (((v - blinding[i]) % n) + n) % n;
    if (m > BigInt(maxValue)) throw new Error('retrieved pixel out of range: C1 and C2 answers do not match');
    return Number(m);
  });
}

/**
 * C2's holding area for m + r (every result's values, concatenated nearest
 * first), until the doctor fetches it with the ticket. A retrieval reserves its
 * space when C1 announces it, before any chunk is decrypted.
 * C1 opens the session, so C2 does not know which doctor a result is for: capped in all only.
 */
export class RetrievalStore extends TicketStore<bigint[]> {
  constructor(options: Omit<TicketStoreOptions<bigint[]>, 'sizeOf'> = {}) {
    super('retrieval ticket', { limits: { total: DEFAULT_TICKET_LIMITS.total }, ...options });
  }
}
