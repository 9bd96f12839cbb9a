/* Row passes of layer_norm (refrt/_kernels/norm.pyx, Design d, h), in C so that they can
 * be cloned per ISA level.
 *
 * Design:
 * a) Dispatch.  Each pass is compiled three times (target_clones: x86-64-v4 = AVX-512,
 *    x86-64-v3 = AVX2 + FMA, default = the build's baseline) and an ifunc picks one at
 *    load time, as vecmath.h does for the elementwise loops.  The loops are written on
 *    16 explicit lanes (element j to lane j mod 16, the D % 16 tail to the first lanes,
 *    lanes folded in lane order), every operation is one correctly rounded IEEE
 *    operation in a fixed order, fma() is explicit and -ffp-contract=off forbids any
 *    other fusion: a clone may use wider registers but computes the same operations, so
 *    all clones return bitwise identical results (tests/test_norm_rows_clones.py builds
 *    these passes for x86-64, x86-64-v3 and x86-64-v4 and compares the bits on five
 *    families: identical).
 * b) Branch-free loop bodies: selects are integer bit masks or integer max, so gcc
 *    if-converts and vectorises them under -ftrapping-math's rules.
 * c) Statistics (refrt_ln_stats_*), three passes over a row that sits in L1:
 *    1. max |x| as the integer max of the magnitude bits (exact and associative; a bit
 *       pattern >= inf's means some entry is inf or NaN: the row takes the caller's
 *       IEEE path).  A row with max|x| > 2^(emax/2 - 4) is scaled by 2^-k (exact),
 *       eps by 2^-2k, so the squares cannot overflow.  Computed in the loop of 2 (at
 *       scale 1); only a row that needs the scale runs that loop again.
 *    2. shifted mean: d + de = x_j sc - x_0 exactly (TwoSum), summed by Sum2 lanes
 *       (Ogita-Rump-Oishi), de added to the lane's error; mean = x_0 + S/D as the
 *       double word mh + ml.  A constant row has mean exactly x_0 and deviations
 *       exactly 0 (normalises to beta).
 *    3. deviations: d + e = x_j sc - mh exactly (TwoSum), f = e - ml (one rounding,
 *       |f| <= ulp(mh) ~ u |mean|), (d + f)^2 = p + q + (2d + f) f with p + q = d^2
 *       exactly (fma); p summed by Sum2 lanes (p >= 0: no cancellation), the small
 *       terms t = fma(2d + f, f, q) summed plainly (they are O(u) of the sum).  var =
 *       (s + c) / D as a double word, + eps by TwoSum, 1/sqrt as a double word rh + rl
 *       (one Newton correction each for sqrt and the reciprocal, fma residuals).
 *    Former version (two TwoSums per deviation, Sum2 on p and on the cross terms): the
 *    same accuracy on the adversarial families at ~1.4x the flops of pass 3.
 * d) Output (refrt_ln_out_*): x_hat = (d + f)(rh + rl) as qh + ql (qh = d rh, ql = its
 *    fma residual + d rl + f fl(rh + rl)).  Neither low part is O(u) of its high part
 *    under a large mean: |f| ~ u |mean| can be ~2^-8 |d| (float32 rows at 1e5 with
 *    spread 0.4), and rl then carries the O(f) terms of the variance (~3e-5 rh), so f rl
 *    is kept (dropping it cost 88 ulp on the large_mean family); the rounding of rh + rl
 *    costs u |f r|.  Then
 *      y = fma(qh, gamma, beta) + ql gamma,
 *    the bn_fast scheme of norm.pyx: qh gamma + beta rounds once (a cancellation
 *    between x_hat gamma and beta costs nothing), the correction ql gamma (~u |qh gamma|)
 *    rounds at the final addition.  Error <= 1/2 ulp(y1) + 1/2 ulp(y) + O(u^2 |x_hat
 *    gamma|), ~1 ulp of y unless y is itself below ~u |x_hat gamma|.  The former
 *    double-word product + TwoSum with beta (mul_add_dw) gave ~0.5 ulp at ~1.6x the
 *    flops of this pass.  The pass also sums y * 0 in 16 lanes (NaN iff some y is +-inf
 *    or NaN) and returns whether the caller must walk the row again (the scaled path).
 */
#ifndef REFRT_NORM_ROWS_H
#define REFRT_NORM_ROWS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && !defined(REFRT_NO_CLONES) && \
    defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define REFRT_ROW_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define REFRT_ROW_CLONES
#endif

/* (h, l) <- fl(h + l), the exact remainder (TwoSum, no magnitude condition). */
#define REFRT_TWO_SUM(h, l) do {                                                         \
        __typeof__(h) s_ = (h) + (l), b_ = s_ - (h);                                     \
        (l) = ((h) - (s_ - b_)) + ((l) - b_);                                            \
        (h) = s_;                                                                        \
    } while (0)

/* T float type, U its bit type, SFX name suffix, FMA/SQRT/FREXP/LDEXP the libm routines
 * of T, ABSMASK/INFBITS the magnitude mask and +inf's bits, HALFEMAX emax/2 - 4. */
#define REFRT_LN_ROWS(T, U, SFX, FMA, SQRT, FREXP, LDEXP, ABSMASK, INFBITS, HALFEMAX)    \
REFRT_ROW_CLONES                                                                         \
static int refrt_ln_stats_##SFX(const T *x, ptrdiff_t D, T eps, int *kout, T *st)       \
{                                                                                        \
    U M[16];                                                                             \
    T S[16], E[16], R[16];                                                               \
    ptrdiff_t full = D - D % 16, j;                                                      \
    int l, k = 0, pass;                                                                  \
    T sc = 1, x0 = x[0];                                                                 \
    /* pass 1 = 2: shifted mean (c 2) at scale 1 and max|x| (c 1) together; only a row   \
       that needs the scale 2^-k (or holds inf/NaN) repeats the sum */                   \
    for (pass = 0; pass < 2; pass++) {                                                   \
        for (l = 0; l < 16; l++) { S[l] = 0; E[l] = 0; M[l] = 0; }                       \
        for (j = 0; j < full; j += 16)                                                   \
            for (l = 0; l < 16; l++) {                                                   \
                U u; memcpy(&u, x + j + l, sizeof u);                                    \
                u &= ABSMASK;                                                            \
                M[l] = u > M[l] ? u : M[l];                                              \
                T v = x[j + l] * sc;                                                     \
                T d = v - x0, bb = d - v;                                                \
                T de = (v - (d - bb)) + (-x0 - bb);                                      \
                T t = S[l] + d, b2 = t - S[l];                                           \
                E[l] = (E[l] + ((S[l] - (t - b2)) + (d - b2))) + de;                     \
                S[l] = t;                                                                \
            }                                                                            \
        for (j = full; j < D; j++) {                                                     \
            l = (int)(j - full);                                                         \
            U u; memcpy(&u, x + j, sizeof u);                                            \
            u &= ABSMASK;                                                                \
            M[l] = u > M[l] ? u : M[l];                                                  \
            T v = x[j] * sc;                                                             \
            T d = v - x0, bb = d - v;                                                    \
            T de = (v - (d - bb)) + (-x0 - bb);                                          \
            T t = S[l] + d, b2 = t - S[l];                                               \
            E[l] = (E[l] + ((S[l] - (t - b2)) + (d - b2))) + de;                         \
            S[l] = t;                                                                    \
        }                                                                                \
        if (pass == 1) break;                                                            \
        U um = M[0];                                                                     \
        for (l = 1; l < 16; l++) um = M[l] > um ? M[l] : um;                             \
        if (um >= INFBITS) return 0;                                                     \
        T amax; memcpy(&amax, &um, sizeof amax);                                         \
        if (!(amax > LDEXP((T)1, HALFEMAX))) break;                                      \
        FREXP(amax, &k);                                                                 \
        sc = LDEXP((T)1, -k);                                                            \
        eps = LDEXP(eps, -2 * k);                                                        \
        x0 = x[0] * sc;                                                                  \
    }                                                                                    \
    *kout = k;                                                                           \
    T s = 0, c = 0;                                                                      \
    for (l = 0; l < 16; l++) {                                                           \
        T t = s + S[l], b2 = t - s;                                                      \
        c = (c + ((s - (t - b2)) + (S[l] - b2))) + E[l];                                 \
        s = t;                                                                           \
    }                                                                                    \
    T fd = (T)D;                                                                         \
    T q = s / fd;                                                                        \
    T ql = (FMA(-q, fd, s) + c) / fd;                                                    \
    T mh = x0 + q, b0 = mh - x0;                                                         \
    T ml = ((x0 - (mh - b0)) + (q - b0)) + ql;                                           \
    REFRT_TWO_SUM(mh, ml);                 /* normalised: |ml| <= ulp(mh) / 2 */         \
    /* pass 3: squared deviations (c 3) */                                               \
    for (l = 0; l < 16; l++) { S[l] = 0; E[l] = 0; R[l] = 0; }                           \
    for (j = 0; j < full; j += 16)                                                       \
        for (l = 0; l < 16; l++) {                                                       \
            T v = x[j + l] * sc;                                                         \
            T d = v - mh, bb = d - v;                                                    \
            T e = (v - (d - bb)) + (-mh - bb);                                           \
            T f = e - ml;                                                                \
            T p = d * d;                                                                 \
            T qq = FMA(d, d, -p);                                                        \
            T t = S[l] + p, b2 = t - S[l];                                               \
            E[l] = E[l] + ((S[l] - (t - b2)) + (p - b2));                                \
            S[l] = t;                                                                    \
            R[l] = R[l] + FMA(2 * d + f, f, qq);                                         \
        }                                                                                \
    for (j = full; j < D; j++) {                                                         \
        l = (int)(j - full);                                                             \
        T v = x[j] * sc;                                                                 \
        T d = v - mh, bb = d - v;                                                        \
        T e = (v - (d - bb)) + (-mh - bb);                                               \
        T f = e - ml;                                                                    \
        T p = d * d;                                                                     \
        T qq = FMA(d, d, -p);                                                            \
        T t = S[l] + p, b2 = t - S[l];                                                   \
        E[l] = E[l] + ((S[l] - (t - b2)) + (p - b2));                                    \
        S[l] = t;                                                                        \
        R[l] = R[l] + FMA(2 * d + f, f, qq);                                             \
    }                                                                                    \
    s = 0; c = 0;                                                                        \
    for (l = 0; l < 16; l++) {                                                           \
        T t = s + S[l], b2 = t - s;                                                      \
        c = (c + ((s - (t - b2)) + (S[l] - b2))) + (E[l] + R[l]);                        \
        s = t;                                                                           \
    }                                                                                    \
    /* normalise every double word before it is divided, rooted or inverted: under a   \
       large mean c (the O(f) terms) is not O(u) of s, and the Newton corrections below \
       are first order only (float64 rows at 1e12 lost 1e-8 relatively) */             \
    REFRT_TWO_SUM(s, c);                                                                 \
    T vh = s / fd;                                                                       \
    T vl = (FMA(-vh, fd, s) + c) / fd;                                                   \
    T th = vh + eps, b3 = th - vh;                                                       \
    T tl = ((vh - (th - b3)) + (eps - b3)) + vl;                                         \
    REFRT_TWO_SUM(th, tl);                                                               \
    st[0] = mh; st[1] = ml;                                                              \
    if (!(th > 0)) {                                                                     \
        /* var = eps = 0: a zero deviation gives 0/0 = NaN, as the real formula is       \
           undefined there */                                                            \
        st[2] = 1 / th; st[3] = 0;                                                       \
        return 1;                                                                        \
    }                                                                                    \
    T sh = SQRT(th);                                                                     \
    T sl = (FMA(-sh, sh, th) + tl) / (2 * sh);                                           \
    T rh = 1 / sh;                                                                       \
    T rl = (FMA(-rh, sh, 1) - rh * sl) * rh;                                             \
    REFRT_TWO_SUM(rh, rl);                                                               \
    st[2] = rh;                                                                          \
    st[3] = rl;                                                                          \
    return 1;                                                                            \
}                                                                                        \
                                                                                         \
REFRT_ROW_CLONES                                                                         \
static int refrt_ln_out_##SFX(const T *x, ptrdiff_t D, T sc, const T *st, const T *g,   \
                              const T *b, T *y)                                          \
{                                                                                        \
    T K[16];                                                                             \
    T mh = st[0], ml = st[1], rh = st[2], rl = st[3], rr = rh + rl, chk = 0;             \
    ptrdiff_t full = D - D % 16, j;                                                      \
    int l;                                                                               \
    for (l = 0; l < 16; l++) K[l] = 0;                                                   \
    for (j = 0; j < full; j += 16)                                                       \
        for (l = 0; l < 16; l++) {                                                       \
            T v = x[j + l] * sc;                                                         \
            T d = v - mh, bb = d - v;                                                    \
            T e = (v - (d - bb)) + (-mh - bb);                                           \
            T f = e - ml;                                                                \
            T qh = d * rh;                                                               \
            T ql = FMA(d, rh, -qh) + (d * rl + f * rr);                                  \
            T yy = FMA(qh, g[j + l], b[j + l]) + ql * g[j + l];                          \
            y[j + l] = yy;                                                               \
            K[l] = K[l] + yy * 0;                                                        \
        }                                                                                \
    for (j = full; j < D; j++) {                                                         \
        T v = x[j] * sc;                                                                 \
        T d = v - mh, bb = d - v;                                                        \
        T e = (v - (d - bb)) + (-mh - bb);                                               \
        T f = e - ml;                                                                    \
        T qh = d * rh;                                                                   \
        T ql = FMA(d, rh, -qh) + (d * rl + f * rr);                                      \
        T yy = FMA(qh, g[j], b[j]) + ql * g[j];                                          \
        y[j] = yy;                                                                       \
        chk = chk + yy * 0;                                                              \
    }                                                                                    \
    for (l = 0; l < 16; l++) chk = chk + K[l];                                           \
    return chk != chk;                                                                   \
}                                                                                        \
                                                                                         \
/* x_hat of refrt_ln_out (same formula, the VJP's normalised input). */                  \
REFRT_ROW_CLONES                                                                         \
static void refrt_ln_xhat_##SFX(const T *x, ptrdiff_t D, T sc, const T *st, T *xh)      \
{                                                                                        \
    T mh = st[0], ml = st[1], rh = st[2], rl = st[3], rr = rh + rl;                      \
    for (ptrdiff_t j = 0; j < D; j++) {                                                  \
        T v = x[j] * sc;                                                                 \
        T d = v - mh, bb = d - v;                                                        \
        T e = (v - (d - bb)) + (-mh - bb);                                               \
        T f = e - ml;                                                                    \
        T qh = d * rh;                                                                   \
        xh[j] = qh + (FMA(d, rh, -qh) + (d * rl + f * rr));                              \
    }                                                                                    \
}

REFRT_LN_ROWS(double, uint64_t, f64, fma, sqrt, frexp, ldexp, 0x7fffffffffffffffu,
              0x7ff0000000000000u, 508)
REFRT_LN_ROWS(float, uint32_t, f32, fmaf, sqrtf, frexpf, ldexpf, 0x7fffffffu,
              0x7f800000u, 60)
#endif
