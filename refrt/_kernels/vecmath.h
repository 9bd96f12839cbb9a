/* Array exp (and log, further down) for the hot loops of the softmax family and losses.
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
 *    results; measured: float64 0.57 (mpmath samples), float32 0.56 (every float in 8
 *    binades, tests/test_vecmath.py).
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

/* ------------------------------------------------------------------------------ log
 * Contract: y[i] = log(x[i]); log(+-0) = -inf, log(x < 0) = NaN (also -inf), log(+inf) =
 * +inf, log(1) = +0, NaN -> quiet NaN, subnormal x exact-scaled; error < 1 ulp.
 *
 * Design (same rules as exp: branch-free, integer-mask selects, fma only where exact or
 * inlined, bitwise identical across the clones):
 * L1) Subnormal x is scaled by 2^52 (2^23 float), exactly, and k corrected by -52.
 * L2) x = 2^k * m with m in [sqrt(1/2), sqrt(2)): subtracting the bit pattern of sqrt(1/2)
 *     from x's bits puts k in the top 12 (9) bits; m's bits are x's bits minus k << 52.
 *     k is turned into a double without a 64-bit int -> double conversion (none in AVX2):
 *     u = (bits >> 52) is k mod 4096, written into the mantissa of 2^52 (exact), and
 *     4096 is subtracted where u >= 2048.
 * L3) log(m) = log1p(f), f = m - 1 exact (Sterbenz), |f| <= 0.4143.  With s = f/(2+f)
 *     (|s| <= 3 - 2*sqrt(2) = 0.1716):  log1p(f) = 2 atanh(s) = 2s + s*R(s^2), and since
 *     2s = f - s*f:  log1p(f) = f - hfsq + s*(hfsq + R),  hfsq = f^2/2   (fdlibm e_log.c).
 *     R(z) = z*(Lg1 + z*Lg2 + ... + z^6*Lg7), the fdlibm minimax fit, |error| < 2^-58.45
 *     (checked against mpmath: 2^-58.47).  Float: the atanh series 2/3, 2/5, 2/7, 2/9;
 *     truncation 2 z^5/11 * s, i.e. < 2^-29 relative (0.015 ulp).
 * L4) Assembly, leading terms exact: A = k*LN2HI (exact, Cody-Waite as for exp);
 *     A + f = t + te (Fast2Sum: |A| >= 0.69 > |f| when k != 0); f^2 = h + hl exactly
 *     (fma) so hfsq = h/2 + hl/2; t - h/2 = u + ue (Fast2Sum: |t| >= |h/2| always, as
 *     |f| <= 0.414 and |A + f| >= 0.27 for k != 0); then
 *       y = u + ((te + ue) + (s*(h/2 + R) - hl/2 + k*LN2LO)).
 *     Only the final addition rounds at full weight.  k != 0 only when |log x| > 0.34,
 *     so A and f never cancel catastrophically; near x = 1 (k = 0) y = f - f^2/2 + ...
 *     keeps full relative accuracy.
 * L5) Error budget (ulps of the result, worst at f near +0.41 where the tail is largest,
 *     |tail| <= 0.02 against |y| >= 0.34): final rounding 0.5; s = f/(2+f) carries two
 *     roundings (2+f and the division), s*(hfsq + R) two more: ~0.09; the roundings of
 *     the tail sum ~0.07; R 2^-58.5 relative to s (float: truncation 0.015); a few
 *     second-order terms: bound ~0.70 ulp.  Measured: float64 0.60 (mpmath samples),
 *     float32 0.668 (every float in [0.5, 2)); see tests/test_vecmath.py.
 */
static inline double refrt_log_f64_body(double x)
{
    const double LN2HI = 6.93147180369123816490e-01;         /* 0x3fe62e42fee00000 */
    const double LN2LO = 1.90821492927058770002e-10;         /* 0x3dea39ef35793c76 */
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    uint64_t ux = refrt_bits_f64(x);
    /* L1: positive subnormal -> scale by 2^52 */
    uint64_t sub = -(uint64_t)((ux != 0) & (ux < 0x0010000000000000u));
    uint64_t uxs = (ux & ~sub) | (refrt_bits_f64(x * 4503599627370496.0) & sub);
    /* L2 */
    uint64_t tmp = uxs - 0x3fe6a09e667f3bcdu;               /* bits of sqrt(1/2) */
    uint64_t u = tmp >> 52;                                  /* k mod 4096 */
    double kd = refrt_from_bits_f64(0x4330000000000000u | u) - 4503599627370496.0;
    kd -= refrt_from_bits_f64(-(uint64_t)(u >= 2048) & 0x40b0000000000000u);  /* 4096 */
    kd -= refrt_from_bits_f64(sub & 0x404a000000000000u);                        /* 52 */
    double m = refrt_from_bits_f64(uxs - (tmp & 0xfff0000000000000u));
    /* L3 */
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = z * fma(z, fma(z, fma(z, fma(z, fma(z, fma(z, Lg7, Lg6), Lg5), Lg4), Lg3),
                              Lg2), Lg1);
    /* L4 */
    double A = kd * LN2HI;
    double t = A + f;
    double te = (A - t) + f;
    double h = f * f;
    double hl = fma(f, f, -h);
    double hh = 0.5 * h;
    double uu = t - hh;
    double ue = (t - uu) - hh;
    double tail = (te + ue) + ((s * (hh + R) - 0.5 * hl) + kd * LN2LO);
    double y = uu + tail;
    /* specials: +-0 -> -inf; x < 0 (incl. -inf) -> NaN; +inf -> +inf; NaN -> quiet NaN */
    uint64_t uy = refrt_bits_f64(y);
    uint64_t isnan_ = -(uint64_t)((ux & 0x7fffffffffffffffu) > 0x7ff0000000000000u);
    uint64_t zero = -(uint64_t)((ux & 0x7fffffffffffffffu) == 0);
    uint64_t neg = -(uint64_t)(ux > 0x8000000000000000u) & ~isnan_;
    uint64_t pinf = -(uint64_t)(ux == 0x7ff0000000000000u);
    uy = (uy & ~(isnan_ | zero | neg | pinf))
         | (isnan_ & refrt_bits_f64(x + x))
         | (zero & 0xfff0000000000000u)
         | (neg & 0x7ff8000000000000u)
         | (pinf & 0x7ff0000000000000u);
    return refrt_from_bits_f64(uy);
}

static inline float refrt_log_f32_body(float x)
{
    const float LN2HI = 0.693145751953125f;                 /* 0x3f317200, 15 bits */
    const float LN2LO = 1.42860677e-06f;                    /* 0x35bfbe8e */
    uint32_t ux = refrt_bits_f32(x);
    uint32_t sub = -(uint32_t)((ux != 0) & (ux < 0x00800000u));
    uint32_t uxs = (ux & ~sub) | (refrt_bits_f32(x * 8388608.0f) & sub);
    uint32_t tmp = uxs - 0x3f3504f3u;                        /* bits of sqrt(1/2) */
    uint32_t u = tmp >> 23;                                  /* k mod 512 */
    float kd = refrt_from_bits_f32(0x4b000000u | u) - 8388608.0f;
    kd -= refrt_from_bits_f32(-(uint32_t)(u >= 256) & 0x44000000u);   /* 512 */
    kd -= refrt_from_bits_f32(sub & 0x41b80000u);                      /* 23 */
    float m = refrt_from_bits_f32(uxs - (tmp & 0xff800000u));
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    /* atanh series: 2/3, 2/5, 2/7, 2/9 (L3) */
    float R = z * fmaf(z, fmaf(z, fmaf(z, 0.222222222f, 0.285714286f), 0.4f), 0.666666667f);
    float A = kd * LN2HI;
    float t = A + f;
    float te = (A - t) + f;
    float h = f * f;
    float hl = fmaf(f, f, -h);
    float hh = 0.5f * h;
    float uu = t - hh;
    float ue = (t - uu) - hh;
    float tail = (te + ue) + ((s * (hh + R) - 0.5f * hl) + kd * LN2LO);
    float y = uu + tail;
    uint32_t uy = refrt_bits_f32(y);
    uint32_t isnan_ = -(uint32_t)((ux & 0x7fffffffu) > 0x7f800000u);
    uint32_t zero = -(uint32_t)((ux & 0x7fffffffu) == 0);
    uint32_t neg = -(uint32_t)(ux > 0x80000000u) & ~isnan_;
    uint32_t pinf = -(uint32_t)(ux == 0x7f800000u);
    uy = (uy & ~(isnan_ | zero | neg | pinf))
         | (isnan_ & refrt_bits_f32(x + x))
         | (zero & 0xff800000u)
         | (neg & 0x7fc00000u)
         | (pinf & 0x7f800000u);
    return refrt_from_bits_f32(uy);
}

REFRT_CLONES
static void refrt_vlog_f64_impl(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_log_f64_body(x[i]);
}

REFRT_CLONES
static void refrt_vlog_f32_impl(const float *x, float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_log_f32_body(x[i]);
}

static inline void refrt_vlog_f64(const double *x, double *y, ptrdiff_t n)
{
    refrt_vlog_f64_impl(x, y, n);
}

static inline void refrt_vlog_f32(const float *x, float *y, ptrdiff_t n)
{
    refrt_vlog_f32_impl(x, y, n);
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
/* ---------------------------------------------------------------- expm1, log1p, tanh
 * Contracts: y[i] = expm1(x[i]) / log1p(x[i]) / tanh(x[i]), < 1 ulp (tanh < 1 ulp too,
 * registry budget 2), IEEE specials: expm1(-inf) = -1, expm1(+inf) = +inf, expm1(+-0) =
 * +-0; log1p(-1) = -inf, log1p(x < -1) = NaN (also -inf), log1p(+inf) = +inf, log1p(+-0)
 * = +-0; tanh(+-0) = +-0, tanh(+-inf) = +-1; NaN -> quiet NaN.  Same rules as exp/log
 * (a, d): branch-free bodies, integer-mask selects, bitwise identical clones.
 *
 * E1) expm1 reuses exp's reduction (b) x = k ln2 + r + rlo and its Taylor series
 *     without the leading 1: expm1(r) = r + r^2/2 + r^3 q(r), degree N = 14 (float 9).
 *     The result is now as small as |r| (|expm1(r)| >= 0.85 |r|), so the truncation
 *     |r|^(N+1)/(N+1)! counts relative to |r|, not to 1: at |r| = 0.3466,
 *     double: |r|^14/14! / 0.29 = 1.4e-17 = 0.13 ulp at degree 13, hence 14
 *       (|r|^15/15! / 0.29 = 3.3e-19, 0.003 ulp);
 *     float:  |r|^10/10! / 0.29 = 2.5e-11 (0.0004 ulp) at degree 9 (degree 8: 0.012).
 *     p = ph + pl, ph = r + r^2/2 by Fast2Sum (|r^2/2| <= |r|/6), pl collects the
 *     Fast2Sum error, the low part of r^2 (fma), the cubic term and rlo e^r.
 * E2) Reconstruction: expm1(x) = 2^k expm1(r) + (2^k - 1), and 2^k = 2^k1 2^k2 as in
 *     exp (f) so no factor leaves the exponent range:
 *       expm1(x) = 2^k1 (2^k2 p + (2^k2 - 2^-k1)).
 *     T = 2^k2 - 2^-k1 by TwoSum (Th + Tl exactly), 2^k2 ph is exact, Th + 2^k2 ph by
 *     TwoSum (u + ue exactly), then v = u + ((ue + Tl) + 2^k2 pl): only the final
 *     addition rounds at full weight, and the final product by 2^k1 is exact unless it
 *     overflows (then +inf, correctly).  For k = 0 (|x| <= ln2/2) T = 0 and r = x
 *     exactly, so there is no reduction error at all.  Cancellation: 2^k p against
 *     2^k - 1 is worst at k = 1, r = -0.35: |2 p| / |y| = 0.59 / 0.41 = 1.4.
 * E3) Error budget: final rounding 0.5; pl's roundings (|pl| <= 0.02 |p|) and Horner
 *     < 0.05 ulp of p, times 1.4 from E2; truncation 0.003 (float 0.0004): bound
 *     ~0.6 ulp.  Measured: tests/test_vecmath.py (float64 and float32 ~0.55).
 * E4) Cutoffs (integer compares on the bits, NaN fails all of them and propagates):
 *     x > XMAX (710 / 89, as exp) -> +inf;  x < XNEG -> -1: expm1(x) rounds to -1 once
 *     e^x < ulp(1)/4 = 2^-54 (float 2^-25), x < -37.43 (-17.33); XNEG = -38 (-18), and
 *     the arithmetic rounds [XNEG, -37.43] to -1 itself;  |x| < 2^-54 (float 2^-25) ->
 *     x: x + x^2/2 rounds to x there (x^2/2 < ulp(x)/4), which also gives expm1(+-0) =
 *     +-0 (the arithmetic would give +0 for -0).  k is in [-55, 1024] ([-26, 128]), so
 *     2^-k1 <= 2^28 is normal.
 * E5) The body returns v and vl = (u - v) + tail (Fast2Sum), both times 2^k1: the
 *     result as a double-word, so tanh can use expm1 to beyond working precision.
 */
static inline double refrt_expm1_f64_dw(double x, double *lo_out)
{
    const double SHIFT = 6755399441055744.0;                 /* 1.5 * 2^52 */
    const double INVLN2 = 1.4426950408889634;
    const double LN2HI = 6.93147180369123816490e-01;
    const double LN2LO = 1.90821492927058770002e-10;

    double t = fma(x, INVLN2, SHIFT);
    double kd = t - SHIFT;
    double hi = fma(-kd, LN2HI, x);
    double lo = kd * LN2LO;
    double r = hi - lo;
    double rlo = (hi - r) - lo;
    /* Taylor coefficients 1/j!, j = 3..14 (E1) */
    double q = 1.1470745597729725e-11;                  /* 1/14! */
    q = fma(q, r, 1.6059043836821613e-10);
    q = fma(q, r, 2.08767569878681e-09);
    q = fma(q, r, 2.505210838544172e-08);
    q = fma(q, r, 2.755731922398589e-07);
    q = fma(q, r, 2.7557319223985893e-06);
    q = fma(q, r, 2.48015873015873e-05);
    q = fma(q, r, 1.984126984126984e-04);
    q = fma(q, r, 1.388888888888889e-03);
    q = fma(q, r, 8.333333333333333e-03);
    q = fma(q, r, 4.1666666666666664e-02);
    q = fma(q, r, 1.6666666666666666e-01);              /* 1/3! */
    double r2 = r * r;
    double r2lo = fma(r, r, -r2);
    double h = 0.5 * r2;
    double ph = r + h;
    double pe = (r - ph) + h;                           /* Fast2Sum, exact */
    double pl = pe + ((rlo + rlo * r) + (0.5 * r2lo + r2 * (r * q)));
    /* E2: 2^k1, 2^k2, 2^-k1 from the shifter bits (k1 + 1023 in [995, 1535]) */
    double t1 = kd * 0.5 + SHIFT;
    double k1d = t1 - SHIFT;
    double t2 = (kd - k1d) + SHIFT;
    double s1 = refrt_from_bits_f64((refrt_bits_f64(t1) + 1023u) << 52);
    double s2 = refrt_from_bits_f64((refrt_bits_f64(t2) + 1023u) << 52);
    double m1 = refrt_from_bits_f64((1023u - refrt_bits_f64(t1)) << 52);
    double Th = s2 - m1, b1 = Th - s2;
    double Tl = (s2 - (Th - b1)) + (-m1 - b1);          /* TwoSum */
    double a = s2 * ph;                                 /* exact */
    double u = Th + a, b2 = u - Th;
    double ue = (Th - (u - b2)) + (a - b2);             /* TwoSum */
    double tail = (ue + Tl) + s2 * pl;
    double v = u + tail;
    double vl = (u - v) + tail;
    v *= s1;
    vl *= s1;
    /* E4 */
    uint64_t ux = refrt_bits_f64(x);
    uint64_t big = -(uint64_t)((ux > 0x4086300000000000u) & (ux <= 0x7ff0000000000000u));
    uint64_t neg = -(uint64_t)((ux > 0xc043000000000000u) & (ux <= 0xfff0000000000000u));
    uint64_t tiny = -(uint64_t)((ux & 0x7fffffffffffffffu) < 0x3c90000000000000u);
    uint64_t sel = big | neg | tiny;
    uint64_t uv = (refrt_bits_f64(v) & ~sel) | (big & 0x7ff0000000000000u)
                  | (neg & 0xbff0000000000000u) | (tiny & ux);
    *lo_out = refrt_from_bits_f64(refrt_bits_f64(vl) & ~sel);
    return refrt_from_bits_f64(uv);
}

static inline float refrt_expm1_f32_dw(float x, float *lo_out)
{
    const float SHIFT = 12582912.0f;                       /* 1.5 * 2^23 */
    const float INVLN2 = 1.44269502f;
    const float LN2HI = 0.693145751953125f;
    const float LN2LO = 1.42860677e-06f;

    float t = fmaf(x, INVLN2, SHIFT);
    float kd = t - SHIFT;
    float hi = fmaf(-kd, LN2HI, x);
    float lo = kd * LN2LO;
    float r = hi - lo;
    float rlo = (hi - r) - lo;
    /* Taylor coefficients 1/j!, j = 3..9 (E1) */
    float q = 2.7557319e-06f;                           /* 1/9! */
    q = fmaf(q, r, 2.48015873e-05f);
    q = fmaf(q, r, 1.98412698e-04f);
    q = fmaf(q, r, 1.38888889e-03f);
    q = fmaf(q, r, 8.33333333e-03f);
    q = fmaf(q, r, 4.16666667e-02f);
    q = fmaf(q, r, 1.66666667e-01f);                    /* 1/3! */
    float r2 = r * r;
    float r2lo = fmaf(r, r, -r2);
    float h = 0.5f * r2;
    float ph = r + h;
    float pe = (r - ph) + h;
    float pl = pe + ((rlo + rlo * r) + (0.5f * r2lo + r2 * (r * q)));
    float t1 = kd * 0.5f + SHIFT;
    float k1d = t1 - SHIFT;
    float t2 = (kd - k1d) + SHIFT;
    float s1 = refrt_from_bits_f32((refrt_bits_f32(t1) + 127u) << 23);
    float s2 = refrt_from_bits_f32((refrt_bits_f32(t2) + 127u) << 23);
    float m1 = refrt_from_bits_f32((127u - refrt_bits_f32(t1)) << 23);
    float Th = s2 - m1, b1 = Th - s2;
    float Tl = (s2 - (Th - b1)) + (-m1 - b1);
    float a = s2 * ph;
    float u = Th + a, b2 = u - Th;
    float ue = (Th - (u - b2)) + (a - b2);
    float tail = (ue + Tl) + s2 * pl;
    float v = u + tail;
    float vl = (u - v) + tail;
    v *= s1;
    vl *= s1;
    uint32_t ux = refrt_bits_f32(x);
    uint32_t big = -(uint32_t)((ux > 0x42b20000u) & (ux <= 0x7f800000u));     /* 89 < x */
    uint32_t neg = -(uint32_t)((ux > 0xc1900000u) & (ux <= 0xff800000u));     /* x < -18 */
    uint32_t tiny = -(uint32_t)((ux & 0x7fffffffu) < 0x33000000u);           /* 2^-25 */
    uint32_t sel = big | neg | tiny;
    uint32_t uv = (refrt_bits_f32(v) & ~sel) | (big & 0x7f800000u)
                  | (neg & 0xbf800000u) | (tiny & ux);
    *lo_out = refrt_from_bits_f32(refrt_bits_f32(vl) & ~sel);
    return refrt_from_bits_f32(uv);
}

/* log1p, design (after log, L1-L5):
 * P1) u + c = 1 + x exactly (TwoSum); u >= 2^-53 or 0 for x >= -1, so never subnormal.
 *     u = 2^k m as in log (L2).  log1p(x) = k ln2 + log(m) + log1p(c/u), and
 *     log1p(c/u) = c/u to 2^-106 relative (|c/u| <= 2^-53).
 * P2) k = 0 (1 + x in [sqrt(1/2), sqrt(2))): f = x itself, exactly, with no c term; so
 *     small arguments never pass through the rounded 1 + x (whose error would be
 *     relatively large).  k != 0: f = m - 1 (exact, Sterbenz) and c/u joins the tail;
 *     there |log1p x| >= 0.34, so c/u (<= 2^-53) and its rounding are harmless.
 * P3) Then exactly log's L3-L4 (same R, same double-word assembly): error bound as L5,
 *     ~0.70 ulp.  Measured: tests/test_vecmath.py.
 * P4) Selects: |x| < 2^-54 (float 2^-25) -> x (x - x^2/2 rounds to x; gives +-0);
 *     x = -1 -> -inf; x < -1 (-inf included) -> NaN; +inf -> +inf; NaN -> quiet NaN.
 */
static inline double refrt_log1p_f64_body(double x)
{
    const double LN2HI = 6.93147180369123816490e-01;
    const double LN2LO = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    double uw = 1.0 + x, bb = uw - 1.0;
    double c = (1.0 - (uw - bb)) + (x - bb);            /* TwoSum (P1) */
    uint64_t uu_ = refrt_bits_f64(uw);
    uint64_t tmp = uu_ - 0x3fe6a09e667f3bcdu;
    uint64_t kb = tmp >> 52;
    double kd = refrt_from_bits_f64(0x4330000000000000u | kb) - 4503599627370496.0;
    kd -= refrt_from_bits_f64(-(uint64_t)(kb >= 2048) & 0x40b0000000000000u);
    double m = refrt_from_bits_f64(uu_ - (tmp & 0xfff0000000000000u));
    /* P2: k = 0 -> f = x, no correction */
    uint64_t k0 = -(uint64_t)(kb == 0);
    uint64_t uf = (refrt_bits_f64(x) & k0) | (refrt_bits_f64(m - 1.0) & ~k0);
    double f = refrt_from_bits_f64(uf);
    double corr = refrt_from_bits_f64(refrt_bits_f64(c / uw) & ~k0);
    double s = f / (2.0 + f);
    double z = s * s;
    double R = z * fma(z, fma(z, fma(z, fma(z, fma(z, fma(z, Lg7, Lg6), Lg5), Lg4), Lg3),
                              Lg2), Lg1);
    double A = kd * LN2HI;
    double t = A + f;
    double te = (A - t) + f;
    double h = f * f;
    double hl = fma(f, f, -h);
    double hh = 0.5 * h;
    double uu = t - hh;
    double ue = (t - uu) - hh;
    double tail = (te + ue) + ((s * (hh + R) - 0.5 * hl) + (kd * LN2LO + corr));
    double y = uu + tail;
    /* P4 */
    uint64_t ux = refrt_bits_f64(x);
    uint64_t ax = ux & 0x7fffffffffffffffu;
    uint64_t isnan_ = -(uint64_t)(ax > 0x7ff0000000000000u);
    uint64_t tiny = -(uint64_t)(ax < 0x3c90000000000000u);
    uint64_t m1 = -(uint64_t)(ux == 0xbff0000000000000u);
    uint64_t below = -(uint64_t)((ux > 0xbff0000000000000u) & (ux <= 0xfff0000000000000u));
    uint64_t pinf = -(uint64_t)(ux == 0x7ff0000000000000u);
    uint64_t uy = (refrt_bits_f64(y) & ~(isnan_ | tiny | m1 | below | pinf))
                  | (isnan_ & refrt_bits_f64(x + x)) | (tiny & ux)
                  | (m1 & 0xfff0000000000000u) | (below & 0x7ff8000000000000u)
                  | (pinf & 0x7ff0000000000000u);
    return refrt_from_bits_f64(uy);
}

static inline float refrt_log1p_f32_body(float x)
{
    const float LN2HI = 0.693145751953125f;
    const float LN2LO = 1.42860677e-06f;
    float uw = 1.0f + x, bb = uw - 1.0f;
    float c = (1.0f - (uw - bb)) + (x - bb);
    uint32_t uu_ = refrt_bits_f32(uw);
    uint32_t tmp = uu_ - 0x3f3504f3u;
    uint32_t kb = tmp >> 23;
    float kd = refrt_from_bits_f32(0x4b000000u | kb) - 8388608.0f;
    kd -= refrt_from_bits_f32(-(uint32_t)(kb >= 256) & 0x44000000u);
    float m = refrt_from_bits_f32(uu_ - (tmp & 0xff800000u));
    uint32_t k0 = -(uint32_t)(kb == 0);
    uint32_t uf = (refrt_bits_f32(x) & k0) | (refrt_bits_f32(m - 1.0f) & ~k0);
    float f = refrt_from_bits_f32(uf);
    float corr = refrt_from_bits_f32(refrt_bits_f32(c / uw) & ~k0);
    float s = f / (2.0f + f);
    float z = s * s;
    float R = z * fmaf(z, fmaf(z, fmaf(z, 0.222222222f, 0.285714286f), 0.4f), 0.666666667f);
    float A = kd * LN2HI;
    float t = A + f;
    float te = (A - t) + f;
    float h = f * f;
    float hl = fmaf(f, f, -h);
    float hh = 0.5f * h;
    float uu = t - hh;
    float ue = (t - uu) - hh;
    float tail = (te + ue) + ((s * (hh + R) - 0.5f * hl) + (kd * LN2LO + corr));
    float y = uu + tail;
    uint32_t ux = refrt_bits_f32(x);
    uint32_t ax = ux & 0x7fffffffu;
    uint32_t isnan_ = -(uint32_t)(ax > 0x7f800000u);
    uint32_t tiny = -(uint32_t)(ax < 0x33000000u);
    uint32_t m1 = -(uint32_t)(ux == 0xbf800000u);
    uint32_t below = -(uint32_t)((ux > 0xbf800000u) & (ux <= 0xff800000u));
    uint32_t pinf = -(uint32_t)(ux == 0x7f800000u);
    uint32_t uy = (refrt_bits_f32(y) & ~(isnan_ | tiny | m1 | below | pinf))
                  | (isnan_ & refrt_bits_f32(x + x)) | (tiny & ux)
                  | (m1 & 0xff800000u) | (below & 0x7fc00000u)
                  | (pinf & 0x7f800000u);
    return refrt_from_bits_f32(uy);
}

/* tanh, design:
 * T1) tanh|x| = -t / (2 + t),  t = expm1(-2|x|) in [-1, 0]  (from tanh = (1 - e^-2a) /
 *     (1 + e^-2a)), the sign copied from x afterwards.  The argument is <= 0, so
 *     nothing overflows; x < -19 (float -9) gives t = -1 (E4) and the result 1.
 * T2) With t rounded (0.55 ulp) the quotient would carry its error twice near t = -1
 *     (d ln y / d ln t = 2 / (2 + t) -> 2) plus two roundings: up to ~2.3 ulp.  So t is
 *     taken as the double-word th + tl of E5 (error ~0.05 ulp), D = 2 + t = dh + dl
 *     (Fast2Sum, |th| <= 2), q = -th/dh, and one correction step with the exact residual
 *     fma(q, -dh, -th):  y = q + (N - q D)/dh,  N = -(th + tl).  Bound: final rounding
 *     0.5 + 2 x 0.05 from t + the correction's own rounding (2^-53 relative of a term
 *     <= 1 ulp): ~0.62 ulp.
 * T3) Specials: -0 -> the tiny select of E4 gives t = -0, q = +0, sign copied: -0;
 *     +-inf -> t = -1, +-1; NaN propagates (the sign OR keeps it a NaN).
 */
static inline double refrt_tanh_f64_body(double x)
{
    uint64_t ux = refrt_bits_f64(x);
    double nax = refrt_from_bits_f64(ux | 0x8000000000000000u);     /* -|x| */
    double tl, th = refrt_expm1_f64_dw(2.0 * nax, &tl);
    double dh = 2.0 + th;
    double dl = ((2.0 - dh) + th) + tl;                 /* Fast2Sum */
    double q = -th / dh;
    double rho = fma(q, -dh, -th) - (tl + q * dl);      /* N - q D (T2) */
    double y = q + rho / dh;
    return refrt_from_bits_f64(refrt_bits_f64(y) | (ux & 0x8000000000000000u));
}

static inline float refrt_tanh_f32_body(float x)
{
    uint32_t ux = refrt_bits_f32(x);
    float nax = refrt_from_bits_f32(ux | 0x80000000u);
    float tl, th = refrt_expm1_f32_dw(2.0f * nax, &tl);
    float dh = 2.0f + th;
    float dl = ((2.0f - dh) + th) + tl;
    float q = -th / dh;
    float rho = fmaf(q, -dh, -th) - (tl + q * dl);
    float y = q + rho / dh;
    return refrt_from_bits_f32(refrt_bits_f32(y) | (ux & 0x80000000u));
}

/* sinh and cosh, design (a = |x|, the sign of sinh copied from x at the end):
 * H1) a <= CUT (22; float 12):  E = expm1(a) as the double-word eh + el (E5), w = 1 + E
 *     = wh + wl (TwoSum), and
 *       sinh a = (E + E/w) / 2      (e^a - e^-a = 1 + E - 1/(1 + E) = E + E/(1 + E)),
 *       cosh a = (w + 1/w) / 2.
 *     Both add two terms of the same sign, so nothing cancels; each quotient is q = n/wh
 *     plus one correction step with the exact residual (as tanh, T2), and the two
 *     leading terms are added by TwoSum: one rounding at full weight, then the exact
 *     halving.  Bound ~0.55 ulp (E's 0.05 double-word error, the corrections' own
 *     roundings below 2^-53 of a term <= 1 ulp).  Small a: E = a (E4 select), E/w = a,
 *     sinh = a exactly; sinh(+-0) = +-0, cosh(0) = 1.
 * H2) a > CUT:  e^-a / e^a < e^-44 (float e^-24), 0.0007 ulp, so both are e^a / 2 =
 *     e^(a - C) (1 + D),  C = ln2 rounded UP to a multiple of 2^-32 (float 2^-15),
 *     D = expm1(C - ln2) = 4.2e-11 (float 2.9e-5), a constant from mpmath.  a - C is
 *     exact (a is a multiple of ulp(a) >= 2^-48 (float 2^-20), C of 2^-32 (2^-15), and
 *     the difference is smaller than a), so e^(a - C) = w from the same expm1 call and
 *     the result is  wh + fma(wh, D, wl):  one rounding at full weight.  C is rounded
 *     up (D > 0) so that w < e^a / 2: w cannot overflow where the result does not
 *     (with C = LN2HI < ln2, w would overflow 1.9e-10 relative below asinh(DBL_MAX)),
 *     and the final addition overflows exactly above asinh(DBL_MAX) = 710.4759
 *     (float 89.416).  Where w is +inf anyway (a = +inf, or a - C past expm1's own
 *     overflow) TwoSum's error term is NaN, so the result is selected to +inf.
 */
#define REFRT_SINHCOSH(T, U, SFX, FMA, CUTBITS, C_, D_, ABSMASK, INFBITS)                 \
static inline T refrt_sinhcosh_##SFX##_body(T x, int want_cosh)                         \
{                                                                                       \
    U ux = refrt_bits_##SFX(x);                                                         \
    U ua = ux & ABSMASK;                                                                \
    T a = refrt_from_bits_##SFX(ua);                                                    \
    U big = -(U)((ua > CUTBITS) & (ua <= INFBITS));                                     \
    U ua2 = (ua & ~big) | (refrt_bits_##SFX(a - C_) & big);                             \
    T el, eh = refrt_expm1_##SFX##_dw(refrt_from_bits_##SFX(ua2), &el);                 \
    T wh = 1 + eh, b0 = wh - 1;                                                         \
    T wl = ((1 - (wh - b0)) + (eh - b0)) + el;               /* TwoSum */              \
    T yb = wh + FMA(wh, D_, wl);                             /* H2 */                  \
    T n = want_cosh ? (T)1 : eh;                             /* H1: n / w */           \
    T q = n / wh;                                                                       \
    T rho = FMA(-q, wh, n) + ((want_cosh ? (T)0 : el) - q * wl);                        \
    T m = want_cosh ? wh : eh;                                                          \
    T ml = want_cosh ? wl : el;                                                         \
    T s = m + q, b1 = s - m;                                                            \
    T se = (m - (s - b1)) + (q - b1);                        /* TwoSum */              \
    T ys = (s + (se + (ml + rho / wh))) * (T)0.5;                                       \
    U uy = (refrt_bits_##SFX(ys) & ~big) | (refrt_bits_##SFX(yb) & big);               \
    U winf = -(U)(refrt_bits_##SFX(wh) == INFBITS);                                    \
    uy = (uy & ~winf) | (winf & INFBITS);                                               \
    return refrt_from_bits_##SFX(uy | (want_cosh ? (U)0 : (ux & ~ABSMASK)));            \
}                                                                                       \
static inline T refrt_sinh_##SFX##_body(T x) { return refrt_sinhcosh_##SFX##_body(x, 0); } \
static inline T refrt_cosh_##SFX##_body(T x) { return refrt_sinhcosh_##SFX##_body(x, 1); }
/* CUT = 22 (float 12); C = 0x3fe62e42ff000000 (0x3f317400); D = expm1(C - ln2) (H2) */
REFRT_SINHCOSH(double, uint64_t, f64, fma, 0x4036000000000000u, 0.6931471806019545,
               4.2009150727693234e-11, 0x7fffffffffffffffu, 0x7ff0000000000000u)
REFRT_SINHCOSH(float, uint32_t, f32, fmaf, 0x41400000u, 0.69317626953125f,
               2.9089395e-05f, 0x7fffffffu, 0x7f800000u)

static inline double refrt_expm1_f64_body(double x) { double l; return refrt_expm1_f64_dw(x, &l); }
static inline float refrt_expm1_f32_body(float x) { float l; return refrt_expm1_f32_dw(x, &l); }

/* One cloned loop per routine and dtype (d); x == y allowed. */
#define REFRT_VLOOP(NAME, T, BODY)                                                     \
REFRT_CLONES                                                                           \
static void NAME##_impl(const T *x, T *y, ptrdiff_t n)                                 \
{                                                                                      \
    for (ptrdiff_t i = 0; i < n; i++) y[i] = BODY(x[i]);                               \
}                                                                                      \
static inline void NAME(const T *x, T *y, ptrdiff_t n) { NAME##_impl(x, y, n); }
REFRT_VLOOP(refrt_vexpm1_f64, double, refrt_expm1_f64_body)
REFRT_VLOOP(refrt_vexpm1_f32, float, refrt_expm1_f32_body)
REFRT_VLOOP(refrt_vlog1p_f64, double, refrt_log1p_f64_body)
REFRT_VLOOP(refrt_vlog1p_f32, float, refrt_log1p_f32_body)
REFRT_VLOOP(refrt_vtanh_f64, double, refrt_tanh_f64_body)
REFRT_VLOOP(refrt_vtanh_f32, float, refrt_tanh_f32_body)
REFRT_VLOOP(refrt_vsinh_f64, double, refrt_sinh_f64_body)
REFRT_VLOOP(refrt_vsinh_f32, float, refrt_sinh_f32_body)
REFRT_VLOOP(refrt_vcosh_f64, double, refrt_cosh_f64_body)
REFRT_VLOOP(refrt_vcosh_f32, float, refrt_cosh_f32_body)

/* ------------------------------------------------------------------ softmax rows
 * Row helpers of the softmax family (refrt/_kernels/softmax.pyx, Design), written here
 * because their selects must be integer bit masks to vectorise (see a): a float compare
 * in a select keeps gcc from if-converting under -ftrapping-math.  All are branch-free
 * loops cloned per ISA level, bitwise identical across the clones.
 *
 * refrt_vmax_*: max over 16 lanes (lane j mod 16, folded in lane order) of the sortable
 *   integer key of each float (sign-magnitude -> two's complement: key = u ^ (0x7ff..f
 *   if negative)), so the compare is an integer max (vpmaxs).  A NaN with the sign bit
 *   clear sorts above +inf and is returned (the caller's non-finite path); a NaN with
 *   the sign bit set sorts below -inf and is skipped (the caller's sum catches it).
 *   n >= 1.
 * refrt_vshift_*: d_j + e_j = x_j - m exactly (TwoSum); where d_j = -inf (x_j = -inf,
 *   or the subtraction overflows) TwoSum's e is NaN and is selected to 0.
 * refrt_vexpsum_*: t_j <- t_j + t_j e_j (exp(d)(1 + e): |e| <= ulp(d)/2, so the
 *   product's rounding is below u^2 t_j and only the addition rounds), then the sum of
 *   the t_j with x_j != m (bitwise) in 16 Sum2 lanes (Ogita-Rump-Oishi: TwoSum per
 *   addition, errors summed per lane), out = {hi, lo, count of x_j == m}.  The entries
 *   equal to the max contribute exactly 1 each and are counted, not summed, so the
 *   small terms are never added to a leading 1 (Design b).  Positive terms: error
 *   <= u S' + n u^2 S'.
 * refrt_vlsm_out_*: y_j = (d_j + e_j) - L as s + (err + e_j), d_j - L = s + err exactly;
 *   where s = -inf the result is s (err is NaN there).
 */
#define REFRT_SOFTMAX_ROWS(T, U, SFX, SIGN, NEGINF)                                    \
REFRT_CLONES                                                                           \
static T refrt_vmax_##SFX(const T *x, ptrdiff_t n)                                     \
{                                                                                      \
    typedef signed_##U S_;                                                             \
    S_ M[16];                                                                          \
    ptrdiff_t full = n - n % 16;                                                       \
    for (int l = 0; l < 16; l++) M[l] = (S_)(NEGINF ^ (SIGN - 1));                     \
    for (ptrdiff_t j = 0; j < full; j += 16)                                           \
        for (int l = 0; l < 16; l++) {                                                 \
            U u; memcpy(&u, x + j + l, sizeof u);                                      \
            S_ k = (S_)(u ^ (-(u >> (8 * sizeof(U) - 1)) & (SIGN - 1)));               \
            M[l] = k > M[l] ? k : M[l];                                                \
        }                                                                              \
    for (ptrdiff_t j = full; j < n; j++) {                                             \
        U u; memcpy(&u, x + j, sizeof u);                                              \
        S_ k = (S_)(u ^ (-(u >> (8 * sizeof(U) - 1)) & (SIGN - 1)));                   \
        M[0] = k > M[0] ? k : M[0];                                                    \
    }                                                                                  \
    S_ m = M[0];                                                                       \
    for (int l = 1; l < 16; l++) m = M[l] > m ? M[l] : m;                              \
    U um = (U)m ^ (-((U)m >> (8 * sizeof(U) - 1)) & (SIGN - 1));                       \
    T r; memcpy(&r, &um, sizeof r);                                                    \
    return r;                                                                          \
}                                                                                      \
                                                                                       \
REFRT_CLONES                                                                           \
static void refrt_vshift_##SFX(const T *x, ptrdiff_t n, T m, T *d, T *e)               \
{                                                                                      \
    for (ptrdiff_t j = 0; j < n; j++) {                                                \
        T s = x[j] - m, bb = s - x[j];                                                 \
        T err = (x[j] - (s - bb)) + (-m - bb);                                         \
        U us, ue; memcpy(&us, &s, sizeof us); memcpy(&ue, &err, sizeof ue);            \
        ue &= -(U)(us != NEGINF);                                                      \
        d[j] = s; memcpy(e + j, &ue, sizeof ue);                                       \
    }                                                                                  \
}                                                                                      \
                                                                                       \
REFRT_CLONES                                                                           \
static void refrt_vexpsum_##SFX(const T *x, ptrdiff_t n, T m, const T *e, T *t,        \
                                T *out)                                                \
{                                                                                      \
    T S[16], E[16], C[16];                                                             \
    U um; memcpy(&um, &m, sizeof um);                                                  \
    ptrdiff_t full = n - n % 16;                                                       \
    for (int l = 0; l < 16; l++) { S[l] = 0; E[l] = 0; C[l] = 0; }                    \
    for (ptrdiff_t j = 0; j < n; j++) t[j] = t[j] + t[j] * e[j];                       \
    for (ptrdiff_t j = 0; j < full; j += 16)                                           \
        for (int l = 0; l < 16; l++) {                                                 \
            U ux, ut; memcpy(&ux, x + j + l, sizeof ux); memcpy(&ut, t + j + l, sizeof ut); \
            U eq = -(U)(ux == um);                                                     \
            U uv = ut & ~eq, uc = eq & ONE_##SFX;                                      \
            T v, c; memcpy(&v, &uv, sizeof v); memcpy(&c, &uc, sizeof c);              \
            C[l] += c;                                                                 \
            T s = S[l] + v, bb = s - S[l];                                             \
            E[l] += (S[l] - (s - bb)) + (v - bb);                                      \
            S[l] = s;                                                                  \
        }                                                                              \
    for (ptrdiff_t j = full; j < n; j++) {                                             \
        U ux; memcpy(&ux, x + j, sizeof ux);                                           \
        int eq = ux == um;                                                             \
        T v = eq ? 0 : t[j];                                                           \
        C[0] += eq;                                                                    \
        T s = S[0] + v, bb = s - S[0];                                                 \
        E[0] += (S[0] - (s - bb)) + (v - bb);                                          \
        S[0] = s;                                                                      \
    }                                                                                  \
    T hi = S[0], lo = E[0], cnt = C[0];                                                \
    for (int l = 1; l < 16; l++) {                                                     \
        T s = hi + S[l], bb = s - hi;                                                  \
        lo += E[l] + ((hi - (s - bb)) + (S[l] - bb));                                  \
        hi = s;                                                                        \
        cnt += C[l];                                                                   \
    }                                                                                  \
    out[0] = hi; out[1] = lo; out[2] = cnt;                                            \
}                                                                                      \
                                                                                       \
REFRT_CLONES                                                                           \
static void refrt_vlsm_out_##SFX(const T *d, const T *e, ptrdiff_t n, T L, T *y)       \
{                                                                                      \
    for (ptrdiff_t j = 0; j < n; j++) {                                                \
        T s = d[j] - L, bb = s - d[j];                                                 \
        T err = (d[j] - (s - bb)) + (-L - bb);                                         \
        T r = s + (err + e[j]);                                                        \
        U us, ur; memcpy(&us, &s, sizeof us); memcpy(&ur, &r, sizeof ur);             \
        U inf = -(U)(us == NEGINF);                                                    \
        ur = (ur & ~inf) | (us & inf);                                                 \
        memcpy(y + j, &ur, sizeof ur);                                                 \
    }                                                                                  \
}

typedef int64_t signed_uint64_t;
typedef int32_t signed_uint32_t;
#define ONE_f64 0x3ff0000000000000u
#define ONE_f32 0x3f800000u
REFRT_SOFTMAX_ROWS(double, uint64_t, f64, 0x8000000000000000u, 0xfff0000000000000u)
REFRT_SOFTMAX_ROWS(float, uint32_t, f32, 0x80000000u, 0xff800000u)
#endif
