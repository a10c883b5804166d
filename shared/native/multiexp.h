// prod_i base_i^(e_i) mod m by the bucket (Pippenger) method, as in
// multiexp.ts: a window of c bits costs count + 2^(c+1) products for all terms.
#ifndef FNN_MULTIEXP_H
#define FNN_MULTIEXP_H

#include "montgomery.h"

/** r = prod base_i^e_i mod m. bases: count x n limbs, each < m; exponents: count x e_limbs limbs.
 *  Returns 0, or -1 if out of memory. */
int multiexp(const mont_ctx *ctx, uint64_t *r, const uint64_t *bases, const uint64_t *exponents, size_t e_limbs,
             size_t count, unsigned window_bits);

#endif
