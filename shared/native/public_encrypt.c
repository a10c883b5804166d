#include "public_encrypt.h"

#include <stdlib.h>
#include <string.h>

#include "owner_encrypt.h"

public_encryptor *public_encryptor_new(size_t limbs, const uint64_t *n, const uint64_t *h, unsigned window_bits,
                                       unsigned exponent_bits) {
  if (limbs == 0 || limbs > MONT_MAX_LIMBS / 2) return NULL;
  public_encryptor *enc = calloc(1, sizeof(public_encryptor));
  if (!enc) return NULL;
  if (mont_init(&enc->n_ctx, n, limbs) != 0) {
    free(enc);
    return NULL;
  }
  enc->limbs = limbs;
  enc->exponent_limbs = (exponent_bits + 63) / 64;
  limbs_mul(enc->n2, n, n, limbs);
  uint64_t zero[2 * MONT_MAX_LIMBS] = {0};
  if (limbs_cmp(h, zero, 2 * limbs) == 0) {
    free(enc);
    return NULL;
  }
  enc->h = fixed_base_new(enc->n2, 2 * limbs, h, window_bits, exponent_bits); /* NULL unless h < N^2 */
  if (!enc->h) {
    free(enc);
    return NULL;
  }
  mont_mul(&enc->n_ctx, enc->r3, enc->n_ctx.r2, enc->n_ctx.r2);
  return enc;
}

void public_encryptor_free(public_encryptor *enc) {
  if (!enc) return;
  fixed_base_free(enc->h);
  free(enc);
}

void public_encrypt(const public_encryptor *enc, uint64_t *c, const uint64_t *m, const uint64_t *a) {
  uint64_t h[2 * MONT_MAX_LIMBS];
  fixed_base_pow(enc->h, h, a, enc->exponent_limbs);
  times_one_plus_mn(&enc->n_ctx, enc->r3, enc->n2, c, h, m);
}
