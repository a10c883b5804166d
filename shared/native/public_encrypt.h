// Anyone's Paillier encryption, E(m) = (1 + mN) h^a mod N^2, with h = r0^N
// fixed per process and the randomiser h^a from fixed-base tables mod N^2
// (PublicKey.encrypt in paillier.ts; its BigInt FixedBase is the reference).
#ifndef FNN_PUBLIC_ENCRYPT_H
#define FNN_PUBLIC_ENCRYPT_H

#include "fixed_base.h"

typedef struct {
  size_t limbs;    /* L: limbs of N */
  fixed_base *h;   /* h mod N^2 (2L limbs) */
  mont_ctx n_ctx;  /* mod N */
  uint64_t r3[MONT_MAX_LIMBS];     /* R^3 mod N */
  uint64_t n2[2 * MONT_MAX_LIMBS]; /* N^2 */
  size_t exponent_limbs;
} public_encryptor;

/** n: L limbs, h: 2L limbs with 0 < h < N^2; NULL if N is even, h out of range, or out of memory. */
public_encryptor *public_encryptor_new(size_t limbs, const uint64_t *n, const uint64_t *h, unsigned window_bits,
                                       unsigned exponent_bits);

void public_encryptor_free(public_encryptor *enc);

/** c (2L limbs) = (1 + mN) h^a mod N^2 for m < N (L limbs) and a (exponent_limbs limbs). */
void public_encrypt(const public_encryptor *enc, uint64_t *c, const uint64_t *m, const uint64_t *a);

#endif
