// Paillier decryption with the factors: m mod p = L_p(c^(p-1) mod p^2) hp mod p,
// likewise mod q, joined by CRT (SecretKey.decrypt in paillier.ts is the same
// computation in BigInt, kept as the reference). Two 1024-bit exponents mod
// 2048-bit moduli in Montgomery form: the one full-size cost of a decryption.
#ifndef FNN_DECRYPT_CRT_H
#define FNN_DECRYPT_CRT_H

#include "montgomery.h"

typedef struct {
  size_t limbs;  /* L: limbs that hold each of N, p^2 and q^2 */
  size_t half;   /* H: limbs that hold each of p and q */
  mont_ctx p2, q2; /* mod p^2, q^2 (L limbs) */
  mont_ctx p, q;   /* mod p, q (H limbs) */
  uint64_t p2_r3[MONT_MAX_LIMBS], q2_r3[MONT_MAX_LIMBS]; /* R^3 mod p^2, q^2: c R^-1 to c R in one product */
  uint64_t p_minus_1[MONT_MAX_LIMBS], q_minus_1[MONT_MAX_LIMBS];
  size_t p_minus_1_bits, q_minus_1_bits;
  uint64_t p_inv[MONT_MAX_LIMBS], q_inv[MONT_MAX_LIMBS]; /* p^-1, q^-1 mod 2^(64 H): exact division */
  uint64_t hp[MONT_MAX_LIMBS], hq[MONT_MAX_LIMBS];       /* Montgomery forms mod p, q */
  uint64_t q_inv_p[MONT_MAX_LIMBS];                      /* q^-1 mod p, Montgomery form mod p */
  uint64_t n2[2 * MONT_MAX_LIMBS];                       /* N^2 (2L limbs) */
} crt_decryptor;

/** All inputs `limbs` limbs, little-endian (the width of N); hp = L_p(g^(p-1) mod p^2)^-1 mod p,
 *  hq likewise, q_inv_p = q^-1 mod p. NULL if p q != N, a factor is even or 1, a constant is not
 *  below its prime, the primes differ by more than a few bits, or out of memory. */
crt_decryptor *crt_decryptor_new(size_t limbs, const uint64_t *n, const uint64_t *p, const uint64_t *q,
                                 const uint64_t *hp, const uint64_t *hq, const uint64_t *q_inv_p);

void crt_decryptor_free(crt_decryptor *dec);

/** m (L limbs) = D(c) in [0, N) for c (2L limbs) with 0 < c < N^2. Returns 0, or -1 (m untouched
 *  beyond scratch) if c is out of range or shares a factor with N: such a c is no ciphertext. */
int crt_decrypt(const crt_decryptor *dec, uint64_t *m, const uint64_t *c);

#endif
