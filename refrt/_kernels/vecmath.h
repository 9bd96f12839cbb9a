/* Array exp for the hot loops of the softmax family and the losses.
 *
 * Contract: y[i] = exp(x[i]) for 0 <= i < n (x == y allowed, any alignment), with IEEE
 * special values -- exp(-inf) = +0, exp(+inf) = +inf, NaN -> quiet NaN, overflow -> +inf,
 * gradual underflow into the subnormals -- and at most 1 ulp error (float: float
 * arithmetic only).  Results are bitwise identical on every x86-64 CPU (see d).
 *
 * Design:
 * a) Branch-free loop body, so gcc -O3 auto-vectorises it: no calls (fma is inlined, see
 *    d), no `if`.  The special cases are selected at the end with integer bit masks; a
 *    float compare could trap under the default -ftrapping-math, which forbids gcc to
 *    if-convert it, and the loop would stay scalar.
 * b) Range reduction  x = k*ln2 + r,  |r| <= ln2/2 (+ rounding slack):
 *      k  = round(x*log2(e)) via the shifter S = 1.5*2^52 (float 1.5*2^23): for
 *           |t| < 2^51, t + S rounds t to an integer kept in the low mantissa bits of
 *           t + S, so (t + S) - S is round(t) as a double and the bit pattern carries k
 *           (no float->int conversion, which vectorises badly for 64-bit ints on AVX2).
 *      hi = x - k*LN2HI is EXACT (Cody-Waite): LN2HI keeps 32 (float: 15) significant
 *           bits and |k| <= 1076 (float: 150) needs 11 (8), so k*LN2HI is exact, and the
 *           difference is exact by Sterbenz' lemma (x/(k*LN2HI) is in [1/2, 2] for k != 0).
 *      lo = k*LN2LO (LN2LO = ln2 - LN2HI rounded), |lo| <= 2.1e-7 (float 2.2e-4); its
 *           rounding error is ~2^-53 |lo|, below 2^-75 relative to the result.
 *      r  = hi - lo rounded; rlo = (hi - r) - lo recovers the rounding error exactly
 *           (Fast2Sum; where |hi| < |lo|, r is below 4e-7 and rlo is irrelevant).
 * c) exp(r) = 1 + r + r^2/2 + r^3 q(r),  q = 1/3! + r/4! + ... + r^(N-3)/N!  (Horner),
 *    Taylor degree N = 13 (float: 8).  Truncation error for |r| <= 0.3466:
 *      double: |r|^14/14! = 4.2e-18  (< 0.04 ulp of exp(r) >= 0.707);
 *      float:  |r|^9/9!   = 2.0e-10  (< 0.005 ulp);
 *    degree 12 / 7 would cost 1.5 / 0.12 ulp.  Assembly, largest terms exact:
 *      s + e = 1 + r          exactly (Fast2Sum, |r| < 1),
 *      r2 + r2lo = r*r        exactly (fma(r, r, -r2)),
 *      y = s + ((e + r2/2) + ((rlo + rlo*r) + (r2lo/2 + r2*(r*q)))),
 *    so only the final addition rounds at full weight.
 * d) fma and dispatch: the build has no -march, so the loops are cloned per ISA level
 *    (target_clones: x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, default = SSE2) and an
 *    ifunc picks one at load time.  In the v3/v4 clones fma() is one instruction; in
 *    the default clone it is a call to the correctly rounded libm fma (slow, no
 *    vectorisation, but the same bits).  Every operation is a correctly rounded IEEE
 *    operation in a fixed order, so all three clones return bitwise identical results
 *    (checked on 2^24 random inputs per dtype): a reference runtime must not change its
 *    answers with the CPU it runs on.  -ffp-contract=off keeps gcc from fusing others.
 * e) Error budget (units of the result's ulp): final rounding 0.5; the two roundings in
 *    the tail (|e + r2/2| <= 0.07, ulp 2^-57) ~0.06; Horner and the cubic term < 0.01;
 *    truncation 0.04 (float 0.005); reduction < 0.01.  Bound ~0.62 ulp for normal
 *    results; measured maxima in tests/test_vecmath.py (float64 0.57, float32 0.54).
 * f) Reconstruction 2^k by integer addition into the exponent field, in TWO factors
 *    2^k1 * 2^k2 with k1 = round(k/2), k2 = k - k1: one factor would need an exponent
 *    field k + 1023 outside [1, 2046] at both ends (k = 1024 just below the overflow
 *    threshold, k < -1022 for subnormal results).  With two factors y*2^k1 is exact and
 *    normal and the second product rounds once: overflow gives +inf, and results below
 *    DBL_MIN round into the subnormals.  There y, already rounded to 53 bits with error
 *    <= 0.62 of its ulp, is rounded again to a grid 2^m times coarser (m = bits lost):
 *    error <= 0.5 + 0.62 * 2^-m subnormal ulps, at most 0.81 (m = 1), below 1 ulp
 *    (measured 0.75 in both formats).
 * g) Cutoffs: the reconstruction is valid for x in [XMIN, XMAX]; outside it the result
 *    is selected: x > XMAX (+inf included) -> +inf, x < XMIN (-inf included) -> +0.
 *      double: XMAX = 710 > ln(DBL_MAX) = 709.782712893384 (k <= 1024), so the overflow
 *              threshold itself is handled by the arithmetic (x >= 709.7827128933841
 *              gives +inf); XMIN = -746 < ln(2^-1075) = -745.1332191019412, below which
 *              exp rounds to +0 (k >= -1076; the arithmetic rounds [-746, -745.13] to 0).
 *      float:  XMAX = 89 > ln(FLT_MAX) = 88.7228394; XMIN = -104 < ln(2^-150) = -103.9721.
 *    NaN fails both selects and stays NaN through the arithmetic (quiet: every NaN
 *    operand of an IEEE operation gives a quiet NaN); k's bits are garbage then, unused.
 */
#ifndef REFRT_VECMATH_H
#define REFRT_VECMATH_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Runtime dispatch (d): target_clones compiles the loops once per ISA level and an ifunc
 * resolver picks one at load time.  arch=x86-64-v3 = AVX2 + FMA (Haswell, Zen 1-3),
 * x86-64-v4 = AVX-512 (Skylake-X, Zen 4).  Needs ELF ifuncs and gcc >= 12; elsewhere the
 * plain loop is built (same results, baseline ISA). */
#if defined(__x86_64__) && defined(__linux__) && !defined(REFRT_NO_CLONES) && \
    defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define REFRT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define REFRT_CLONES
#endif

static inline uint64_t refrt_bits_f64(double v) { uint64_t u; memcpy(&u, &v, 8); return u; }
static inline double refrt_from_bits_f64(uint64_t u) { double v; memcpy(&v, &u, 8); return v; }
static inline uint32_t refrt_bits_f32(float v) { uint32_t u; memcpy(&u, &v, 4); return u; }
static inline float refrt_from_bits_f32(uint32_t u) { float v; memcpy(&v, &u, 4); return v; }

/* exp(x) for one double; every operation is vectorisable (no calls, no branches). */
static inline double refrt_exp_f64_body(double x)
{
    const double SHIFT = 6755399441055744.0;                 /* 1.5 * 2^52 */
    const double INVLN2 = 1.4426950408889634;                /* 1/ln2 */
    const double LN2HI = 6.93147180369123816490e-01;         /* 0x3fe62e42fee00000, 32 bits */
    const double LN2LO = 1.90821492927058770002e-10;         /* 0x3dea39ef35793c76 */

    double t = fma(x, INVLN2, SHIFT);     /* low bits of t = round(x/ln2) */
    double kd = t - SHIFT;
    double hi = fma(-kd, LN2HI, x);       /* exact, see b) */
    double lo = kd * LN2LO;
    double r = hi - lo;
    double rlo = (hi - r) - lo;

    /* Taylor coefficients 1/j!, j = 3..13 (c) */
    double q = 1.6059043836821613e-10;                 /* 1/13! */
    q = fma(q, r, 2.08767569878681e-09);                  /* 1/12! */
    q = fma(q, r, 2.505210838544172e-08);                 /* 1/11! */
    q = fma(q, r, 2.755731922398589e-07);                 /* 1/10! */
    q = fma(q, r, 2.7557319223985893e-06);                /* 1/9! */
    q = fma(q, r, 2.48015873015873e-05);                  /* 1/8! */
    q = fma(q, r, 1.984126984126984e-04);                 /* 1/7! */
    q = fma(q, r, 1.388888888888889e-03);                 /* 1/6! */
    q = fma(q, r, 8.333333333333333e-03);                 /* 1/5! */
    q = fma(q, r, 4.1666666666666664e-02);                /* 1/4! */
    q = fma(q, r, 1.6666666666666666e-01);                /* 1/3! */
    double r2 = r * r;
    double r2lo = fma(r, r, -r2);                      /* r^2 = r2 + r2lo exactly (c) */
    double cubic = r2 * (r * q);                       /* |.| <= 0.0077 */

    double s = 1.0 + r;
    double e = (1.0 - s) + r;              /* exact: |r| < 1 (Fast2Sum) */
    double tail = (e + 0.5 * r2) + ((rlo + rlo * r) + (0.5 * r2lo + cubic));
    double y = s + tail;

    /* 2^k = 2^k1 * 2^k2, k1 = round(k/2) via the shifter again (f) */
    double t1 = kd * 0.5 + SHIFT;
    double k1d = t1 - SHIFT;
    double t2 = (kd - k1d) + SHIFT;
    /* bits(t) = bits(SHIFT) + k: adding the bias and shifting by 52 keeps exactly
     * (k + 1023) mod 2^12 in the exponent field and zeroes the mantissa. */
    double s1 = refrt_from_bits_f64((refrt_bits_f64(t1) + 1023u) << 52);
    double s2 = refrt_from_bits_f64((refrt_bits_f64(t2) + 1023u) << 52);
    y = (y * s1) * s2;
    /* outside [-746, 710] the reconstruction is invalid: select the limits (g).  The
     * tests compare bit patterns as integers (IEEE order of same-sign values): a float
     * compare may trap under -ftrapping-math, which stops gcc from if-converting it. */
    uint64_t ux = refrt_bits_f64(x);
    uint64_t big = -(uint64_t)((ux > 0x4086300000000000u) & (ux <= 0x7ff0000000000000u));
    uint64_t tiny = -(uint64_t)((ux > 0xc087500000000000u) & (ux <= 0xfff0000000000000u));
    uint64_t uy = refrt_bits_f64(y);
    uy = (uy & ~(big | tiny)) | (big & 0x7ff0000000000000u);   /* +inf or +0 */
    return refrt_from_bits_f64(uy);
}

static inline float refrt_exp_f32_body(float x)
{
    const float SHIFT = 12582912.0f;                       /* 1.5 * 2^23 */
    const float INVLN2 = 1.44269502f;
    const float LN2HI = 0.693145751953125f;                 /* 0x3f317200, 15 bits */
    const float LN2LO = 1.42860677e-06f;                    /* 0x35bfbe8e */

    float t = fmaf(x, INVLN2, SHIFT);
    float kd = t - SHIFT;
    float hi = fmaf(-kd, LN2HI, x);
    float lo = kd * LN2LO;
    float r = hi - lo;
    float rlo = (hi - r) - lo;

    /* Taylor coefficients 1/j!, j = 3..8 (c) */
    float q = 2.48015873e-05f;                        /* 1/8! */
    q = fmaf(q, r, 1.98412698e-04f);                      /* 1/7! */
    q = fmaf(q, r, 1.38888889e-03f);                      /* 1/6! */
    q = fmaf(q, r, 8.33333333e-03f);                      /* 1/5! */
    q = fmaf(q, r, 4.16666667e-02f);                      /* 1/4! */
    q = fmaf(q, r, 1.66666667e-01f);                      /* 1/3! */
    float r2 = r * r;
    float r2lo = fmaf(r, r, -r2);
    float cubic = r2 * (r * q);

    float s = 1.0f + r;
    float e = (1.0f - s) + r;
    float tail = (e + 0.5f * r2) + ((rlo + rlo * r) + (0.5f * r2lo + cubic));
    float y = s + tail;

    float t1 = kd * 0.5f + SHIFT;
    float k1d = t1 - SHIFT;
    float t2 = (kd - k1d) + SHIFT;
    float s1 = refrt_from_bits_f32((refrt_bits_f32(t1) + 127u) << 23);
    float s2 = refrt_from_bits_f32((refrt_bits_f32(t2) + 127u) << 23);
    y = (y * s1) * s2;
    uint32_t ux = refrt_bits_f32(x);
    uint32_t big = -(uint32_t)((ux > 0x42b20000u) & (ux <= 0x7f800000u));    /* 89 < x */
    uint32_t tiny = -(uint32_t)((ux > 0xc2d00000u) & (ux <= 0xff800000u));   /* x < -104 */
    uint32_t uy = refrt_bits_f32(y);
    uy = (uy & ~(big | tiny)) | (big & 0x7f800000u);
    return refrt_from_bits_f32(uy);
}

REFRT_CLONES
static void refrt_vexp_f64_impl(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_exp_f64_body(x[i]);
}

REFRT_CLONES
static void refrt_vexp_f32_impl(const float *x, float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_exp_f32_body(x[i]);
}

static inline void refrt_vexp_f64(const double *x, double *y, ptrdiff_t n)
{
    refrt_vexp_f64_impl(x, y, n);
}

static inline void refrt_vexp_f32(const float *x, float *y, ptrdiff_t n)
{
    refrt_vexp_f32_impl(x, y, n);
}
#endif
