import type { PublicKey } from '../../crypto/paillier';
import { randomBetween, randomBits } from '../../crypto/random';
import { distanceScale } from '../../encoding/lower-bound';

// The paper's hardening (Security Analysis; docs/PROTOCOLS.md §4): before a distance or bound goes
// to C2, C1 maps v -> alpha v + beta with alpha > 0 and beta drawn once per
// session, the same on both sides of every comparison. C2 can still order the
// values but does not see them. What it does learn (ratios of differences) is
// written down in docs/SECURITY.md.

const ALPHA_BITS = 64;
const BETA_BITS = 128;
/** Largest |v| masked: K^2 d D for 512x512 images of 16-bit pixels is below 2^88. */
const MAX_MASKED_BITS = 96;

export class OrderMask {
  private readonly alpha = randomBetween(1n << BigInt(ALPHA_BITS - 1), 1n << BigInt(ALPHA_BITS));
  private readonly beta = randomBits(BETA_BITS);

  constructor(
    private readonly pk: PublicKey,
    private readonly dimension: number,
  ) {
    // alpha v + beta must stay inside (-N/2, N/2) for C2's signed decoding.
    if (pk.bits < ALPHA_BITS + MAX_MASKED_BITS + 2 || pk.bits < BETA_BITS + 2)
      throw new RangeError('key too small for the order-preserving mask');
  }

  /** E(alpha * LBint + beta) */
  bound(encryptedBound: bigint): bigint {
    return this.pk.addPlain(this.pk.mulPlain(encryptedBound, this.alpha), this.beta);
  }

  /** E(alpha * K^2 d D + beta): on the bound's scale, so C2 compares like with like. */
  distance(encryptedDistance: bigint): bigint {
    const factor = this.alpha * distanceScale(this.dimension);
    return this.pk.addPlain(this.pk.mulPlain(encryptedDistance, factor), this.beta);
  }
}
