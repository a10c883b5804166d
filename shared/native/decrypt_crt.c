#include "decrypt_crt.h"

#include <stdlib.h>
#include <string.h>

/** The larger prime may exceed the smaller by at most this many bits: mq mod p then takes few subtractions. */
#define MAX_PRIME_GAP 4
/** Fixed 4-bit windows: 16 table entries, each read by a scan of all 16 (below). */
#define WINDOW 4

static size_t bit_length(const uint64_t *x, size_t n) {
  for (size_t i = n; i-- > 0;)
    if (x[i]) return 64 * i + 64 - (size_t)__builtin_clzll(x[i]);
  return 0;
}

static int is_zero(const uint64_t *x, size_t n) {
  uint64_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= x[i];
  return acc == 0;
}

/** r = low n limbs of a b (a, b n limbs); r must not alias a or b. */
static void mul_low(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n) {
  memset(r, 0, n * sizeof(uint64_t));
  for (size_t i = 0; i < n; i++) {
    uint64_t carry = 0;
    for (size_t j = 0; i + j < n; j++) {
      u128 s = (u128)a[i] * b[j] + r[i + j] + carry;
      r[i + j] = (uint64_t)s;
      carry = (uint64_t)(s >> 64);
    }
  }
}

/** inv = x^-1 mod 2^(64 n) for odd x, by Newton's iteration (each step doubles the correct bits). */
static void inverse_mod_power_of_two(uint64_t *inv, const uint64_t *x, size_t n) {
  uint64_t t[MONT_MAX_LIMBS], u[MONT_MAX_LIMBS];
  memset(inv, 0, n * sizeof(uint64_t));
  uint64_t i0 = 1;
  for (int k = 0; k < 6; k++) i0 *= 2 - x[0] * i0;
  inv[0] = i0;
  for (size_t bits = 64; bits < 64 * n; bits *= 2) {
    mul_low(t, x, inv, n); /* t = x inv = 1 + e 2^bits */
    // t = 2 - t
    for (size_t i = 0; i < n; i++) t[i] = ~t[i];
    uint64_t carry = 3; /* ~t + 1 = -t, then + 2 */
    for (size_t i = 0; i < n && carry; i++) {
      u128 s = (u128)t[i] + carry;
      t[i] = (uint64_t)s;
      carry = (uint64_t)(s >> 64);
    }
    mul_low(u, inv, t, n);
    memcpy(inv, u, n * sizeof(uint64_t));
  }
}

/**
 * r = base^e (Montgomery forms mod ctx), e of e_bits bits. Fixed windows, and
 * each table entry is read by scanning the whole table with a mask, so the
 * memory addresses touched do not depend on the exponent's digits (e is p - 1:
 * secret). mont_mul's final subtraction still depends on the data.
 */
static void pow_fixed_window(const mont_ctx *ctx, uint64_t *r, const uint64_t *base, const uint64_t *e, size_t e_limbs,
                             size_t e_bits) {
  const size_t n = ctx->n;
  uint64_t table[(1 << WINDOW) * MONT_MAX_LIMBS];
  uint64_t pick[MONT_MAX_LIMBS];
  memcpy(table, ctx->one, n * sizeof(uint64_t));
  memcpy(table + n, base, n * sizeof(uint64_t));
  for (size_t d = 2; d < (1u << WINDOW); d++) mont_mul(ctx, table + d * n, table + (d - 1) * n, base);
  const size_t windows = (e_bits + WINDOW - 1) / WINDOW;
  if (windows == 0) {
    memcpy(r, ctx->one, n * sizeof(uint64_t));
    return;
  }
  for (size_t w = windows; w-- > 0;) {
    const unsigned digit = limbs_bits(e, e_limbs, w * WINDOW, WINDOW);
    memset(pick, 0, n * sizeof(uint64_t));
    for (unsigned d = 0; d < (1u << WINDOW); d++) {
      const uint64_t mask = (uint64_t)0 - (uint64_t)(d == digit);
      for (size_t j = 0; j < n; j++) pick[j] |= table[d * n + j] & mask;
    }
    if (w + 1 == windows) {
      memcpy(r, pick, n * sizeof(uint64_t)); /* the top window: nothing to square yet */
      continue;
    }
    for (int k = 0; k < WINDOW; k++) mont_sqr(ctx, r, r);
    mont_mul(ctx, r, r, pick);
  }
}

crt_decryptor *crt_decryptor_new(size_t limbs, const uint64_t *n, const uint64_t *p, const uint64_t *q,
                                 const uint64_t *hp, const uint64_t *hq, const uint64_t *q_inv_p) {
  if (limbs == 0 || limbs > MONT_MAX_LIMBS / 2) return NULL;
  const size_t p_bits = bit_length(p, limbs), q_bits = bit_length(q, limbs);
  if (p_bits < 2 || q_bits < 2 || (p[0] & 1) == 0 || (q[0] & 1) == 0) return NULL;
  if (p_bits > q_bits + MAX_PRIME_GAP || q_bits > p_bits + MAX_PRIME_GAP) return NULL;
  const size_t H = ((p_bits > q_bits ? p_bits : q_bits) + 63) / 64;
  uint64_t pq[2 * MONT_MAX_LIMBS];
  limbs_mul(pq, p, q, limbs); /* p, q < 2^(64 H): the product fits 2H limbs */
  if (limbs_cmp(pq, n, limbs) != 0 || !is_zero(pq + limbs, limbs)) return NULL;

  crt_decryptor *dec = calloc(1, sizeof(crt_decryptor));
  if (!dec) return NULL;
  uint64_t p2[2 * MONT_MAX_LIMBS], q2[2 * MONT_MAX_LIMBS];
  limbs_mul(p2, p, p, limbs);
  limbs_mul(q2, q, q, limbs);
  const size_t n_bits = bit_length(n, limbs), p2_bits = bit_length(p2, 2 * limbs), q2_bits = bit_length(q2, 2 * limbs);
  size_t top = n_bits > p2_bits ? n_bits : p2_bits;
  if (q2_bits > top) top = q2_bits;
  const size_t L = (top + 63) / 64;
  if (L > limbs || H > L ||
      limbs_cmp(hp, p, limbs) >= 0 || limbs_cmp(hq, q, limbs) >= 0 || limbs_cmp(q_inv_p, p, limbs) >= 0 ||
      mont_init(&dec->p2, p2, L) != 0 || mont_init(&dec->q2, q2, L) != 0 || mont_init(&dec->p, p, H) != 0 ||
      mont_init(&dec->q, q, H) != 0) {
    free(dec);
    return NULL;
  }
  dec->limbs = L;
  dec->half = H;
  memcpy(dec->p_minus_1, p, H * sizeof(uint64_t));
  memcpy(dec->q_minus_1, q, H * sizeof(uint64_t));
  dec->p_minus_1[0] -= 1; /* p odd: no borrow */
  dec->q_minus_1[0] -= 1;
  dec->p_minus_1_bits = bit_length(dec->p_minus_1, H);
  dec->q_minus_1_bits = bit_length(dec->q_minus_1, H);
  inverse_mod_power_of_two(dec->p_inv, p, H);
  inverse_mod_power_of_two(dec->q_inv, q, H);
  mont_mul(&dec->p2, dec->p2_r3, dec->p2.r2, dec->p2.r2);
  mont_mul(&dec->q2, dec->q2_r3, dec->q2.r2, dec->q2.r2);
  mont_to(&dec->p, dec->hp, hp);
  mont_to(&dec->q, dec->hq, hq);
  mont_to(&dec->p, dec->q_inv_p, q_inv_p);
  limbs_mul(dec->n2, n, n, L);
  return dec;
}

void crt_decryptor_free(crt_decryptor *dec) { free(dec); }

/**
 * out (H limbs) = L(c^(e) mod m^2) h mod m, with L(x) = (x - 1) / m, for the
 * prime m of `prime` and its square's context `square`. -1 if m divides c
 * (then x = 0 mod m, and x - 1 is not a multiple of m).
 */
static int half_decrypt(const crt_decryptor *dec, const mont_ctx *square, const uint64_t *square_r3, const mont_ctx *prime,
                        const uint64_t *exponent, size_t exponent_bits, const uint64_t *prime_inv, const uint64_t *h,
                        uint64_t *out, const uint64_t *c) {
  const size_t L = dec->limbs, H = dec->half;
  uint64_t x[MONT_MAX_LIMBS], t[MONT_MAX_LIMBS], d[MONT_MAX_LIMBS], back[2 * MONT_MAX_LIMBS];
  // c < N^2 = p^2 q^2 < p^2 R: one reduction of the double-size c gives c R^-1 mod p^2.
  mont_redc_wide(square, t, c);
  mont_mul(square, t, t, square_r3); /* c R: c's Montgomery form */
  pow_fixed_window(square, x, t, exponent, H, exponent_bits);
  mont_from(square, x, x);
  if (is_zero(x, L)) return -1;
  memset(t, 0, L * sizeof(uint64_t));
  t[0] = 1;
  limbs_sub(x, x, t, L); /* x - 1 >= 0 */
  // (x - 1) / m, exact when m does not divide c: the quotient is below m < 2^(64 H), so
  // multiplying by m^-1 mod 2^(64 H) gives it. Multiplying back checks exactness.
  mul_low(d, x, prime_inv, H);
  if (limbs_cmp(d, prime->m, H) >= 0) return -1;
  limbs_mul(back, d, prime->m, H);
  for (size_t i = 2 * H; i < L; i++) back[i] = 0;
  if (limbs_cmp(back, x, L) != 0) return -1;
  mont_mul(prime, out, d, h); /* d h R R^-1 */
  return 0;
}

int crt_decrypt(const crt_decryptor *dec, uint64_t *m, const uint64_t *c) {
  const size_t L = dec->limbs, H = dec->half;
  if (is_zero(c, 2 * L) || limbs_cmp(c, dec->n2, 2 * L) >= 0) return -1;
  uint64_t mp[MONT_MAX_LIMBS], mq[MONT_MAX_LIMBS], t[MONT_MAX_LIMBS], s[2 * MONT_MAX_LIMBS];
  if (half_decrypt(dec, &dec->p2, dec->p2_r3, &dec->p, dec->p_minus_1, dec->p_minus_1_bits, dec->p_inv, dec->hp, mp, c) !=
          0 ||
      half_decrypt(dec, &dec->q2, dec->q2_r3, &dec->q, dec->q_minus_1, dec->q_minus_1_bits, dec->q_inv, dec->hq, mq, c) != 0)
    return -1;
  // m = mq + q ((mp - mq) q^-1 mod p); mq < q < 2^MAX_PRIME_GAP p.
  memcpy(t, mq, H * sizeof(uint64_t));
  while (limbs_cmp(t, dec->p.m, H) >= 0) limbs_sub(t, t, dec->p.m, H);
  if (limbs_sub(t, mp, t, H)) limbs_add(t, t, dec->p.m, H);
  mont_mul(&dec->p, t, t, dec->q_inv_p);
  limbs_mul(s, dec->q.m, t, H);
  uint64_t carry = limbs_add(s, s, mq, H);
  for (size_t k = H; carry && k < 2 * H; k++) {
    s[k] += 1;
    carry = s[k] == 0;
  }
  memset(m, 0, L * sizeof(uint64_t));
  memcpy(m, s, (2 * H < L ? 2 * H : L) * sizeof(uint64_t));
  return 0;
}
