// Table-driven fixed-base exponentiation base^e mod m for exponents of at most
// `exponent_bits` bits: one Montgomery product per nonzero window of e.
#ifndef FNN_FIXED_BASE_H
#define FNN_FIXED_BASE_H

#include "montgomery.h"

typedef struct {
  mont_ctx ctx;
  unsigned window_bits;
  size_t rows, cols;
  /* table[(row * cols + d) * n ...] = base^(d 2^(window_bits row)) R mod m */
  uint64_t *table;
} fixed_base;

/** Builds the table for base < m (rows * cols products); NULL if out of memory or m unusable. */
fixed_base *fixed_base_new(const uint64_t *m, size_t n, const uint64_t *base, unsigned window_bits, unsigned exponent_bits);

void fixed_base_free(fixed_base *fb);

/** r = base^e mod m (normal form); e is e_limbs little-endian limbs, of which only the low
 *  rows * window_bits bits are read (the caller keeps e below 2^exponent_bits). */
void fixed_base_pow(const fixed_base *fb, uint64_t *r, const uint64_t *e, size_t e_limbs);

#endif
