import type { PublicKey } from '../../crypto/paillier';
import { randomBelow } from '../../crypto/random';
import { DEFAULT_TICKET_LIMITS, TicketStore, type TicketStoreOptions } from '../ticket-store';

// Algorithm 3 step 7 (retrieval, docs/PROTOCOLS.md §2.7). C1 adds a random r (uniform in Z_N, one per
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

/**
 * C2's holding area for m + r, until the doctor fetches it with the ticket.
 * C1 opens the session, so C2 does not know which doctor a result is for: capped in all only.
 */
export class RetrievalStore extends TicketStore<bigint[][]> {
  constructor(options: Omit<TicketStoreOptions<bigint[][]>, 'sizeOf'> = {}) {
    super('retrieval ticket', { limits: { total: DEFAULT_TICKET_LIMITS.total }, ...options });
  }
}
