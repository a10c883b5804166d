#include "multiexp.h"

#include <stdlib.h>
#include <string.h>

/**
 * R^E in Montgomery form (R^E R mod m), E = sum of all exponents. The bases are
 * used as they come, as if each were the Montgomery form of b_i R^-1: that
 * saves converting every base (one product per term, ~20% of a 49-bit
 * multi-exponentiation) for this one short exponentiation at the end.
 */
static void pow_of_r(const mont_ctx *ctx, uint64_t *out, const uint64_t *exponents, size_t e_limbs, size_t count) {
  const size_t n = ctx->n;
  uint64_t sum[MONT_MAX_LIMBS + 2] = {0}; /* e_limbs + 1 limbs: count < 2^64 terms */
  for (size_t i = 0; i < count; i++) {
    uint64_t carry = limbs_add(sum, sum, exponents + i * e_limbs, e_limbs);
    sum[e_limbs] += carry;
  }
  memcpy(out, ctx->one, n * sizeof(uint64_t));
  int started = 0;
  for (size_t bit = 64 * (e_limbs + 1); bit-- > 0;) {
    if (started) mont_mul(ctx, out, out, out);
    if ((sum[bit / 64] >> (bit % 64)) & 1) {
      mont_mul(ctx, out, out, ctx->r2); /* r2 is R in Montgomery form */
      started = 1;
    }
  }
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
  uint64_t *buckets = malloc(nb * n * sizeof(uint64_t));
  unsigned char *used = malloc(nb);
  if (!buckets || !used) {
    free(buckets);
    free(used);
    return -1;
  }
  uint64_t acc[MONT_MAX_LIMBS], running[MONT_MAX_LIMBS], total[MONT_MAX_LIMBS];
  memcpy(acc, ctx->one, n * sizeof(uint64_t));
  const size_t windows = (bits + c - 1) / c;
  for (size_t w = windows; w-- > 0;) {
    for (unsigned s = 0; s < c; s++) mont_mul(ctx, acc, acc, acc);
    memset(used, 0, nb);
    for (size_t i = 0; i < count; i++) {
      unsigned d = limbs_bits(exponents + i * e_limbs, e_limbs, w * c, c);
      if (d == 0) continue;
      uint64_t *bucket = buckets + d * n;
      if (used[d]) mont_mul(ctx, bucket, bucket, bases + i * n);
      else {
        memcpy(bucket, bases + i * n, n * sizeof(uint64_t));
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
  // acc is the Montgomery form of prod (b_i R^-1)^e_i = Y R^-E: one product by R^E gives Y.
  uint64_t r_to_e[MONT_MAX_LIMBS];
  pow_of_r(ctx, r_to_e, exponents, e_limbs, count);
  mont_mul(ctx, acc, acc, r_to_e);
  mont_from(ctx, r, acc);
  free(buckets);
  free(used);
  return 0;
}
