/* Array exp for the hot loops of the softmax family and the losses.
 *
 * Contract: y[i] = exp(x[i]) for i < n, with IEEE special values (exp(-inf) = +0,
 * exp(+inf) = +inf, NaN -> NaN, overflow -> +inf, gradual underflow), and at most
 * 1 ulp error in the working precision (float: float arithmetic only).
 *
 * This first version is the scalar libm loop; a vectorisable polynomial version
 * replaces it behind the same signature.
 */
#ifndef REFRT_VECMATH_H
#define REFRT_VECMATH_H
#include <math.h>
#include <stddef.h>

static inline void refrt_vexp_f64(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = exp(x[i]);
}

static inline void refrt_vexp_f32(const float *x, float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = expf(x[i]);
}
#endif
