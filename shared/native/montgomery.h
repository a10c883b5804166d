// Montgomery arithmetic on little-endian 64-bit limbs: the one piece of
// multi-precision code in FNN. Node's BigInt multiplies and reduces a 2048-bit
// product in ~5 us; these loops (CIOS, one __int128 multiply-add per limb pair)
// do it in ~1 us, and a Paillier key's hot loops are nothing but such products.
#ifndef FNN_MONTGOMERY_H
#define FNN_MONTGOMERY_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 u128;

/** Largest modulus, in limbs: N^2 of an 8192-bit key. */
#define MONT_MAX_LIMBS 256

typedef struct {
  size_t n;          /* limbs of the modulus */
  uint64_t m[MONT_MAX_LIMBS];
  uint64_t minv;     /* -m^-1 mod 2^64 */
  uint64_t one[MONT_MAX_LIMBS]; /* R mod m: 1 in Montgomery form */
  uint64_t r2[MONT_MAX_LIMBS];  /* R^2 mod m: turns x into x R */
} mont_ctx;

/** Prepares a context for an odd modulus below R = 2^(64 n); 0 on success. */
int mont_init(mont_ctx *ctx, const uint64_t *m, size_t n);

/** r = a b R^-1 mod m, for a, b < m. r may alias a or b. */
void mont_mul(const mont_ctx *ctx, uint64_t *r, const uint64_t *a, const uint64_t *b);

/** r = a^2 R^-1 mod m for a < m; r may alias a. The square's cross products are computed once and
 *  doubled: ~3/4 of mont_mul's word products (the exponentiations of decrypt_crt.c are 4/5 squarings). */
void mont_sqr(const mont_ctx *ctx, uint64_t *r, const uint64_t *a);

/** r = t R^-1 mod m for t < m R given in 2n limbs (Montgomery reduction of a double-size number). */
void mont_redc_wide(const mont_ctx *ctx, uint64_t *r, const uint64_t *t);

/** x R mod m for x < m. */
void mont_to(const mont_ctx *ctx, uint64_t *r, const uint64_t *x);

/** x R^-1 mod m: back from Montgomery form. */
void mont_from(const mont_ctx *ctx, uint64_t *r, const uint64_t *x);

/** -1, 0, 1 as a <, =, > b (n limbs each). */
int limbs_cmp(const uint64_t *a, const uint64_t *b, size_t n);

/** r = a - b over n limbs; returns the borrow. */
uint64_t limbs_sub(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n);

/** r = a + b over n limbs; returns the carry. */
uint64_t limbs_add(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n);

/** r (2n limbs) = a b (n limbs each); r must not alias a or b. */
void limbs_mul(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n);

/** Bits [pos, pos + width) of x (n limbs) as a number, width <= 32; bits past the top read as 0. */
unsigned limbs_bits(const uint64_t *x, size_t n, size_t pos, unsigned width);

/** Big-endian bytes (any length up to 8 n, zero-extended) to n limbs; 0 if the value does not fit. */
int limbs_from_be(uint64_t *r, size_t n, const uint8_t *bytes, size_t len);

/** n limbs to exactly len big-endian bytes; 0 if the value does not fit. */
int limbs_to_be(uint8_t *bytes, size_t len, const uint64_t *x, size_t n);

#endif
