#include "multiexp.h"

#include <stdlib.h>
#include <string.h>

static unsigned digit_at(const uint64_t *e, size_t limbs, size_t pos, unsigned width) {
  size_t limb = pos / 64, shift = pos % 64;
  if (limb >= limbs) return 0;
  uint64_t bits = e[limb] >> shift;
  if (shift + width > 64 && limb + 1 < limbs) bits |= e[limb + 1] << (64 - shift);
  return (unsigned)(bits & (((uint64_t)1 << width) - 1));
}

int multiexp(const mont_ctx *ctx, uint64_t *r, const uint64_t *bases, const uint64_t *exponents, size_t e_limbs,
             size_t count, unsigned c) {
  const size_t n = ctx->n;
  size_t bits = 0;
  for (size_t i = 0; i < count; i++)
    for (size_t k = e_limbs; k-- > 0;) {
      uint64_t v = exponents[i * e_limbs + k];
      if (v) {
        size_t b = 64 * k + 64 - (size_t)__builtin_clzll(v);
        if (b > bits) bits = b;
        break;
      }
    }
  if (bits == 0 || c == 0 || c > 20) {
    memset(r, 0, n * sizeof(uint64_t));
    if (!(n == 1 && ctx->m[0] == 1)) r[0] = 1;
    return c == 0 || c > 20 ? -1 : 0;
  }
  const size_t nb = (size_t)1 << c;
  uint64_t *mont_bases = malloc(count * n * sizeof(uint64_t));
  uint64_t *buckets = malloc(nb * n * sizeof(uint64_t));
  unsigned char *used = malloc(nb);
  if (!mont_bases || !buckets || !used) {
    free(mont_bases);
    free(buckets);
    free(used);
    return -1;
  }
  for (size_t i = 0; i < count; i++) mont_to(ctx, mont_bases + i * n, bases + i * n);
  uint64_t acc[MONT_MAX_LIMBS], running[MONT_MAX_LIMBS], total[MONT_MAX_LIMBS];
  memcpy(acc, ctx->one, n * sizeof(uint64_t));
  const size_t windows = (bits + c - 1) / c;
  for (size_t w = windows; w-- > 0;) {
    for (unsigned s = 0; s < c; s++) mont_mul(ctx, acc, acc, acc);
    memset(used, 0, nb);
    for (size_t i = 0; i < count; i++) {
      unsigned d = digit_at(exponents + i * e_limbs, e_limbs, w * c, c);
      if (d == 0) continue;
      uint64_t *bucket = buckets + d * n;
      if (used[d]) mont_mul(ctx, bucket, bucket, mont_bases + i * n);
      else {
        memcpy(bucket, mont_bases + i * n, n * sizeof(uint64_t));
        used[d] = 1;
      }
    }
    // sum_k k * bucket_k as running products: prod_k bucket_k^k.
    int have_running = 0, have_total = 0;
    for (size_t k = nb - 1; k >= 1; k--) {
      if (used[k]) {
        if (have_running) mont_mul(ctx, running, running, buckets + k * n);
        else {
          memcpy(running, buckets + k * n, n * sizeof(uint64_t));
          have_running = 1;
        }
      }
      if (have_running) {
        if (have_total) mont_mul(ctx, total, total, running);
        else {
          memcpy(total, running, n * sizeof(uint64_t));
          have_total = 1;
        }
      }
    }
    if (have_total) mont_mul(ctx, acc, acc, total);
  }
  mont_from(ctx, r, acc);
  free(mont_bases);
  free(buckets);
  free(used);
  return 0;
}
