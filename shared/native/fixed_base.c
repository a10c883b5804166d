#include "fixed_base.h"

#include <stdlib.h>
#include <string.h>

fixed_base *fixed_base_new(const uint64_t *m, size_t n, const uint64_t *base, unsigned window_bits, unsigned exponent_bits) {
  if (window_bits == 0 || window_bits > 16 || exponent_bits == 0) return NULL;
  fixed_base *fb = calloc(1, sizeof(fixed_base));
  if (!fb) return NULL;
  if (mont_init(&fb->ctx, m, n) != 0 || limbs_cmp(base, m, n) >= 0) {
    free(fb);
    return NULL;
  }
  fb->window_bits = window_bits;
  fb->rows = (exponent_bits + window_bits - 1) / window_bits;
  fb->cols = (size_t)1 << window_bits;
  fb->table = malloc(fb->rows * fb->cols * n * sizeof(uint64_t));
  if (!fb->table) {
    free(fb);
    return NULL;
  }
  uint64_t row_base[MONT_MAX_LIMBS];
  mont_to(&fb->ctx, row_base, base);
  for (size_t row = 0; row < fb->rows; row++) {
    uint64_t *entries = fb->table + row * fb->cols * n;
    memcpy(entries, fb->ctx.one, n * sizeof(uint64_t));
    memcpy(entries + n, row_base, n * sizeof(uint64_t));
    for (size_t d = 2; d < fb->cols; d++) mont_mul(&fb->ctx, entries + d * n, entries + (d - 1) * n, row_base);
    mont_mul(&fb->ctx, row_base, entries + (fb->cols - 1) * n, row_base);
  }
  return fb;
}

void fixed_base_free(fixed_base *fb) {
  if (!fb) return;
  free(fb->table);
  free(fb);
}

void fixed_base_pow(const fixed_base *fb, uint64_t *r, const uint64_t *e, size_t e_limbs) {
  const size_t n = fb->ctx.n;
  uint64_t acc[MONT_MAX_LIMBS];
  int started = 0;
  for (size_t row = 0; row < fb->rows; row++) {
    unsigned d = limbs_bits(e, e_limbs, row * fb->window_bits, fb->window_bits);
    if (d == 0) continue;
    const uint64_t *entry = fb->table + (row * fb->cols + d) * n;
    if (started) mont_mul(&fb->ctx, acc, acc, entry);
    else {
      memcpy(acc, entry, n * sizeof(uint64_t));
      started = 1;
    }
  }
  if (!started) {
    memset(r, 0, n * sizeof(uint64_t));
    r[0] = 1;
    return;
  }
  mont_from(&fb->ctx, r, acc);
}
