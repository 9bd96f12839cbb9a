# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Convolution and pooling kernels, float32 and float64 (channels-first, 2-d).

Design:
a) conv2d is im2col onto the compensated matmul: ``im2col`` writes, per group, the
   (samples * output positions, C/G * kh * kw) patch matrix with the zero padding as
   explicit zeros (TorchLean's x_pad), and linalg.matmul_nt multiplies it by the weight
   rows with Dot2 (dot2.h, Ogita-Rump-Oishi) and the bias as the start of each dot, so
   every output is "as if in twice the working precision, rounded once", with
   linalg's exact superaccumulator rescue for overflowed, underflowed or tiny dots.
   The weight and bias gradients are the same products on the transposed patches.
b) Transposed convolution (conv_transpose2d's forward, and conv2d's input gradient, which
   is the same map) gathers, per output element, exactly the taps that reach it (the
   input index (o + p - k d) / s is an integer inside the input, TorchLean's
   convTransposeSpec: no 0 * w terms, so an inf weight does not leak NaN into outputs it
   never touches) into two per-thread buffers and runs one scalar Dot2 with the bias as
   its start: p + e = a b (TwoProduct, fma), s' + r = s + p (TwoSum), c += r + e, result
   s + c.  Same accuracy bound as (a): |err| <= u|dot| + gamma_n^2 sum|a_j b_j|.  A
   result that is non-finite (from finite terms) or below 2^(emin + 2p) is recomputed
   exactly by superacc.h's refrt_dot_exact (products split into exact halves into a wide
   superaccumulator), rounded once: an exact overflow is inf, a finite value stays finite.
c) Pools run over per-output windows [hs, he) x [ws, we) given as index arrays, so
   max_pool2d, avg_pool2d, the adaptive pools (TorchLean bins [floor(i in / out),
   ceil((i + 1) in / out))) and the smooth max pool share one loop each.  max: the first
   maximum in row-major order wins (strict >, TorchLean), a NaN beats every number (IEEE
   propagation, as torch); windows are clipped to the input, so padded cells are ignored.
d) avg: the window sum is exact (superacc.h refrt_sa_sum, scaled by 2^-k with 2^k >= the
   divisor d, so a window of +-max values cannot overflow) as hi + lo; with
   dd = d 2^-k in [1/2, 1) exact, q = hi / dd, r = fma(-q, dd, hi) is q's exact remainder
   and y = q + (r + lo) / dd is within ~0.5 ulp + 2^-2p relative (a correctly rounded
   quotient of an exactly known dividend up to the last correction's rounding).  The VJP
   of an average is a sum of g_w / d_w over the windows holding the element; each quotient
   is q_w + r_w / d_w with r_w = fma(-q_w, d_w, g_w) exact, and all 2m terms are summed
   exactly by the superaccumulator, rounded once.
e) smooth max pool (TorchLean smoothMaxPool2dSpec): pivot p = max (beta > 0) or min
   (beta < 0) of the window with padded cells as 0; y = p + log1p(sum_{j != j*} exp(beta
   (x_j - p))) / beta.  Each exponent: x_j - p = d + e exactly (TwoSum), beta (d + e) =
   t + te with t = fl(beta d), te = fma(beta, d, -t) + beta e, and exp(t + te) ~ exp(t)(1
   + te) (the fma in _exp_shift), so the subtraction's rounding is not amplified by exp.
   The terms are <= 1 (beta (x_j - p) <= 0), so nothing overflows.  The VJP is the
   window softmax, exp(beta (x_j - p)) / S per window, summed over windows exactly.
f) max-pool VJP: every output routes g to its first argmax; overlapping windows add into
   one element, accumulated with TwoSum into a value and a compensation buffer (Sum2),
   combined once at the end.
g) conv2d on the Ozaki path (refrt/_kernels/conv_ozaki.py has the scheme and the error
   bounds): ``im2col_kn`` writes the patch matrix transposed, (taps, samples x positions), in float64
   (exact for float32 data), so one BLAS call per group covers a chunk of samples; ``split2_cols`` is the float64 two-level split in one pass;
   ``oz_round_rows`` is ozaki.h's certified rounding per output row with that row's
   (output channel's) bias in the double-double sum; ``oz_refine_cols`` re-certifies
   flagged outputs with Dot2 on gathered patch columns (tiles of _TILE columns, one cache
   line per tap row), as linalg.ozaki_refine(32) does for matmul.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.math cimport isfinite, isnan, fabs
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from ._scalar cimport two_sum, f_fma, f_abs, f_ldexp, f_exp, f_log1p


cdef double _U64 = 1.1102230246251565e-16     # 2^-53


cdef extern from "superacc.h" nogil:
    double refrt_dot_exact_f64(const double *a, const double *b, int64_t n, double init,
                               int *is_zero)
    float refrt_dot_exact_f32(const float *a, const float *b, int64_t n, float init,
                              int *is_zero)
    void refrt_sa_sum_f64(const double *x, int64_t n, int k, double *hi, double *lo)
    void refrt_sa_sum_f32(const float *x, int64_t n, int k, float *hi, float *lo)


# ---- scalar helpers ------------------------------------------------------------------

# Design b: one Dot2 over n gathered terms with init as its start, rescued when needed.
cdef inline floating _dot2(const floating *a, const floating *b, Py_ssize_t n,
                           floating init, floating tiny) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating s = init, c = 0, p, e, r, res
    cdef floating ma = 0, mb = 0
    cdef int zero = 0
    for j in range(n):
        p = a[j] * b[j]
        e = f_fma(a[j], b[j], -p)
        s = two_sum(s, p, &r)
        c = c + (r + e)
    res = s + c if c != 0 else s
    if isfinite(res) and f_abs(res) >= tiny:
        return res
    for j in range(n):
        if f_abs(a[j]) > ma or isnan(a[j]):
            ma = f_abs(a[j])
        if f_abs(b[j]) > mb or isnan(b[j]):
            mb = f_abs(b[j])
    if not (isfinite(ma) and isfinite(mb) and isfinite(init)):
        s = init                                # IEEE: inf/NaN terms decide (plain sum)
        for j in range(n):
            s = s + a[j] * b[j]
        return s
    if ma == 0 or mb == 0:
        return res
    if floating is float:
        s = refrt_dot_exact_f32(a, b, n, init, &zero)
    else:
        s = refrt_dot_exact_f64(a, b, n, init, &zero)
    if zero:
        return res if res == 0 else 0
    return s


cdef inline floating _tiny(floating x) noexcept nogil:
    # 2^(emin + 2p): below it an underflowed product may have lost bits (Design b)
    if floating is float:
        return f_ldexp(<floating>1, -126 + 2 * 24)
    else:
        return f_ldexp(<floating>1, -1022 + 2 * 53)


# Design d: the exact sum of x[0:n], divided by d (an integer >= 1), rounded ~once.
cdef inline floating _exact_mean(const floating *x, Py_ssize_t n, double d) noexcept nogil:
    cdef int k = 0
    cdef double t = 1
    cdef floating hi, lo, q, r, dd
    while t < d:                 # 2^k >= d, so dd = d 2^-k is in (1/2, 1]
        t = t * 2
        k += 1
    dd = <floating>(d / t)       # exact: d < 2^24 is an integer, t a power of two
    if floating is float:
        refrt_sa_sum_f32(x, n, k, &hi, &lo)
    else:
        refrt_sa_sum_f64(x, n, k, &hi, &lo)
    q = hi / dd
    if not isfinite(q) or not isfinite(hi) or q == 0:
        return q
    r = f_fma(-q, dd, hi)
    return q + (r + lo) / dd


cdef inline floating _exact_sum(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef floating hi, lo
    if floating is float:
        refrt_sa_sum_f32(x, n, 0, &hi, &lo)
    else:
        refrt_sa_sum_f64(x, n, 0, &hi, &lo)
    return hi


# Design e: exp(beta (x - p)) with x - p = d + e exactly and beta (d + e) = t + te.
cdef inline floating _exp_shift(floating x, floating p, floating beta) noexcept nogil:
    cdef floating e, d, t, te, et
    d = two_sum(x, -p, &e)
    t = beta * d
    if not isfinite(t) or not isfinite(e):
        return f_exp(t)
    te = f_fma(beta, d, -t) + beta * e
    et = f_exp(t)
    return f_fma(et, te, et)


# ---- conv2d: im2col (Design a) ----------------------------------------------------------

def im2col(const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
           floating[:, :, :, ::1] cols,          # OUT (G, N, Ho*Wo, C/G*kh*kw)
           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
           int Ho, int Wo, int threads=1):
    cdef Py_ssize_t G = cols.shape[0], N = x.shape[0], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cg = x.shape[1] // G if G else 0
    cdef Py_ssize_t r, g, n, oh, ow, c, i, j, ih, iw, k, pos
    cdef floating zero = 0
    if cols.shape[2] == 0 or cols.shape[3] == 0:
        return
    with nogil:
        for r in prange(G * N * Ho, num_threads=threads, schedule="static"):
            g = r // (N * Ho)
            n = (r // Ho) % N
            oh = r % Ho
            for ow in range(Wo):
                pos = oh * Wo + ow
                k = 0
                for c in range(Cg):
                    for i in range(kh):
                        ih = oh * sh - ph + i * dh
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if 0 <= ih < H and 0 <= iw < W:
                                cols[g, n, pos, k] = x[n, g * Cg + c, ih, iw]
                            else:
                                cols[g, n, pos, k] = zero
                            k = k + 1


# ---- conv2d on the Ozaki path (Design g): K-major patches, per-row certified rounding ----

from ._ozaki cimport (refrt_oz_row_f32_00, refrt_oz_row_f32_01, refrt_oz_row_f64_10,
                      refrt_oz_row_f64_11)  # ozaki.h


def im2col_kn(const floating[:, :, :, ::1] x,      # IN  (N, C, H, W)
              double[:, :, :, ::1] cols,           # OUT (G, C/G*kh*kw, N, Ho*Wo)
              int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
              int Ho, int Wo, int threads=1):
    """Design g: the transposed patch matrix, one row per tap (c, i, j) over the samples
    and output positions, converted to float64 (exact for float32 input); padding as
    explicit zeros.  Each row is strided copies of input row segments."""
    cdef Py_ssize_t G = cols.shape[0], K = cols.shape[1], N = cols.shape[2]
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cg = x.shape[1] // G if G else 0
    cdef Py_ssize_t r, n, g, c, i, j, oh, ow, ih, iw, lo, hi, base, kk
    if N * G * K * Ho * Wo == 0:
        return
    with nogil:
        for r in prange(G * Cg * kh * N, num_threads=threads, schedule="static"):
            g = r // (Cg * kh * N)
            c = (r // (kh * N)) % Cg
            i = (r // N) % kh
            n = r % N
            for j in range(kw):
                kk = (c * kh + i) * kw + j
                # output columns whose input column iw = ow sw - pw + j dw is inside [0, W)
                lo = 0
                while lo < Wo and lo * sw - pw + j * dw < 0:
                    lo = lo + 1
                hi = lo
                while hi < Wo and hi * sw - pw + j * dw < W:
                    hi = hi + 1
                for oh in range(Ho):
                    base = oh * Wo
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        for ow in range(Wo):
                            cols[g, kk, n, base + ow] = 0
                        continue
                    for ow in range(lo):
                        cols[g, kk, n, base + ow] = 0
                    iw = lo * sw - pw + j * dw
                    for ow in range(lo, hi):
                        cols[g, kk, n, base + ow] = x[n, g * Cg + c, ih, iw]
                        iw = iw + sw
                    for ow in range(hi, Wo):
                        cols[g, kk, n, base + ow] = 0


def split2_cols(const double[:, :, :, ::1] b,     # IN  (S, G, K, P)
                const double[:, :, ::1] c1,        # IN  (S, G, P) 1.5 2^(52 - beta + tau)
                const double[:, :, ::1] c2,        # IN  (S, G, P) 1.5 2^(52 - 2 beta + tau)
                double[:, :, :, ::1] b1, double[:, :, :, ::1] rb,   # OUT (S, G, K, P)
                double[:, :, :, ::1] b2, double[:, :, :, ::1] b3,   # OUT (S, G, K, P)
                int threads=1):
    """conv_ozaki Design e, one pass: b = b1 + rb, rb = b2 + b3 with b1 = (b + c1) - c1
    on its column's grid 2^(tau - beta) and b2 = (rb + c2) - c2 on 2^(tau - 2 beta)
    (ozaki.py Design a: exact; the build has no -ffast-math and no contraction, so the
    compiler keeps both roundings)."""
    cdef Py_ssize_t S = b.shape[0], G = b.shape[1], K = b.shape[2], P = b.shape[3]
    cdef Py_ssize_t r, s, g, k, q
    cdef double x, y, u, v
    with nogil:
        for r in prange(S * G * K, num_threads=threads, schedule="static"):
            s = r // (G * K)
            g = (r // K) % G
            k = r % K
            for q in range(P):
                x = b[s, g, k, q]
                y = (x + c1[s, g, q]) - c1[s, g, q]
                u = x - y
                v = (u + c2[s, g, q]) - c2[s, g, q]
                b1[s, g, k, q] = y
                rb[s, g, k, q] = u
                b2[s, g, k, q] = v
                b3[s, g, k, q] = u - v


def oz_round_rows(const double[:, :, :, ::1] p0,   # IN  (S, G, m, p) leading product
                  const double[:, :, :, ::1] p1,   # IN  (S, G, m, p), float64 only
                  const double[:, :, :, ::1] p2,   # IN  (S, G, m, p), float64 only
                  const floating[::1] bias,        # IN  (G m,) one per row, or (0,)
                  const double[:, :, ::1] ea,      # IN  (T, G, m) row error factors
                  const double[:, :, :, ::1] eb,   # IN  (T, S, G, p) column error factors
                  const int[:, ::1] sa,            # IN  (G, m) row exponents
                  const int[:, :, ::1] sb,         # IN  (S, G, p) column exponents
                  int lowest, double eabs,
                  floating[:, :, :, ::1] out,      # OUT (S, G, m, p)
                  signed char[:, :, :, ::1] flags, # OUT (S, G, m, p) 0 kept, 1/2 recompute
                  int threads=1):
    """Design g: ozaki.h's certified rounding per output row, with the bias of the row
    (an output channel) added in the double-double sum; returns the flag count."""
    cdef Py_ssize_t S = out.shape[0], G = out.shape[1], m = out.shape[2], p = out.shape[3]
    cdef Py_ssize_t nt = ea.shape[0], r, s, g, i, k
    cdef bint has_bias = bias.shape[0] > 0
    cdef Py_ssize_t bad = 0
    cdef floating *brow
    if S * G * m * p == 0:
        return 0
    with nogil, parallel(num_threads=threads):
        brow = <floating *> malloc(p * sizeof(floating))
        for r in prange(S * G * m, schedule="static"):
            s = r // (G * m)
            g = (r // m) % G
            i = r % m
            if has_bias:
                for k in range(p):
                    brow[k] = bias[g * m + i]
            if floating is float:
                if has_bias:
                    bad += refrt_oz_row_f32_01(
                        &p0[s, g, i, 0], NULL, NULL, brow, ea[0, g, i], 0,
                        &eb[0, s, g, 0], &eb[nt - 1, s, g, 0], &sb[s, g, 0],
                        sa[g, i] - lowest, eabs, &out[s, g, i, 0], &flags[s, g, i, 0], p)
                else:
                    bad += refrt_oz_row_f32_00(
                        &p0[s, g, i, 0], NULL, NULL, NULL, ea[0, g, i], 0,
                        &eb[0, s, g, 0], &eb[nt - 1, s, g, 0], &sb[s, g, 0],
                        sa[g, i] - lowest, eabs, &out[s, g, i, 0], &flags[s, g, i, 0], p)
            else:
                if has_bias:
                    bad += refrt_oz_row_f64_11(
                        &p0[s, g, i, 0], &p1[s, g, i, 0], &p2[s, g, i, 0], brow,
                        ea[0, g, i], ea[nt - 1, g, i], &eb[0, s, g, 0], &eb[nt - 1, s, g, 0],
                        &sb[s, g, 0], sa[g, i] - lowest, eabs, &out[s, g, i, 0],
                        &flags[s, g, i, 0], p)
                else:
                    bad += refrt_oz_row_f64_10(
                        &p0[s, g, i, 0], &p1[s, g, i, 0], &p2[s, g, i, 0], NULL,
                        ea[0, g, i], ea[nt - 1, g, i], &eb[0, s, g, 0], &eb[nt - 1, s, g, 0],
                        &sb[s, g, 0], sa[g, i] - lowest, eabs, &out[s, g, i, 0],
                        &flags[s, g, i, 0], p)
        free(brow)
    return bad


cdef extern from "dot2.h" nogil:
    void refrt_dot2_init(int allow_v4)
    void refrt_dot2_panel_f64(const double *a, const double *b, Py_ssize_t mr,
                              Py_ssize_t nr, Py_ssize_t n, const double *bias, double *out,
                              Py_ssize_t ldo)

refrt_dot2_init(1)

cdef Py_ssize_t _TILE = 8     # Design g: patch columns gathered per tile


def oz_refine_cols(const long[:, ::1] idx,         # IN  (F, 4) flagged (s, g, i, k), sorted by (s, g, k)
                   const double[:, :, :, ::1] b,   # IN  (S, G, K, P) patches (float64)
                   const double[:, :, :, ::1] rb,  # IN  (S, G, K, P) their split remainder (float64 outputs)
                   const double[:, :, ::1] wa,     # IN  (G, M, K) float32: the weights; float64: their head
                   const double[:, :, ::1] ra,     # IN  (G, M, K) float64: the weights' remainder
                   const double[:, :, :, ::1] p0,  # IN  (S, G, M, P) exact leading product (float64)
                   const double[:, :, ::1] na,     # IN  (T, G, M) row norms
                   const double[:, :, :, ::1] nb,  # IN  (T, S, G, P) column norms
                   double g2, double eabs,
                   const floating[::1] bias,       # IN  (G M,) or (0,)
                   floating[:, :, :, ::1] out,     # OUT the flagged entries
                   signed char[:, :, :, ::1] flags):  # IN/OUT
    """Design g: flag-1 outputs again, as linalg.ozaki_refine / ozaki_refine32 do: float32
    the dot by Dot2 in float64 on the exact products (|err| <= u|q| + g2 ||a|| ||b||),
    float64 the two rounded parts by Dot2 (u(|q1| + |q2|) + g2 (||sa|| ||rb|| + ||ra|| ||b||)),
    certified by ozaki.h's row function (one output, the row's bias in the sum).  The
    patch column is gathered once per run of equal (s, g, k).  Returns the outputs still
    flagged (for ozaki_fix)."""
    cdef Py_ssize_t F = idx.shape[0], K = b.shape[2], P = b.shape[3], f, j, s, g, i, k
    cdef Py_ssize_t ps = -1, pg = -1, pk = -1, left = 0, t, tw
    cdef bint has_bias = bias.shape[0] > 0
    cdef double q1, q2, err, zero = 0, one = 1
    cdef double *col = <double *> malloc(max(K, 1) * _TILE * sizeof(double))
    cdef double *rcol = <double *> malloc(max(K, 1) * _TILE * sizeof(double))
    cdef int sb0 = 0
    cdef floating bi
    with nogil:
        for f in range(F):
            s = idx[f, 0]
            g = idx[f, 1]
            i = idx[f, 2]
            k = idx[f, 3]
            if flags[s, g, i, k] != 1:
                left = left + (flags[s, g, i, k] != 0)
                continue
            if s != ps or g != pg or k - pk >= _TILE or k < pk:
                # gather the tile of _TILE columns from k (one cache line per tap row)
                # transposed: col[t K + j] = b[s, g, j, k + t]
                tw = min(_TILE, P - k)
                for j in range(K):
                    for t in range(tw):
                        col[t * K + j] = b[s, g, j, k + t]
                if floating is double:
                    for j in range(K):
                        for t in range(tw):
                            rcol[t * K + j] = rb[s, g, j, k + t]
                ps = s
                pg = g
                pk = k
            t = k - pk
            bi = bias[g * wa.shape[1] + i] if has_bias else 0
            if floating is float:
                refrt_dot2_panel_f64(&wa[g, i, 0], &col[t * K], 1, 1, K, NULL, &q1, 1)
                err = (_U64 * fabs(q1) * (1 + 4 * _U64)
                       + g2 * na[0, g, i] * nb[0, s, g, k])
                left += refrt_oz_row_f32_01(&q1, NULL, NULL, &bi, one, 0, &err, &zero,
                                            &sb0, 0, eabs, &out[s, g, i, k],
                                            &flags[s, g, i, k], 1)
            else:
                refrt_dot2_panel_f64(&wa[g, i, 0], &rcol[t * K], 1, 1, K, NULL, &q1, 1)
                refrt_dot2_panel_f64(&ra[g, i, 0], &col[t * K], 1, 1, K, NULL, &q2, 1)
                err = (_U64 * (fabs(q1) + fabs(q2)) * (1 + 4 * _U64)
                       + g2 * (na[0, g, i] * nb[0, s, g, k] + na[1, g, i] * nb[1, s, g, k]))
                left += refrt_oz_row_f64_11(&p0[s, g, i, k], &q1, &q2, &bi, one, 0, &err,
                                            &zero, &sb0, 0, eabs, &out[s, g, i, k],
                                            &flags[s, g, i, k], 1)
    free(col)
    free(rcol)
    return left


# ---- transposed convolution: gathered Dot2 (Design b) -----------------------------------

def conv_transpose(const floating[:, :, :, ::1] x,   # IN  (N, IC, H, W)
                   const floating[:, :, :, ::1] w,   # IN  (IC, OC/G, kh, kw)
                   const floating[::1] bias,         # IN  (OC,) or (0,) for none
                   floating[:, :, :, ::1] out,       # OUT (N, OC, Ho, Wo)
                   int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                   int threads=1):
    cdef Py_ssize_t N = x.shape[0], IC = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OCg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t OC = out.shape[1], Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t ICg = IC // groups if groups else 0
    cdef Py_ssize_t r, n, o, g, ol, oh, ow, c, i, j, th, tw, ih, iw, m
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating *av
    cdef floating *bv
    cdef floating init, tiny = _tiny(<floating>0)
    cdef Py_ssize_t cap = max(ICg * kh * kw, 1)
    if N * OC * Ho * Wo == 0:
        return
    with nogil, parallel(num_threads=threads):
        av = <floating *> malloc(cap * sizeof(floating))
        bv = <floating *> malloc(cap * sizeof(floating))
        for r in prange(N * OC * Ho, schedule="static"):
            n = r // (OC * Ho)
            o = (r // Ho) % OC
            oh = r % Ho
            g = o // OCg
            ol = o % OCg
            init = bias[o] if has_bias else 0
            for ow in range(Wo):
                m = 0
                for c in range(ICg):
                    for i in range(kh):
                        th = oh + ph - i * dh
                        if th < 0 or th % sh != 0:
                            continue
                        ih = th // sh
                        if ih >= H:
                            continue
                        for j in range(kw):
                            tw = ow + pw - j * dw
                            if tw < 0 or tw % sw != 0:
                                continue
                            iw = tw // sw
                            if iw >= W:
                                continue
                            av[m] = x[n, g * ICg + c, ih, iw]
                            bv[m] = w[g * ICg + c, ol, i, j]
                            m = m + 1
                out[n, o, oh, ow] = _dot2(av, bv, m, init, tiny)
        free(av)
        free(bv)


# ---- pools (Design c) ---------------------------------------------------------------------

def pool_max(const floating[:, :, ::1] x,        # IN  (M, H, W)
             const int64_t[::1] hs, const int64_t[::1] he,   # IN  window rows [hs, he)
             const int64_t[::1] ws, const int64_t[::1] we,   # IN  window cols [ws, we)
             floating[:, :, ::1] out,            # OUT (M, Ho, Wo)
             int threads=1):
    cdef Py_ssize_t M = x.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t r, b, oh, ow, h, v
    cdef floating m, t
    cdef bint first
    with nogil:
        for r in prange(M * Ho, num_threads=threads, schedule="static"):
            b = r // Ho
            oh = r % Ho
            for ow in range(Wo):
                first = True
                m = 0
                for h in range(hs[oh], he[oh]):
                    for v in range(ws[ow], we[ow]):
                        t = x[b, h, v]
                        if first or t > m or (isnan(t) and not isnan(m)):
                            m = t
                            first = False
                out[b, oh, ow] = m


cdef void _max_vjp_plane(const floating[:, :, ::1] x, const floating[:, :, ::1] g,
                         const int64_t[::1] hs, const int64_t[::1] he,
                         const int64_t[::1] ws, const int64_t[::1] we,
                         floating[:, :, ::1] gx, floating[:, :, ::1] comp,
                         Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t Ho = g.shape[1], Wo = g.shape[2], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t oh, ow, h, v, bh, bw
    cdef floating m, t, err
    cdef bint first
    for oh in range(Ho):
        for ow in range(Wo):
            first = True
            m = 0
            bh = -1
            bw = -1
            for h in range(hs[oh], he[oh]):
                for v in range(ws[ow], we[ow]):
                    t = x[b, h, v]
                    if first or t > m or (isnan(t) and not isnan(m)):
                        m = t
                        bh = h
                        bw = v
                        first = False
            if bh >= 0:
                # Design f: Sum2 accumulation into (gx, comp)
                gx[b, bh, bw] = two_sum(gx[b, bh, bw], g[b, oh, ow], &err)
                comp[b, bh, bw] = comp[b, bh, bw] + err
    for h in range(H):
        for v in range(W):
            if comp[b, h, v] != 0:
                gx[b, h, v] = gx[b, h, v] + comp[b, h, v]


def pool_max_vjp(const floating[:, :, ::1] x,    # IN  (M, H, W)
                 const floating[:, :, ::1] g,    # IN  (M, Ho, Wo)
                 const int64_t[::1] hs, const int64_t[::1] he,
                 const int64_t[::1] ws, const int64_t[::1] we,
                 floating[:, :, ::1] gx,         # OUT (M, H, W), zeros on entry
                 floating[:, :, ::1] comp,       # SCRATCH (M, H, W), zeros
                 int threads=1):
    cdef Py_ssize_t b, M = x.shape[0]
    with nogil:
        for b in prange(M, num_threads=threads, schedule="static"):
            _max_vjp_plane(x, g, hs, he, ws, we, gx, comp, b)


def pool_avg(const floating[:, :, ::1] x,        # IN  (M, H, W)
             const int64_t[::1] hs, const int64_t[::1] he,
             const int64_t[::1] ws, const int64_t[::1] we,
             const int64_t[::1] dh, const int64_t[::1] dw,   # IN  divisor = dh[oh] dw[ow]
             floating[:, :, ::1] out,            # OUT (M, Ho, Wo)
             int cap, int threads=1):
    cdef Py_ssize_t M = x.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t r, b, oh, ow, h, v, m
    cdef floating *buf
    if M * Ho * Wo == 0:
        return
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(max(cap, 1) * sizeof(floating))
        for r in prange(M * Ho, schedule="static"):
            b = r // Ho
            oh = r % Ho
            for ow in range(Wo):
                m = 0
                for h in range(hs[oh], he[oh]):
                    for v in range(ws[ow], we[ow]):
                        buf[m] = x[b, h, v]
                        m = m + 1
                out[b, oh, ow] = _exact_mean(buf, m, <double>(dh[oh] * dw[ow]))
        free(buf)


def pool_avg_vjp(const floating[:, :, ::1] g,    # IN  (M, Ho, Wo)
                 const int64_t[::1] olo, const int64_t[::1] ohi,   # IN  rows oh holding h
                 const int64_t[::1] plo, const int64_t[::1] phi,   # IN  cols ow holding w
                 const int64_t[::1] dh, const int64_t[::1] dw,
                 floating[:, :, ::1] gx,         # OUT (M, H, W)
                 const int64_t[::1] hs, const int64_t[::1] he,
                 const int64_t[::1] ws, const int64_t[::1] we,
                 int cap, int threads=1):
    cdef Py_ssize_t M = gx.shape[0], H = gx.shape[1], W = gx.shape[2]
    cdef Py_ssize_t r, b, h, v, oh, ow, m
    cdef floating *buf
    cdef floating d, q, gv
    if M * H * W == 0:
        return
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(max(2 * cap, 1) * sizeof(floating))
        for r in prange(M * H, schedule="static"):
            b = r // H
            h = r % H
            for v in range(W):
                m = 0
                for oh in range(olo[h], ohi[h]):
                    if not (hs[oh] <= h < he[oh]):
                        continue
                    for ow in range(plo[v], phi[v]):
                        if not (ws[ow] <= v < we[ow]):
                            continue
                        # Design d: g / d = q + r / d with r = fma(-q, d, g) exact
                        d = <floating>(dh[oh] * dw[ow])
                        gv = g[b, oh, ow]
                        q = gv / d
                        buf[m] = q
                        buf[m + 1] = f_fma(-q, d, gv) / d if isfinite(q) else 0
                        m = m + 2
                gx[b, h, v] = _exact_sum(buf, m)
        free(buf)


# ---- smooth max pool (Design e) -------------------------------------------------------------

cdef inline floating _cell(const floating[:, :, ::1] x, Py_ssize_t b, Py_ssize_t h,
                           Py_ssize_t v) noexcept nogil:
    if 0 <= h < x.shape[1] and 0 <= v < x.shape[2]:
        return x[b, h, v]
    return 0                     # a padded cell is the value 0 (TorchLean)


cdef inline Py_ssize_t _pivot_at(const floating[:, :, ::1] x, Py_ssize_t b,
                                 Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t v0, Py_ssize_t v1,
                                 floating beta) noexcept nogil:
    # the row-major index in the window of its first max (beta > 0) / min (beta < 0)
    cdef Py_ssize_t h, v, at = 0
    cdef floating p = 0, t
    cdef bint first = True
    for h in range(h0, h1):
        for v in range(v0, v1):
            t = _cell(x, b, h, v)
            if first or (t > p if beta > 0 else t < p) or (isnan(t) and not isnan(p)):
                p = t
                at = (h - h0) * (v1 - v0) + (v - v0)
                first = False
    return at


cdef inline floating _at(const floating[:, :, ::1] x, Py_ssize_t b, Py_ssize_t h0,
                         Py_ssize_t v0, Py_ssize_t v1, Py_ssize_t at) noexcept nogil:
    return _cell(x, b, h0 + at // (v1 - v0), v0 + at % (v1 - v0))


def pool_smooth_max(const floating[:, :, ::1] x,   # IN  (M, H, W)
                    const int64_t[::1] hs, const int64_t[::1] he,   # unclipped windows
                    const int64_t[::1] ws, const int64_t[::1] we,
                    floating[:, :, ::1] out,      # OUT (M, Ho, Wo)
                    double beta_, int threads=1):
    cdef Py_ssize_t M = x.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t r, b, oh, ow, h, v, at = 0, k
    cdef floating p, s, beta = <floating>beta_
    with nogil:
        for r in prange(M * Ho, num_threads=threads, schedule="static"):
            b = r // Ho
            oh = r % Ho
            for ow in range(Wo):
                at = _pivot_at(x, b, hs[oh], he[oh], ws[ow], we[ow], beta)
                p = _at(x, b, hs[oh], ws[ow], we[ow], at)
                if not isfinite(p):
                    # +-inf or NaN pivot: the IEEE value of p + log(sum)/beta
                    out[b, oh, ow] = p
                    continue
                s = 0
                k = 0
                for h in range(hs[oh], he[oh]):
                    for v in range(ws[ow], we[ow]):
                        if k != at:
                            s = s + _exp_shift(_cell(x, b, h, v), p, beta)
                        k = k + 1
                out[b, oh, ow] = p + f_log1p(s) / beta


def pool_smooth_max_vjp(const floating[:, :, ::1] x,   # IN  (M, H, W)
                        const floating[:, :, ::1] g,   # IN  (M, Ho, Wo)
                        const int64_t[::1] olo, const int64_t[::1] ohi,
                        const int64_t[::1] plo, const int64_t[::1] phi,
                        const int64_t[::1] hs, const int64_t[::1] he,
                        const int64_t[::1] ws, const int64_t[::1] we,
                        floating[:, :, ::1] gx,        # OUT (M, H, W)
                        double beta_, int cap, int threads=1):
    cdef Py_ssize_t M = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t Ho = g.shape[1], Wo = g.shape[2]
    cdef Py_ssize_t r, b, h, v, oh, ow, m, at = 0, hh, vv
    cdef floating beta = <floating>beta_, p, s, xv
    cdef floating *buf
    if M * H * W == 0:
        return
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(max(cap, 1) * sizeof(floating))
        for r in prange(M * H, schedule="static"):
            b = r // H
            h = r % H
            for v in range(W):
                m = 0
                xv = x[b, h, v]
                for oh in range(olo[h], ohi[h]):
                    if not (hs[oh] <= h < he[oh]):
                        continue
                    for ow in range(plo[v], phi[v]):
                        if not (ws[ow] <= v < we[ow]):
                            continue
                        # softmax weight of x[h, v] in window (oh, ow): exp(beta (x - p)) / S
                        at = _pivot_at(x, b, hs[oh], he[oh], ws[ow], we[ow], beta)
                        p = _at(x, b, hs[oh], ws[ow], we[ow], at)
                        if not isfinite(p):
                            # an inf/NaN pivot: y = p, the gradient is NaN at the pivot
                            # cell and 0 elsewhere (the mp rule's convention)
                            if (h - hs[oh]) * (we[ow] - ws[ow]) + (v - ws[ow]) == at:
                                buf[m] = g[b, oh, ow] * (p - p)
                                m = m + 1
                            continue
                        s = 0
                        for hh in range(hs[oh], he[oh]):
                            for vv in range(ws[ow], we[ow]):
                                s = s + _exp_shift(_cell(x, b, hh, vv), p, beta)
                        buf[m] = g[b, oh, ow] * (_exp_shift(xv, p, beta) / s)
                        m = m + 1
                gx[b, h, v] = _exact_sum(buf, m)
        free(buf)
