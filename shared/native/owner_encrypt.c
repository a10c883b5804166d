#include "owner_encrypt.h"

#include <stdlib.h>
#include <string.h>

/** q^2 may exceed p^2 by at most this many bits: xq mod p^2 then takes fewer than 2^5 subtractions. */
#define MAX_PRIME_SQUARE_GAP 4

static size_t bit_length(const uint64_t *x, size_t n) {
  for (size_t i = n; i-- > 0;)
    if (x[i]) return 64 * i + 64 - (size_t)__builtin_clzll(x[i]);
  return 0;
}

owner_encryptor *owner_encryptor_new(size_t limbs, const uint64_t *n, const uint64_t *p2, const uint64_t *q2,
                                     const uint64_t *h_mod_p2, const uint64_t *h_mod_q2, const uint64_t *q2_inv_p2,
                                     unsigned window_bits, unsigned exponent_bits) {
  if (limbs == 0 || limbs > MONT_MAX_LIMBS / 2) return NULL;
  owner_encryptor *enc = calloc(1, sizeof(owner_encryptor));
  if (!enc) return NULL;
  if (bit_length(q2, limbs) > bit_length(p2, limbs) + MAX_PRIME_SQUARE_GAP) {
    free(enc);
    return NULL;
  }
  enc->limbs = limbs;
  enc->exponent_limbs = (exponent_bits + 63) / 64;
  enc->hp = fixed_base_new(p2, limbs, h_mod_p2, window_bits, exponent_bits);
  enc->hq = fixed_base_new(q2, limbs, h_mod_q2, window_bits, exponent_bits);
  if (!enc->hp || !enc->hq || mont_init(&enc->n_ctx, n, limbs) != 0 || limbs_cmp(q2_inv_p2, p2, limbs) >= 0) {
    owner_encryptor_free(enc);
    return NULL;
  }
  mont_to(&enc->hp->ctx, enc->crt, q2_inv_p2);
  memcpy(enc->q2, q2, limbs * sizeof(uint64_t));
  mont_mul(&enc->n_ctx, enc->r3, enc->n_ctx.r2, enc->n_ctx.r2);
  limbs_mul(enc->n2, n, n, limbs);
  return enc;
}

void owner_encryptor_free(owner_encryptor *enc) {
  if (!enc) return;
  fixed_base_free(enc->hp);
  fixed_base_free(enc->hq);
  free(enc);
}

void owner_encrypt(const owner_encryptor *enc, uint64_t *c, const uint64_t *m, const uint64_t *a) {
  const size_t L = enc->limbs;
  const uint64_t *p2 = enc->hp->ctx.m;
  uint64_t xp[MONT_MAX_LIMBS], xq[MONT_MAX_LIMBS], t[MONT_MAX_LIMBS], s[MONT_MAX_LIMBS];
  uint64_t h[2 * MONT_MAX_LIMBS];
  fixed_base_pow(enc->hp, xp, a, enc->exponent_limbs);
  fixed_base_pow(enc->hq, xq, a, enc->exponent_limbs);

  // CRT: h = xq + q^2 ((xp - xq) (q^2)^-1 mod p^2). The primes differ by at
  // most a few bits (checked once), so xq mod p^2 takes a few subtractions.
  memcpy(t, xq, L * sizeof(uint64_t));
  while (limbs_cmp(t, p2, L) >= 0) limbs_sub(t, t, p2, L);
  if (limbs_sub(t, xp, t, L)) limbs_add(t, t, p2, L);
  mont_mul(&enc->hp->ctx, s, t, enc->crt);
  limbs_mul(h, enc->q2, s, L);
  uint64_t carry = limbs_add(h, h, xq, L);
  for (size_t k = L; carry && k < 2 * L; k++) {
    h[k] += 1;
    carry = h[k] == 0;
  }

  times_one_plus_mn(&enc->n_ctx, enc->r3, enc->n2, c, h, m);
}

void times_one_plus_mn(const mont_ctx *n_ctx, const uint64_t *r3, const uint64_t *n2, uint64_t *c, const uint64_t *h,
                       const uint64_t *m) {
  const size_t L = n_ctx->n;
  uint64_t s[MONT_MAX_LIMBS], t[MONT_MAX_LIMBS], nv[2 * MONT_MAX_LIMBS], sum[2 * MONT_MAX_LIMBS + 1];
  // h (1 + mN) = h + N (m h mod N) mod N^2: one product mod N instead of mod N^2.
  mont_redc_wide(n_ctx, s, h); /* h R^-1 mod N */
  mont_mul(n_ctx, t, s, m);    /* h m R^-2 */
  mont_mul(n_ctx, t, t, r3);   /* h m mod N */
  limbs_mul(nv, n_ctx->m, t, L);
  sum[2 * L] = limbs_add(sum, h, nv, 2 * L);
  if (sum[2 * L] || limbs_cmp(sum, n2, 2 * L) >= 0) limbs_sub(sum, sum, n2, 2 * L);
  memcpy(c, sum, 2 * L * sizeof(uint64_t));
}
