/* Exact row sums: a small superaccumulator (after Neal 2015, "Fast exact summation using
 * small and large superaccumulators", arXiv:1505.05571, the "small" xsum accumulator)
 * for float64 and float32, correctly rounded for every input.
 *
 * Contract:
 *   refrt_sa_sum_{f64,f32}(x, n, k, &hi, &lo) sets hi = fl(S * 2^-k) and
 *   lo = fl((S * 2^-k) - hi), S = x[0] + ... + x[n-1] computed exactly (no overflow,
 *   no underflow, no rounding), fl = round to nearest, ties to even, with IEEE overflow
 *   (a value that rounds beyond the largest finite one is +-inf).  k scales the exact
 *   sum before rounding (k > 0: the mean divides a sum that may exceed the largest
 *   float; k < 0: the variance's mean of a row scaled to |x| < 1, exact since no bit
 *   of S lies below 2^-1074 / 2^-149).  Non-finite inputs follow IEEE: any NaN gives NaN, +inf and -inf give NaN,
 *   else the infinity.  An exact zero is -0 only when every term is -0 (IEEE 754
 *   round-to-nearest addition), +0 otherwise (including n = 0).
 *
 * Design:
 * a) Representation.  Every finite float is m * 2^(E - B) with an integer m < 2^p
 *    (p = 53 / 24 bits, the implicit bit included), E = max(biased exponent, 1) and
 *    B = 1075 / 150, so S = N * 2^-(B - 1) for an integer N.  N is held in 32-bit digits
 *    d[i] (weight 2^(32 i)) stored in signed 64-bit chunks, so digits may temporarily
 *    exceed 32 bits or go negative.  A term's bit position is P = E - 1 (0 .. 2045 /
 *    0 .. 253); it lands in chunk i = P >> 5 as (m << (P & 31)) mod 2^32 and in chunk
 *    i + 1 as m >> (32 - (P & 31)): two integer adds (or subtracts) per term, exact.
 * b) Carries.  Each term adds less than 2^52 (float64) / 2^24 (float32) in magnitude to
 *    any one chunk, and a normalised chunk is below 2^32, so 2^10 (float64) / 2^30
 *    (float32) terms fit in 63 bits; after every CARRY_EVERY terms the carries are
 *    propagated (d[i+1] += d[i] >> 32, d[i] &= 2^32 - 1, arithmetic shift), which leaves
 *    every digit in [0, 2^32) and the sign in the top chunk.  The top chunk index leaves
 *    room for 2^63 terms of the largest magnitude (S < 2^63 * 2^1024).
 * c) Rounding.  After a final carry pass N is negated if negative (two's complement over
 *    the digits), its top bit H found, and the result's last kept bit is
 *    L = max(H - p + 1, max(k, 0)) (bit position k is the smallest subnormal of the
 *    scaled result, and N has no bits below 0).  The kept bits M = N >> L (at most p bits), the round bit and the sticky
 *    bit (any lower bit) give round-half-even; M (+1) * 2^(L - (B - 1) - k) is exact in
 *    the format unless it overflows, which ldexp turns into inf as IEEE does.
 * d) The residual N - M' 2^L (M' the rounded M) is formed on the digits and rounded the
 *    same way for lo.  |lo| <= ulp(hi) / 2.
 * e) Cost: per term a bit extraction, two shifts and two adds into a small table; no
 *    floating-point operations and no data-dependent branch except for inf/NaN.  Used
 *    only where the compensated fast path of reductions.pyx cannot certify the rounding
 *    (its Design b), and measured in bench/ (docs/accuracy.md gives the ratios).
 */
#ifndef REFRT_SUPERACC_H
#define REFRT_SUPERACC_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#define REFRT_SA_CHUNKS64 70   /* 2046 + 1024 + 63 bits carry room, / 32, rounded up */
#define REFRT_SA_CHUNKS32 12   /* 254 + 63 bits, / 32, rounded up */

/* one carry pass over chunks [0, nc): digits into [0, 2^32), the sign in chunk nc-1 */
static inline void refrt_sa_carry(int64_t *c, int nc) {
    for (int i = 0; i < nc - 1; i++) {
        int64_t q = c[i] >> 32;          /* arithmetic shift: floor(c / 2^32) */
        c[i] -= q * ((int64_t)1 << 32);
        c[i + 1] += q;
    }
}

/* bit b of the magnitude digits (uint32 values held in int64) */
static inline uint64_t refrt_sa_bits64(const int64_t *d, int nc, int pos) {
    /* bits [pos, pos + 64) of N as an integer, pos >= 0 */
    uint64_t r = 0;
    int i = pos >> 5, s = pos & 31;
    for (int t = 0; t < 3; t++) {
        int j = i + t;
        uint64_t v = (j < nc) ? (uint64_t)d[j] : 0;
        int shift = 32 * t - s;          /* where digit j's bit 0 lands in r */
        if (shift >= 64) break;
        if (shift >= 0) r |= v << shift;
        else r |= v >> (-shift);
    }
    return r;
}

static inline int refrt_sa_any_below(const int64_t *d, int pos) {
    /* any bit of N below position pos (pos >= 0) */
    int i = pos >> 5, s = pos & 31;
    for (int j = 0; j < i; j++)
        if (d[j]) return 1;
    return s ? ((uint64_t)d[i] & ((((uint64_t)1) << s) - 1)) != 0 : 0;
}

static inline int refrt_sa_top_bit(const int64_t *d, int nc) {
    for (int i = nc - 1; i >= 0; i--)
        if (d[i]) return 32 * i + 63 - __builtin_clzll((uint64_t)d[i]);
    return -1;
}

/* negate the digits (N -> -N) as a two's complement over nc digits, then carry */
static inline void refrt_sa_negate(int64_t *d, int nc) {
    for (int i = 0; i < nc; i++) d[i] = -d[i];
    refrt_sa_carry(d, nc);
}

/* Round the non-negative digits N (normalised, every digit in [0, 2^32)) to p bits with
 * the last kept bit at >= minpos; returns M' and sets *L; on return d holds the
 * residual N - M' 2^L (normalised, its sign in the top chunk). */
static inline uint64_t refrt_sa_round(int64_t *d, int nc, int p, int minpos, int *L) {
    int H = refrt_sa_top_bit(d, nc);
    int l = H - p + 1;
    uint64_t M, rb = 0, st = 0;
    if (l < minpos) l = minpos;
    if (H < 0) { *L = l; return 0; }
    M = refrt_sa_bits64(d, nc, l) & ((((uint64_t)1) << p) - 1);   /* H - l < p */
    if (l > 0) {
        rb = (refrt_sa_bits64(d, nc, l - 1) & 1);
        st = refrt_sa_any_below(d, l - 1);
    }
    /* residual: clear the bits >= l, then subtract 2^l if rounding up */
    {
        int i = l >> 5, s = l & 31;
        for (int j = i + 1; j < nc; j++) d[j] = 0;
        if (i < nc) d[i] = (int64_t)((uint64_t)d[i] & ((((uint64_t)1) << s) - 1));
        if (rb && (st || (M & 1))) {
            M += 1;
            if (i < nc) d[i] -= ((int64_t)1) << s;
            refrt_sa_carry(d, nc);
        }
    }
    *L = l;
    return M;
}

#define REFRT_SA_DEFINE(SUF, FT, UT, NC, P, BIAS_M1, EXPBITS, MANTBITS, CARRY_EVERY, LDEXP) \
static inline FT refrt_sa_value_##SUF(int64_t *d, int k, int *negative) {                  \
    int L;                                                                                  \
    uint64_t M;                                                                             \
    FT v;                                                                                   \
    *negative = d[NC - 1] < 0;                                                              \
    if (*negative) refrt_sa_negate(d, NC);                                                  \
    M = refrt_sa_round(d, NC, P, k > 0 ? k : 0, &L);                                        \
    v = LDEXP((FT)M, L - (BIAS_M1) - k);                                                    \
    return *negative ? -v : v;                                                              \
}                                                                                           \
static inline void refrt_sa_sum_##SUF(const FT *x, int64_t n, int k, FT *hi, FT *lo) {     \
    int64_t d[NC];                                                                          \
    int64_t j;                                                                              \
    int since = 0, any_nan = 0, pinf = 0, ninf = 0, all_negzero = 1, neg;                   \
    FT nan_value = (FT)NAN, h, r;                                                           \
    memset(d, 0, sizeof d);                                                                 \
    for (j = 0; j < n; j++) {                                                               \
        UT bits;                                                                            \
        memcpy(&bits, x + j, sizeof(FT));                                                   \
        UT e = (bits >> MANTBITS) & ((((UT)1) << EXPBITS) - 1);                             \
        UT m = bits & ((((UT)1) << MANTBITS) - 1);                                          \
        int64_t s = -(int64_t)(bits >> (8 * sizeof(FT) - 1));   /* 0 or -1 */             \
        all_negzero &= (bits == (((UT)1) << (8 * sizeof(FT) - 1)));                         \
        if (e == ((((UT)1) << EXPBITS) - 1)) {                                              \
            if (m) { if (!any_nan) nan_value = x[j]; any_nan = 1; }                         \
            else if (s) ninf = 1; else pinf = 1;                                            \
            continue;                                                                       \
        }                                                                                   \
        if (e) m |= ((UT)1) << MANTBITS; else e = 1;                                        \
        {                                                                                   \
            int pos = (int)e - 1, i = pos >> 5, sh = pos & 31;                              \
            uint64_t mm = (uint64_t)m;                                                      \
            int64_t lowp = (int64_t)((mm << sh) & 0xffffffffu);                             \
            int64_t highp = (int64_t)(mm >> (32 - sh));                                     \
            d[i] += (lowp ^ s) - s;                                                         \
            d[i + 1] += (highp ^ s) - s;                                                    \
        }                                                                                   \
        if (++since == CARRY_EVERY) { refrt_sa_carry(d, NC); since = 0; }                   \
    }                                                                                       \
    if (any_nan || (pinf && ninf)) { *hi = any_nan ? nan_value : (FT)NAN; *lo = 0; return; }\
    if (pinf || ninf) { *hi = pinf ? (FT)INFINITY : -(FT)INFINITY; *lo = 0; return; }       \
    refrt_sa_carry(d, NC);                                                                  \
    h = refrt_sa_value_##SUF(d, k, &neg);                                                   \
    if (h == 0) { *hi = (n > 0 && all_negzero) ? -(FT)0.0 : (FT)0.0; *lo = 0; return; }     \
    /* d now holds the residual magnitude of |S| - |h| (signed); its rounding is lo */      \
    if (neg) refrt_sa_negate(d, NC);     /* back to the residual of S - h */               \
    r = refrt_sa_value_##SUF(d, k, &neg);                                                   \
    *hi = h;                                                                                \
    *lo = r;                                                                                \
}

REFRT_SA_DEFINE(f64, double, uint64_t, REFRT_SA_CHUNKS64, 53, 1074, 11, 52, 1024, ldexp)
REFRT_SA_DEFINE(f32, float, uint32_t, REFRT_SA_CHUNKS32, 24, 149, 8, 23, (1 << 30), ldexpf)


/* ---- exact dot products (the rescue path of linalg.pyx, its Design c) ----------------
 * refrt_dot_exact_{f64,f32}(a, b, n, init) = fl(init + sum_j a_j b_j), correctly
 * rounded, for finite inputs (the caller handles inf/NaN).  Each product is exact as
 * (p + q) 2^(ea + eb): a_j = fa 2^ea, b_j = fb 2^eb (frexp, fa, fb in [0.5, 1)) and
 * fa fb = p + q exactly (TwoProduct by fma: neither can under- or overflow there); a
 * float32 product is exact in double, q = 0.  p and q 2^(ea + eb) go into a wide
 * accumulator with the same digits as above, its bit 0 at 2^-(1074 + WOFF): products of
 * subnormals (2^-2148) up to n products of the largest (2^2048) fit, with 64 bits of
 * carry room.  One carry pass every 512 products (two adds each, below 2^52 per chunk).
 * Rounding as in (c), to 53 bits (float64) or 24 (float32, whose smallest subnormal
 * 2^-149 is bit 925 + WOFF). */
#define REFRT_SA_WOFF 1240
#define REFRT_SA_WCHUNKS 138   /* (1240 + 1022 + 2048 + 64) / 32, rounded up */

static inline void refrt_sa_wide_add(int64_t *d, double x, int e) {
    uint64_t bits, m, E;
    int64_t s;
    memcpy(&bits, &x, sizeof bits);
    E = (bits >> 52) & 0x7ff;
    m = bits & ((((uint64_t)1) << 52) - 1);
    if (E == 0 && m == 0) return;
    s = -(int64_t)(bits >> 63);
    if (E) m |= ((uint64_t)1) << 52; else E = 1;
    {
        int pos = (int)E - 1 + e + REFRT_SA_WOFF, i = pos >> 5, sh = pos & 31;
        int64_t lowp = (int64_t)((m << sh) & 0xffffffffu);
        int64_t highp = (int64_t)(m >> (32 - sh));
        d[i] += (lowp ^ s) - s;
        d[i + 1] += (highp ^ s) - s;
    }
}

/* the rounded value of the wide accumulator to p bits, smallest kept bit minpos, as a
 * double M 2^(L - 1074 - WOFF) (exact: M has at most p bits, the exponent is in range
 * or overflows to inf) */
static inline double refrt_sa_wide_value(int64_t *d, int p, int minpos, int *is_zero) {
    int L, neg;
    uint64_t M;
    double v;
    refrt_sa_carry(d, REFRT_SA_WCHUNKS);
    neg = d[REFRT_SA_WCHUNKS - 1] < 0;
    if (neg) refrt_sa_negate(d, REFRT_SA_WCHUNKS);
    /* an exact zero (IEEE then takes the sign from the terms, the caller's business),
     * not a nonzero sum that rounds to zero: that one keeps the sign of the sum */
    *is_zero = refrt_sa_top_bit(d, REFRT_SA_WCHUNKS) < 0;
    M = refrt_sa_round(d, REFRT_SA_WCHUNKS, p, minpos, &L);
    v = ldexp((double)M, L - 1074 - REFRT_SA_WOFF);
    return neg ? -v : v;
}

static inline double refrt_dot_exact_f64(const double *a, const double *b, int64_t n,
                                         double init, int *is_zero) {
    int64_t d[REFRT_SA_WCHUNKS];
    int64_t j;
    int since = 0, ea, eb;
    memset(d, 0, sizeof d);
    refrt_sa_wide_add(d, init, 0);
    for (j = 0; j < n; j++) {
        double fa, fb, pp, qq;
        if (a[j] == 0 || b[j] == 0) continue;
        fa = frexp(a[j], &ea);
        fb = frexp(b[j], &eb);
        pp = fa * fb;
        qq = fma(fa, fb, -pp);
        refrt_sa_wide_add(d, pp, ea + eb);
        refrt_sa_wide_add(d, qq, ea + eb);
        if (++since == 512) { refrt_sa_carry(d, REFRT_SA_WCHUNKS); since = 0; }
    }
    /* ldexp below rounds nothing: M 2^(L - 1074 - WOFF) is a double (L >= WOFF) */
    return refrt_sa_wide_value(d, 53, REFRT_SA_WOFF, is_zero);
}

static inline float refrt_dot_exact_f32(const float *a, const float *b, int64_t n,
                                        float init, int *is_zero) {
    int64_t d[REFRT_SA_WCHUNKS];
    int64_t j;
    int since = 0;
    memset(d, 0, sizeof d);
    refrt_sa_wide_add(d, (double)init, 0);
    for (j = 0; j < n; j++) {
        /* a float32 product is exact in double (48 bits, exponents within range) */
        refrt_sa_wide_add(d, (double)a[j] * (double)b[j], 0);
        if (++since == 1024) { refrt_sa_carry(d, REFRT_SA_WCHUNKS); since = 0; }
    }
    /* M has at most 24 bits and M 2^(L - 1074 - WOFF) is a float32 (L >= 925 + WOFF) or
     * beyond its range, where the conversion gives inf as IEEE rounding does */
    return (float)refrt_sa_wide_value(d, 24, 925 + REFRT_SA_WOFF, is_zero);
}

#endif
