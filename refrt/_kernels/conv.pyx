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
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.math cimport isfinite, isnan
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from ._scalar cimport two_sum, f_fma, f_abs, f_ldexp, f_exp, f_log1p


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
