/* The certified rounding pass of the Ozaki matmul (refrt/_kernels/ozaki.py, Design d/e),
 * one output row at a time, for refrt/_kernels/linalg.pyx (ozaki_round).
 *
 * Contract: refrt_oz_row_<T><FULL><BIAS>(p0, p1, p2, bias, ea0, ea1, eb0, eb1, sb, si,
 * eabs, out, flags, p) sets, for 0 <= k < p,
 *   out[k]   = the double-double sum p0[k] (+ p1[k] + p2[k]) (+ bias[k]) rounded to T,
 *   flags[k] = 0 when that rounding is certified (see below), 1 when not or when
 *              si + sb[k] < 0 (finite inputs), 2 when the error bound or the bias is
 *              inf/NaN,
 * and returns the number of nonzero flags.  The exact value must lie within
 *   E = ea0 eb0[k] + ea1 eb1[k] + eabs
 * of p0 + p1 + p2 (the caller's bound on the parts' errors).
 *
 * Design:
 * a) Sum: hi = p0 + p1 + p2 + bias by TwoSum, the errors e_i summed in lo (each of those
 *    two additions rounded: <= 2u sum |e_i| more error).  (r, t) = TwoSum(hi, lo) is exact.
 *    float32: r32 = (float)r and t += r - r32, exact by Sterbenz (r32 within a factor 2 of
 *    r when normal), + u|t| for the addition.
 * b) Certification: the exact value v is in [r_T + t - E, r_T + t + E].  With h = half
 *    the gap from |r_T| down to its predecessor (2^(e - p), or 2^(e - p - 1) when r_T is
 *    a power of two: the smaller gap next to r_T), |t| + E < h puts v strictly inside
 *    r_T's rounding interval, so r_T = round(v).  h is built from r_T's exponent bits.
 *    Only results in [2^(emin + 2p), 2^(emax - 1)) are certified (float32 [2^-78, 2^126),
 *    float64 [2^-916, 2^1023)), as matmul_nt's rescue range: near underflow and overflow
 *    the superaccumulator decides.  E is multiplied by 1 + 2^-40 for its own rounding.
 * c) Branch-free (every output written, flagged ones are overwritten by the fallback),
 *    so GCC vectorises the loop; NaN fails every comparison and so is flagged.
 */
#ifndef REFRT_OZAKI_H
#define REFRT_OZAKI_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define REFRT_OZ_U 1.1102230246251565e-16      /* 2^-53 */
#define REFRT_OZ_SAFE 1.0000000000009095       /* 1 + 2^-40 */

#define REFRT_OZ_TWO_SUM(a, b, s, e) do {                                     \
        double a_ = (a), b_ = (b), s_ = a_ + b_, bb_ = s_ - a_;               \
        (e) = (a_ - (s_ - bb_)) + (b_ - bb_);                                 \
        (s) = s_;                                                             \
    } while (0)

static inline double refrt_oz_pow2(int64_t e)    /* 2^e, -1022 <= e <= 1023 */
{
    uint64_t b = (uint64_t)(e + 1023) << 52;
    double v;
    memcpy(&v, &b, 8);
    return v;
}

static inline int refrt_oz_finite(double x)
{
    return fabs(x) <= 1.7976931348623157e308;    /* false for inf and NaN */
}

#define REFRT_OZ_DEFINE(T, FULL, BIAS, NAME)                                           \
static ptrdiff_t NAME(const double *restrict p0, const double *restrict p1,            \
                      const double *restrict p2, const T *restrict bias, double ea0,   \
                      double ea1, const double *restrict eb0, const double *restrict eb1,\
                      const int *restrict sb, int si, double eabs, T *restrict out,    \
                      signed char *restrict flags, ptrdiff_t p)                        \
{                                                                                      \
    ptrdiff_t bad = 0;                                                                 \
    for (ptrdiff_t k = 0; k < p; k++) {                                                \
        double hi = p0[k], e1 = 0, e2 = 0, e3 = 0, bk = 0, lo, r, t, h, err;           \
        int64_t er, mz, ok;                                                            \
        if (FULL) {                                                                    \
            REFRT_OZ_TWO_SUM(hi, p1[k], hi, e1);                                       \
            REFRT_OZ_TWO_SUM(hi, p2[k], hi, e2);                                       \
        }                                                                              \
        if (BIAS) {                                                                    \
            bk = (double)bias[k];                                                      \
            REFRT_OZ_TWO_SUM(hi, bk, hi, e3);                                          \
        }                                                                              \
        lo = (e1 + e2) + e3;                                                           \
        err = ea0 * eb0[k] + (FULL ? ea1 * eb1[k] : 0.0) + eabs                        \
              + 2 * REFRT_OZ_U * (fabs(e1) + fabs(e2) + fabs(e3));                     \
        REFRT_OZ_TWO_SUM(hi, lo, r, t);                                                \
        if (sizeof(T) == 4) {                                                          \
            float r32 = (float)r;                                                      \
            uint32_t b32;                                                              \
            t = t + (r - (double)r32);                                                 \
            err = err + REFRT_OZ_U * fabs(t);                                          \
            memcpy(&b32, &r32, 4);                                                     \
            er = (b32 >> 23) & 0xff;                                                   \
            mz = (b32 & 0x7fffff) == 0;                                                \
            h = refrt_oz_pow2(er - 151 - mz);                                          \
            ok = (er >= 49) & (er < 253);                                              \
            out[k] = (T)r32;                                                           \
        } else {                                                                       \
            uint64_t b64;                                                              \
            memcpy(&b64, &r, 8);                                                       \
            er = (int64_t)((b64 >> 52) & 0x7ff);                                       \
            mz = (b64 & ((((uint64_t)1) << 52) - 1)) == 0;                             \
            h = refrt_oz_pow2(er - 1076 - mz);                                         \
            ok = (er >= 107) & (er < 2046);                                            \
            out[k] = (T)r;                                                             \
        }                                                                              \
        {                                                                              \
            int64_t valid = (int64_t)si + sb[k] >= 0;                                  \
            int64_t nonfin = (!refrt_oz_finite(err)) | (!refrt_oz_finite(bk));       \
            ok = ok & ((fabs(t) + err) * REFRT_OZ_SAFE < h) & valid;                   \
            flags[k] = (signed char)((1 - ok) * (1 + nonfin));                         \
            bad += 1 - ok;                                                             \
        }                                                                              \
    }                                                                                  \
    return bad;                                                                        \
}

REFRT_OZ_DEFINE(float, 0, 0, refrt_oz_row_f32_00)
REFRT_OZ_DEFINE(float, 0, 1, refrt_oz_row_f32_01)
REFRT_OZ_DEFINE(double, 1, 0, refrt_oz_row_f64_10)
REFRT_OZ_DEFINE(double, 1, 1, refrt_oz_row_f64_11)

#endif
