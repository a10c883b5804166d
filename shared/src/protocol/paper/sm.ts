import type { C1Crypto } from '../../crypto/backend';
import { randomBits } from '../../crypto/random';
import type { PaperStep } from './messages';
import type { PaperPeer } from './peer';

// sm: Algorithm 1, Secure Multiplication (docs/PROTOCOLS.md §2.2), C1's side;
// C2's side is PaperSession in c2.ts ('square' and 'multiply' messages).
//
// Deviation from paper: the blinding r is drawn from [0, 2^128) instead of Z_N,
// and subtracted rather than added. Every value the protocols multiply is below
// 2^48 in magnitude (pixel differences, sums, scaled spreads of images up to
// 512x512 at 16 bits), so a - r is within 2^-80 of uniform for C2 (statistical
// hiding), while the unblinding exponents are 128 bits instead of 2048: C1's
// exponentiations become ~16x cheaper. Subtracting avoids negative exponents.
export const BLINDING_BITS = 128;
export const MAX_BLINDED_MAGNITUDE_BITS = 48;

/** Values per message: 2048 ciphertexts of a 2048-bit key are 1 MiB. */
export const MAX_VALUES_PER_MESSAGE = 2048;

export interface C1Context {
  crypto: C1Crypto;
  peer: PaperPeer;
}

/** SM(E(a_i), E(b_i)) -> E(a_i b_i) for every i, batched into few round trips. */
export async function sm(ctx: C1Context, step: PaperStep, a: bigint[], b: bigint[]): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let start = 0; start < a.length; start += MAX_VALUES_PER_MESSAGE) {
    const ca = a.slice(start, start + MAX_VALUES_PER_MESSAGE);
    const cb = b.slice(start, start + MAX_VALUES_PER_MESSAGE);
    const ra = ca.map(() => randomBits(BLINDING_BITS)); // step 1
    const rb = cb.map(() => randomBits(BLINDING_BITS));
    const [blindedA, blindedB] = await Promise.all([ctx.crypto.blind(ca, ra), ctx.crypto.blind(cb, rb)]);
    const h = await ctx.peer.multiply(step, blindedA, blindedB); // step 2 at C2
    out.push(...(await ctx.crypto.unblindProducts(h, ca, cb, ra, rb))); // step 3
  }
  return out;
}

/**
 * SM(E(a_i), E(a_i)) -> E(a_i^2). Deviation from paper: squaring needs one
 * blinded value, not two, so C2 decrypts half as many values (SSED and SSEDLB
 * only ever square).
 */
export async function smSquare(ctx: C1Context, step: PaperStep, a: bigint[]): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let start = 0; start < a.length; start += MAX_VALUES_PER_MESSAGE) {
    const chunk = a.slice(start, start + MAX_VALUES_PER_MESSAGE);
    const r = chunk.map(() => randomBits(BLINDING_BITS)); // step 1
    const h = await ctx.peer.square(step, await ctx.crypto.blind(chunk, r)); // step 2 at C2
    out.push(...(await ctx.crypto.unblindSquares(h, chunk, r))); // step 3
  }
  return out;
}
