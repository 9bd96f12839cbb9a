/* Register-blocked, vectorised Dot2 panels for refrt/_kernels/linalg.pyx.
 *
 * Contract: refrt_dot2_panel_{f32,f64}(a, b, mr, nr, n, bias, out, ldo) sets
 *   out[i*ldo + k] = dot(a[i*n : i*n+n], b[k*n : k*n+n]) + bias[k]   (bias may be NULL)
 * for 0 <= i < mr, 0 <= k < nr, every dot a compensated Dot2 rounded once at the end.
 * Overflow/underflow of the products is NOT handled here: linalg.pyx checks each result
 * and recomputes the rare bad ones with scaled rows (its Design c).
 *
 * Design:
 * a) Lanes.  Each dot product runs L independent Dot2 accumulators (L = 8 float64,
 *    16 float32: one 512-bit vector).  Lane l owns the terms j = l, l+L, l+2L, ... of
 *    the full chunks; the n mod L tail terms j = nfull + t go to lane t, the missing
 *    lanes padded with (-0) * (+0) = -0, the exact additive identity.  Per lane, per term:
 *      p + e = a_j b_j exactly       (TwoProduct: p = a_j*b_j, e = fma(a_j, b_j, -p)),
 *      s' + r = s + p exactly        (TwoSum, 6 flops, no branch: |s| < |p| is allowed),
 *      c = c + (r + e)               (the error terms, rounded, summed in a 2nd accumulator).
 *    Lanes start at s = -0 (so an all -0 dot keeps its sign) and c = 0.
 * b) Exact final step, per output: the lanes are folded pairwise (lane l with l + w,
 *    w = L/2, ..., 1): s_l + s_{l+w} = s_l' + r by TwoSum, c_l' = (c_l + c_{l+w}) + r;
 *    then init (the bias) + s_0 = sigma + r by TwoSum, err = c_0 + r, and the result is
 *    sigma + err (sigma alone when err == 0, keeping signed zeros).  The tree has
 *    log2(L) levels of independent operations (an L-long TwoSum chain cost as much as
 *    the whole 2x4 tile at n = 256).
 *    Every rounding except those of the error sum and the last addition is error-free, so
 *    this is Sum2 of the exact terms {init, p_j, e_j}: |error| <= u|dot| + gamma_N^2
 *    sum|a_j b_j| with N = ceil(n/L) + log2(L) + 2 (Ogita-Rump-Oishi 2005, Prop. 4.5/Thm 4.7
 *    with a longer but still fixed error-sum order): "as if in twice the working
 *    precision, rounded once", for n up to ~2^(p/2) terms per lane.
 * c) Determinism: the order in (a)/(b) depends only on n and L, never on the CPU, the
 *    tile shape or the thread count: the AVX-512 panel (2x4 tiles: 2 rows of A x 4 rows
 *    of B, 16 accumulator registers, each loaded vector used 4 or 2 times) and the
 *    generic panel (1x1 tiles; on AVX2 one L-lane vector is two registers) perform the
 *    same IEEE operations per lane and return identical bits.  -ffp-contract=off keeps
 *    GCC from fusing anything but the written fma; fma() is one instruction on FMA CPUs
 *    (the default AVX2+FMA build), a correctly rounded libm call otherwise.
 * d) Written with GCC vector extensions (+ - * are lane-wise IEEE operations); the fma
 *    lane loop vectorises to vfmsub.  Loads are unaligned memcpy's.
 */
#ifndef REFRT_DOT2_H
#define REFRT_DOT2_H
#include <math.h>
#include <stddef.h>
#include <string.h>

/* One Dot2 term per lane into (S, C): the identities of Design a. */
/* ONE is a vector of 1s hidden from the optimiser: fma(x, -ONE, y) is the correctly
 * rounded y - x, bit for bit the same as the subtraction, but it runs on the FMA pipes.
 * Zen 4 has two FMA/MUL and two ADD pipes; TwoProduct + TwoSum + accumulation is 2
 * multiply-type and 8 add-type operations per term, so moving 3 of the adds (those off
 * the loop-carried chains) to the FMA pipes takes the tile from 8 to 5 add-pipe cycles
 * per term.  On CPUs where adds and FMAs share ports this costs nothing. */
#define REFRT_DOT2_STEP(V, L, FMA, ONE, S, C, X, Y) do {                         \
        V p_ = (X) * (Y), e_, t_, bb_, u_, w_;                                   \
        t_ = (S) + p_;                                                           \
        bb_ = t_ - (S);                                                          \
        for (int l_ = 0; l_ < (L); l_++) {                                       \
            e_[l_] = FMA((X)[l_], (Y)[l_], -p_[l_]);      /* a b - p, exact */  \
            u_[l_] = FMA(bb_[l_], -(ONE)[l_], t_[l_]);    /* t - bb */          \
            w_[l_] = FMA(bb_[l_], -(ONE)[l_], p_[l_]);    /* p - bb */          \
        }                                                                        \
        u_ = (S) - u_;                                                           \
        for (int l_ = 0; l_ < (L); l_++)                                         \
            w_[l_] = FMA(u_[l_], (ONE)[l_], w_[l_]);      /* r = u + w */       \
        (C) = (C) + (w_ + e_);                                                   \
        (S) = t_;                                                                \
    } while (0)

#define REFRT_DOT2_DEFINE(T, L, FMA, SFX)                                                \
typedef T refrt_v##SFX __attribute__((vector_size((L) * sizeof(T))));                   \
                                                                                         \
/* Design b: the exact lane combination, a pairwise tree (lane l with lane l + w for     \
 * w = L/2, L/4, ..., 1: log2(L) levels of independent TwoSums, not an L-long chain). */ \
static inline T refrt_dot2_combine_##SFX(refrt_v##SFX sv, refrt_v##SFX cv, T init)       \
{                                                                                        \
    T s[L], c[L], t, bb, sig, err;                                                       \
    memcpy(s, &sv, sizeof s);                                                            \
    memcpy(c, &cv, sizeof c);                                                            \
    for (int w = (L) / 2; w >= 1; w /= 2)                                                \
        for (int l = 0; l < w; l++) {                                                    \
            t = s[l] + s[l + w];                                                         \
            bb = t - s[l];                                                               \
            c[l] = (c[l] + c[l + w]) + ((s[l] - (t - bb)) + (s[l + w] - bb));            \
            s[l] = t;                                                                    \
        }                                                                                \
    sig = init + s[0];                                                                   \
    bb = sig - init;                                                                     \
    err = c[0] + ((init - (sig - bb)) + (s[0] - bb));                                    \
    return err != 0 ? sig + err : sig;                                                   \
}                                                                                        \
                                                                                         \
/* The tail of Design a: terms nfull..n-1 into lanes 0.., padded with (-0)*(+0). */      \
static inline void refrt_dot2_tail_##SFX(const T *x, ptrdiff_t nt, refrt_v##SFX *v,     \
                                         T pad)                                          \
{                                                                                        \
    T buf[L];                                                                            \
    for (int l = 0; l < (L); l++) buf[l] = l < nt ? x[l] : pad;                          \
    memcpy(v, buf, sizeof buf);                                                          \
}                                                                                        \
                                                                                         \
/* 1x1 tile, any ISA (generic panel and the edges of the AVX-512 one). */                \
static inline __attribute__((always_inline)) T                                           \
refrt_dot2_1x1_##SFX(const T *a, const T *b, ptrdiff_t n, T init)                        \
{                                                                                        \
    typedef refrt_v##SFX V;                                                              \
    V s = {0}, c = {0}, x, y, one = s + 1;                                               \
    __asm__("" : "+m"(one));  /* opaque: keep fma(x, 1, y) an fma */                     \
    ptrdiff_t j = 0, nfull = n - n % (L);                                                \
    s = -s;   /* -0 in every lane */                                                     \
    for (; j < nfull; j += (L)) {                                                        \
        memcpy(&x, a + j, sizeof x);                                                     \
        memcpy(&y, b + j, sizeof y);                                                     \
        REFRT_DOT2_STEP(V, L, FMA, one, s, c, x, y); \
    }                                                                                    \
    if (j < n) {                                                                         \
        refrt_dot2_tail_##SFX(a + j, n - j, &x, (T)-0.0);                                \
        refrt_dot2_tail_##SFX(b + j, n - j, &y, (T)0.0);                                 \
        REFRT_DOT2_STEP(V, L, FMA, one, s, c, x, y); \
    }                                                                                    \
    return refrt_dot2_combine_##SFX(s, c, init);                                         \
}                                                                                        \
                                                                                         \
static void refrt_dot2_generic_##SFX(const T *a, const T *b, ptrdiff_t mr, ptrdiff_t nr, \
                                     ptrdiff_t n, const T *bias, T *out, ptrdiff_t ldo)  \
{                                                                                        \
    for (ptrdiff_t i = 0; i < mr; i++)                                                   \
        for (ptrdiff_t k = 0; k < nr; k++)                                               \
            out[i * ldo + k] = refrt_dot2_1x1_##SFX(a + i * n, b + k * n, n,             \
                                                    bias ? bias[k] : (T)0);              \
}                                                                                        \
                                                                                         \
/* 2x4 tile: rows a0, a1 of A against rows b0..b3 of B; 8 outputs, 16 registers. */     \
__attribute__((target("arch=x86-64-v4"))) static inline __attribute__((always_inline))   \
void refrt_dot2_2x4_##SFX(const T *a0, const T *b0, ptrdiff_t n, const T *init,          \
                          T *out, ptrdiff_t ldo)                                         \
{                                                                                        \
    typedef refrt_v##SFX V;                                                              \
    const T *a1 = a0 + n, *b1 = b0 + n, *b2 = b1 + n, *b3 = b2 + n;                      \
    V z = {0}, s00, s01, s02, s03, s10, s11, s12, s13;                                   \
    V c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;            \
    V x0, x1, y0, y1, y2, y3, one = z + 1;                                               \
    __asm__("" : "+m"(one));                                                             \
    ptrdiff_t j = 0, nfull = n - n % (L);                                                \
    z = -z;   /* -0 in every lane */                                                     \
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z;                                   \
    for (;; j += (L)) {                                                                  \
        if (j < nfull) {                                                                 \
            memcpy(&x0, a0 + j, sizeof x0); memcpy(&x1, a1 + j, sizeof x1);              \
            memcpy(&y0, b0 + j, sizeof y0); memcpy(&y1, b1 + j, sizeof y1);              \
            memcpy(&y2, b2 + j, sizeof y2); memcpy(&y3, b3 + j, sizeof y3);              \
        } else if (j < n) {                                                              \
            refrt_dot2_tail_##SFX(a0 + j, n - j, &x0, (T)-0.0);                          \
            refrt_dot2_tail_##SFX(a1 + j, n - j, &x1, (T)-0.0);                          \
            refrt_dot2_tail_##SFX(b0 + j, n - j, &y0, (T)0.0);                           \
            refrt_dot2_tail_##SFX(b1 + j, n - j, &y1, (T)0.0);                           \
            refrt_dot2_tail_##SFX(b2 + j, n - j, &y2, (T)0.0);                           \
            refrt_dot2_tail_##SFX(b3 + j, n - j, &y3, (T)0.0);                           \
        } else {                                                                         \
            break;                                                                       \
        }                                                                                \
        REFRT_DOT2_STEP(V, L, FMA, one, s00, c00, x0, y0); \
        REFRT_DOT2_STEP(V, L, FMA, one, s01, c01, x0, y1); \
        REFRT_DOT2_STEP(V, L, FMA, one, s02, c02, x0, y2); \
        REFRT_DOT2_STEP(V, L, FMA, one, s03, c03, x0, y3); \
        REFRT_DOT2_STEP(V, L, FMA, one, s10, c10, x1, y0); \
        REFRT_DOT2_STEP(V, L, FMA, one, s11, c11, x1, y1); \
        REFRT_DOT2_STEP(V, L, FMA, one, s12, c12, x1, y2); \
        REFRT_DOT2_STEP(V, L, FMA, one, s13, c13, x1, y3); \
    }                                                                                    \
    T i0 = init ? init[0] : 0, i1 = init ? init[1] : 0;                                  \
    T i2 = init ? init[2] : 0, i3 = init ? init[3] : 0;                                  \
    out[0] = refrt_dot2_combine_##SFX(s00, c00, i0);                                     \
    out[1] = refrt_dot2_combine_##SFX(s01, c01, i1);                                     \
    out[2] = refrt_dot2_combine_##SFX(s02, c02, i2);                                     \
    out[3] = refrt_dot2_combine_##SFX(s03, c03, i3);                                     \
    out[ldo + 0] = refrt_dot2_combine_##SFX(s10, c10, i0);                               \
    out[ldo + 1] = refrt_dot2_combine_##SFX(s11, c11, i1);                               \
    out[ldo + 2] = refrt_dot2_combine_##SFX(s12, c12, i2);                               \
    out[ldo + 3] = refrt_dot2_combine_##SFX(s13, c13, i3);                               \
}                                                                                        \
                                                                                         \
__attribute__((target("arch=x86-64-v4")))                                                \
static void refrt_dot2_v4_##SFX(const T *a, const T *b, ptrdiff_t mr, ptrdiff_t nr,      \
                                ptrdiff_t n, const T *bias, T *out, ptrdiff_t ldo)       \
{                                                                                        \
    ptrdiff_t i = 0, k;                                                                  \
    for (; i + 2 <= mr; i += 2) {                                                        \
        for (k = 0; k + 4 <= nr; k += 4)                                                 \
            refrt_dot2_2x4_##SFX(a + i * n, b + k * n, n, bias ? bias + k : NULL,        \
                                 out + i * ldo + k, ldo);                                \
        for (; k < nr; k++) {                                                            \
            T init = bias ? bias[k] : (T)0;                                              \
            out[i * ldo + k] = refrt_dot2_1x1_##SFX(a + i * n, b + k * n, n, init);      \
            out[(i + 1) * ldo + k] = refrt_dot2_1x1_##SFX(a + (i + 1) * n, b + k * n,    \
                                                          n, init);                      \
        }                                                                                \
    }                                                                                    \
    for (; i < mr; i++)                                                                  \
        for (k = 0; k < nr; k++)                                                         \
            out[i * ldo + k] = refrt_dot2_1x1_##SFX(a + i * n, b + k * n, n,             \
                                                    bias ? bias[k] : (T)0);              \
}                                                                                        \
                                                                                         \
static void refrt_dot2_panel_##SFX(const T *a, const T *b, ptrdiff_t mr, ptrdiff_t nr,   \
                                   ptrdiff_t n, const T *bias, T *out, ptrdiff_t ldo)    \
{                                                                                        \
    if (refrt_dot2_isa == 1)                                                             \
        refrt_dot2_v4_##SFX(a, b, mr, nr, n, bias, out, ldo);                            \
    else                                                                                 \
        refrt_dot2_generic_##SFX(a, b, mr, nr, n, bias, out, ldo);                       \
}

/* 1: AVX-512 panel, 0: generic.  Set once at module import (refrt_dot2_init), or forced
 * to 0 by the tests to check that both panels return the same bits. */
static int refrt_dot2_isa = 0;

static void refrt_dot2_init(int allow_v4)
{
    __builtin_cpu_init();
    refrt_dot2_isa = allow_v4 && __builtin_cpu_supports("x86-64-v4");
}

REFRT_DOT2_DEFINE(float, 16, fmaf, f32)
REFRT_DOT2_DEFINE(double, 8, fma, f64)

#endif
