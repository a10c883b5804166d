// The owner's bulk Paillier encryption, E(m) = (1 + mN) h^a mod N^2, with the
// randomiser h^a computed by fixed-base tables mod p^2 and mod q^2 and joined
// by CRT (SecretKey.encrypt in paillier.ts is the same computation in BigInt).
#ifndef FNN_OWNER_ENCRYPT_H
#define FNN_OWNER_ENCRYPT_H

#include "fixed_base.h"

typedef struct {
  size_t limbs;     /* L: limbs that hold each of N, p^2 and q^2 */
  fixed_base *hp;   /* h mod p^2 */
  fixed_base *hq;   /* h mod q^2 */
  mont_ctx n_ctx;   /* mod N */
  uint64_t crt[MONT_MAX_LIMBS];   /* (q^2)^-1 mod p^2, in Montgomery form mod p^2 */
  uint64_t q2[MONT_MAX_LIMBS];
  uint64_t r3[MONT_MAX_LIMBS];    /* R^3 mod N: undoes two Montgomery reductions mod N */
  uint64_t n2[2 * MONT_MAX_LIMBS];/* N^2 */
  size_t exponent_limbs;
} owner_encryptor;

/** All inputs L limbs, little-endian; NULL if the key is unusable (an even modulus, primes of very
 *  different lengths) or out of memory. */
owner_encryptor *owner_encryptor_new(size_t limbs, const uint64_t *n, const uint64_t *p2, const uint64_t *q2,
                                     const uint64_t *h_mod_p2, const uint64_t *h_mod_q2, const uint64_t *q2_inv_p2,
                                     unsigned window_bits, unsigned exponent_bits);

void owner_encryptor_free(owner_encryptor *enc);

/** c (2L limbs) = (1 + mN) h^a mod N^2 for m < N (L limbs) and a (exponent_limbs limbs). */
void owner_encrypt(const owner_encryptor *enc, uint64_t *c, const uint64_t *m, const uint64_t *a);

/** c (2L limbs) = h (1 + mN) mod N^2 for h < N^2 (2L limbs) and m < N, L = n_ctx's limbs, r3 = R^3 mod N:
 *  the last step of every encryption, the owner's and anyone's (public_encrypt.c). c may alias h. */
void times_one_plus_mn(const mont_ctx *n_ctx, const uint64_t *r3, const uint64_t *n2, uint64_t *c, const uint64_t *h,
                       const uint64_t *m);

#endif
