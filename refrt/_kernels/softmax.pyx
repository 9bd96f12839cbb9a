# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Softmax family along rows: logsumexp, softmax, log_softmax, and their VJPs.

Design:
a) Arrays arrive as (rows, n) C-contiguous (the binding moves the axis last); rows run
   in parallel (``prange``), each thread owns three row buffers of n entries.
b) Max shift with the dominant term split off.  With m = max_j x_j (first argmax a),
       S' = sum_{j != a} exp(x_j - m)          (every term <= 1, no overflow)
       logsumexp = m + log1p(S')
       log_softmax_i = (x_i - m) - log1p(S')
       softmax_i = exp(x_i - m) / (1 + S').
   log1p(S') keeps full relative accuracy when S' is tiny (one dominant logit); the naive
   log(1 + S') loses it all once S' < u (e.g. logits [10, 0]: log1p(e^-10) ~ 4.5e-5 is
   exact, log(1 + 4.5e-5) in float32 keeps ~10 of its 24 bits).
c) exp(x_j - m) is evaluated as exp(d) (1 + e) with d + e = x_j - m exactly (TwoSum);
   the exp(d) go through ``vexp`` on a row buffer (the SIMD array exp, <= 0.62 ulp), then
   are corrected by exp(d) + exp(d) e.  Without the correction exp amplifies the
   subtraction's rounding by |d| (float32, d = -80: ~40 ulp).
d) Speed: every pass over a row is a branch-free loop in vecmath.h ("softmax rows":
   integer-key lane max, TwoSum shift, exp-correct-and-sum, log_softmax output), so gcc
   vectorises it (AVX-512 / AVX2 clones); no libm call per element (one log1p per row).
   S' is summed in 16 Sum2 lanes (lane j mod 16, folded in lane order: deterministic,
   independent of the thread count).  The entries equal to the max are counted (cnt,
   exact), not summed, so no small term is added to a leading 1 and no argmax is
   needed; S' = (cnt - 1) + sum.  Error budget (ulps of the result): exp(x_j - m) 0.62
   + correction 0.5 u|d|u ~ 0; S' <= u + n u^2 relative; softmax: + 1 division
   rounding -> <= ~1.7 ulp (tolerance 4); log_softmax: (d_j + e_j) - L with one
   rounding plus log1p's error scaled by L / |y_j| <= 1 -> <= ~1.5 ulp.  Rows are
   screened cheaply: a non-finite max (+inf, positive NaN, all -inf) or a NaN sum (a
   NaN anywhere) sends the row to the scalar special path (e).
e) Special rows, decided from the real-number limit and TorchLean's float formula:
   - any NaN: every output of the row is NaN;
   - an entry +inf: logsumexp = +inf (the limit); softmax and log_softmax are NaN
     (inf - inf in the shift; the limit depends on how the entries go to infinity);
   - every entry -inf: logsumexp = -inf (log 0); softmax and log_softmax are NaN
     (0/0; TorchLean's exp(x - max) is exp(-inf + inf) = NaN as well);
   - n = 0: logsumexp = -inf (log of an empty sum); softmax of an empty row is empty.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.math cimport isnan, isinf, isfinite, INFINITY, NAN
from ._scalar cimport two_sum, f_fma, f_log1p, f_exp
from ._vecmath cimport (vexp, vmax as _vmax, vshift as _vshift, vexpsum as _vexpsum,
                       vlsm_out as _vlsm_out)

# Which quantity a row pass writes.
cdef enum:
    LSE = 0
    SOFTMAX = 1
    LOG_SOFTMAX = 2

# Max and first argmax of a non-empty row; NaN if any entry is NaN (slow path only).
cdef inline floating _row_max(const floating *x, Py_ssize_t n, Py_ssize_t *arg) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m = x[0]
    arg[0] = 0
    for j in range(n):
        if isnan(x[j]):
            return x[j]
        if x[j] > m:
            m = x[j]
            arg[0] = j
    return m


# Rows with a non-finite max (+inf, NaN found by the scalar scan, all -inf): Design e.
cdef inline floating _special_row(const floating *x, floating *y, Py_ssize_t n,
                                  int what) noexcept nogil:
    cdef Py_ssize_t j, a
    cdef floating m = _row_max(x, n, &a)
    if what == LSE:
        return m if not isfinite(m) else NAN    # NaN, +inf, or -inf for an all -inf row
    for j in range(n):
        y[j] = NAN
    return NAN


# One row of any of the three ops (Design b-e).  buf holds 3 n entries.
cdef inline floating _row(const floating *x, floating *y, Py_ssize_t n, int what,
                          floating *buf) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m, hi, lo, L, total, tlo, s, err, inv, q
    cdef floating sums[3]
    cdef floating *d = buf
    cdef floating *e = buf + n
    cdef floating *t = buf + 2 * n
    if n == 0:
        return -INFINITY
    m = _vmax(x, n)
    if not isfinite(m):
        return _special_row(x, y, n, what)
    _vshift(x, n, m, d, e)
    vexp(d, t, n)
    _vexpsum(x, n, m, e, t, sums)
    hi = sums[0]
    lo = sums[1]
    if isnan(hi):                          # a NaN entry (skipped by the max)
        return _special_row(x, y, n, what)
    if what == SOFTMAX:
        # cnt + S' as a double word (total, tlo), cnt = sums[2] >= 1 the number of
        # maxima (exact small integer); the quotient's error is dominated by the
        # rounding of t_j and of the division
        total = two_sum(sums[2], hi, &tlo)
        total = total + (tlo + lo)
        # t_j / total without a divide per element: q = t_j * (1/total), then one
        # Newton correction with the exact remainder fma(-q, total, t_j); the result is
        # within ~0.5 ulp + u^2 of the quotient (a vdivps is ~4x the cost of mul + 2 fma)
        inv = 1 / total
        for j in range(n):
            q = t[j] * inv
            y[j] = f_fma(f_fma(-q, total, t[j]), inv, q)
        return 0
    # log(cnt + S') = log1p((cnt - 1) + S'); cnt - 1 is exact
    s = two_sum(sums[2] - 1, hi, &err)
    L = f_log1p(s + (err + lo))
    if what == LSE:
        return m + L
    _vlsm_out(d, e, n, L, y)
    return 0


# Short rows (n <= SHORT_N): the five per-row passes of _row cost ~40 ns each in call and
# lane set-up, more than the work on 10 entries.  A block of rows (<= SHORT_BLOCK entries)
# is shifted in one scalar loop (TwoSum per entry, as refrt_vshift), exponentiated by ONE
# vexp call, and then summed per row with a single Sum2 lane (TwoSum per addition, errors
# summed): the same formulas and error budget as Design b-d, only the summation order of
# S' differs (in index order within the row).
DEF SHORT_N = 32
DEF SHORT_BLOCK = 2048


cdef inline void _short_block(const floating *x, floating *y, floating *r, Py_ssize_t rows,
                              Py_ssize_t n, int what, floating *buf) noexcept nogil:
    cdef Py_ssize_t i, j, k = rows * n
    cdef floating *d = buf
    cdef floating *e = buf + k
    cdef floating *t = buf + 2 * k
    cdef floating *ms = buf + 3 * k
    cdef floating m, s, bb, hi, lo, cnt, err, L, total, tlo, inv, q, v
    cdef const floating *xi
    for i in range(rows):
        xi = x + i * n
        m = xi[0]
        for j in range(1, n):
            if xi[j] > m:
                m = xi[j]
        if isnan(m):                          # a leading NaN: the special path
            m = INFINITY
        ms[i] = m
        for j in range(n):
            s = xi[j] - m
            bb = s - xi[j]
            d[i * n + j] = s
            e[i * n + j] = 0 if isinf(s) or not isfinite(m) else (xi[j] - (s - bb)) + (-m - bb)
    vexp(d, t, k)
    for i in range(rows):
        xi = x + i * n
        m = ms[i]
        if not isfinite(m):
            v = _special_row(xi, y + i * n if y != NULL else NULL, n, what)
            if r != NULL:
                r[i] = v
            continue
        hi = 0
        lo = 0
        cnt = 0
        for j in range(n):
            v = t[i * n + j] + t[i * n + j] * e[i * n + j]
            t[i * n + j] = v
            if xi[j] == m:
                cnt = cnt + 1
            else:
                s = hi + v
                bb = s - hi
                lo = lo + ((hi - (s - bb)) + (v - bb))
                hi = s
        if isnan(hi):                         # a NaN entry the max skipped
            v = _special_row(xi, y + i * n if y != NULL else NULL, n, what)
            if r != NULL:
                r[i] = v
            continue
        if what == SOFTMAX:
            total = two_sum(cnt, hi, &tlo)
            total = total + (tlo + lo)
            inv = 1 / total
            for j in range(n):
                q = t[i * n + j] * inv
                y[i * n + j] = f_fma(f_fma(-q, total, t[i * n + j]), inv, q)
            continue
        s = two_sum(cnt - 1, hi, &err)
        L = f_log1p(s + (err + lo))
        if what == LSE:
            r[i] = m + L
            continue
        for j in range(n):
            s = two_sum(d[i * n + j], -L, &err)
            y[i * n + j] = s if isinf(s) else s + (err + e[i * n + j])


# Run one op over every row.  y is (rows, n) for softmax/log_softmax and NULL for
# logsumexp, whose per-row result goes to r (NULL otherwise).
cdef void _rows(const floating *x, floating *y, floating *r, Py_ssize_t rows,
                Py_ssize_t n, int what, int threads) noexcept nogil:
    cdef Py_ssize_t i, b, nb, per
    cdef floating *buf = NULL
    cdef floating v
    if n <= SHORT_N:
        per = max(1, SHORT_BLOCK // n)        # rows per block
        nb = (rows + per - 1) // per
        with parallel(num_threads=threads, use_threads_if=rows * n > 32768):
            buf = <floating *> malloc((3 * per * n + per) * sizeof(floating))
            if buf != NULL:
                for b in prange(nb, schedule="static"):
                    _short_block(x + b * per * n, y + b * per * n if y != NULL else NULL,
                                 r + b * per if r != NULL else NULL,
                                 min(per, rows - b * per), n, what, buf)
                free(buf)
        return
    with parallel(num_threads=threads, use_threads_if=rows * n > 32768):
        buf = <floating *> malloc((3 * n + 1) * sizeof(floating))
        if buf != NULL:
            for i in prange(rows, schedule="static"):
                v = _row(x + i * n, y + i * n if y != NULL else NULL, n, what, buf)
                if r != NULL:
                    r[i] = v
            free(buf)


def logsumexp_rows(const floating[:, ::1] x,   # IN  (rows, n)
                   floating[::1] out,          # OUT (rows,)
                   int threads=1):
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    if rows == 0:
        return
    if n == 0:
        for i in range(rows):
            out[i] = -INFINITY
        return
    _rows(&x[0, 0], NULL, &out[0], rows, n, LSE, threads)


def softmax_rows(const floating[:, ::1] x,     # IN  (rows, n)
                 floating[:, ::1] out,         # OUT (rows, n)
                 int threads=1):
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    _rows(&x[0, 0], &out[0, 0], NULL, x.shape[0], x.shape[1], SOFTMAX, threads)


def log_softmax_rows(const floating[:, ::1] x,  # IN  (rows, n)
                     floating[:, ::1] out,      # OUT (rows, n)
                     int threads=1):
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    _rows(&x[0, 0], &out[0, 0], NULL, x.shape[0], x.shape[1], LOG_SOFTMAX, threads)


# R = sum_j y_j (g_j - g_a) in 16 lanes, compensated: g_j - g_a = dg + dge (TwoSum),
# y_j dg = p + fma(y_j, dg, -p) (exact), p summed by TwoSum, every residual collected
# per lane; the j = a term is exactly 0 for finite g.  Returns a non-finite value when
# any g_j is non-finite or a difference overflows (the caller's slow path).
cdef inline floating _vjp_dot(const floating *y, const floating *g, Py_ssize_t n,
                              floating ga) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % 16
    cdef floating S[16]
    cdef floating E[16]
    cdef floating dg, dge, bb, p, s, r, c, err
    for l in range(16):
        S[l] = 0
        E[l] = 0
    for j in range(0, full, 16):
        for l in range(16):
            dg = g[j + l] - ga
            bb = dg - g[j + l]
            dge = (g[j + l] - (dg - bb)) + (-ga - bb)
            p = y[j + l] * dg
            s = S[l] + p
            bb = s - S[l]
            E[l] = E[l] + ((((S[l] - (s - bb)) + (p - bb)) + f_fma(y[j + l], dg, -p))
                           + y[j + l] * dge)
            S[l] = s
    for j in range(full, n):
        dg = two_sum(g[j], -ga, &dge)
        p = y[j] * dg
        S[0] = two_sum(S[0], p, &err)
        E[0] = E[0] + ((err + f_fma(y[j], dg, -p)) + y[j] * dge)
    r = S[0]
    c = E[0]
    for l in range(1, 16):
        r = two_sum(r, S[l], &err)
        c = c + (E[l] + err)
    return r + c


def softmax_vjp(const floating[:, ::1] y,      # IN  softmax(x), (rows, n)
                const floating[:, ::1] g,      # IN  upstream gradient
                floating[:, ::1] gx,           # OUT y * (g - sum(g * y))
                int threads=1):
    """gx_i = y_i (g_i - s), s = sum_j g_j y_j, without the cancellation in g_i - s.

    With a = argmax y and sum_j y_j = 1 (exact in the reals),
        s = g_a + R,   R = sum_{j != a} y_j (g_j - g_a),
    so g_i - s = (g_i - g_a) - R.  When one logit dominates, y_a = 1 - O(tiny) and the
    naive g_a - s cancels to noise (float32: ~1e8 ulp off at spreads of 30); here R is a
    compensated dot (TwoProduct + TwoSum) of small terms, g_i - g_a is TwoSum-exact, and
    the true gradient y_a * (-R) keeps its relative accuracy.  Fast path: lane dot
    (``_vjp_dot``) and a branch-free output loop; rows with a non-finite g or R take the
    scalar loop with the IEEE special handling.
    """
    cdef Py_ssize_t i, j, a, rows = y.shape[0], n = y.shape[1]
    cdef floating r, c, p, err, dg, dge, ga, ym
    if rows == 0 or n == 0:
        return
    with nogil:
        for i in prange(rows, num_threads=threads, schedule="static",
                        use_threads_if=rows * n > 32768):
            ym = _vmax(&y[i, 0], n)
            a = 0
            for j in range(n):                 # first argmax (early exit)
                if y[i, j] == ym:
                    a = j
                    break
            ga = g[i, a]
            r = _vjp_dot(&y[i, 0], &g[i, 0], n, ga)
            if isfinite(r) and isfinite(ga):
                for j in range(n):
                    dg = g[i, j] - ga
                    p = dg - g[i, j]
                    dge = (g[i, j] - (dg - p)) + (-ga - p)
                    gx[i, j] = y[i, j] * ((dg - r) + dge)
                continue
            a = 0
            for j in range(n):
                if y[i, j] > y[i, a]:
                    a = j
            ga = g[i, a]
            r = 0
            c = 0
            for j in range(n):
                if j != a:
                    dg = two_sum(g[i, j], -ga, &dge)
                    p = y[i, j] * dg
                    r = two_sum(r, p, &err)
                    c = c + (err + f_fma(y[i, j], dg, -p) + y[i, j] * dge)
            r = r + c
            for j in range(n):
                dg = two_sum(g[i, j], -ga, &dge)
                gx[i, j] = y[i, j] * ((dg - r) + dge) if isfinite(dg) else y[i, j] * (g[i, j] - ga - r)


# Sum of a row in 16 Sum2 lanes, folded in lane order (deterministic).
cdef inline floating _lane_sum(const floating *g, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % 16
    cdef floating S[16]
    cdef floating E[16]
    cdef floating v, s, bb, err, r, c
    for l in range(16):
        S[l] = 0
        E[l] = 0
    for j in range(0, full, 16):
        for l in range(16):
            v = g[j + l]
            s = S[l] + v
            bb = s - S[l]
            E[l] = E[l] + ((S[l] - (s - bb)) + (v - bb))
            S[l] = s
    for j in range(full, n):
        S[0] = two_sum(S[0], g[j], &err)
        E[0] = E[0] + err
    r = S[0]
    c = E[0]
    for l in range(1, 16):
        r = two_sum(r, S[l], &err)
        c = c + (E[l] + err)
    return r + c if isfinite(r) else r


def log_softmax_vjp(const floating[:, ::1] y,  # IN  log_softmax(x), (rows, n)
                    const floating[:, ::1] g,  # IN  upstream gradient
                    floating[:, ::1] gx,       # OUT g - exp(y) * sum(g)
                    int threads=1):
    """gx = g - exp(y) sum(g): exp(y) through ``vexp`` into gx itself, then one fma."""
    cdef Py_ssize_t i, j, rows = y.shape[0], n = y.shape[1]
    cdef floating s
    if rows == 0 or n == 0:
        return
    with nogil:
        for i in prange(rows, num_threads=threads, schedule="static",
                        use_threads_if=rows * n > 32768):
            s = _lane_sum(&g[i, 0], n)
            vexp(&y[i, 0], &gx[i, 0], n)
            for j in range(n):
                gx[i, j] = f_fma(-gx[i, j], s, g[i, j])


# log_softmax VJP from the logits x (not the rounded output y): gx = g - p G, G = sum(g).
# exp(y_j) of a rounded y_j is off by |y_j| u relative (y_j = -600: 600 ulp of p_j), so
# p is rebuilt from x as in Design b/c: d_j + de_j = x_j - m (TwoSum), L = log1p(R) with
# R = sum_{j != a} exp(x_j - m) (corrected exps, Sum2 lanes), then
#   y_j = (d_j - L) + de_j:  d_j - L = yh + ye exactly (TwoSum),
#   p_j = exp(yh) (1 + ye + de_j)   (fma; L's own rounding is u L absolute, L <= log n),
# and at the first argmax a, p_a = 1 / (1 + R) and
#   g_a - p_a G = (g_a - G) + G R / (1 + R) = -G'_a + G (R / (1 + R)),
#   G'_a = sum_{j != a} g_j,
# so a dominant class' component does not cancel 1 - p_a away.  Components j != a are one
# fma, fma(-p_j, G, g_j): what cancellation is left there is the problem's own
# (g_j close to p_j G).  Rows with a non-finite max fall back to the y-based formula on
# the IEEE values (NaN rows stay NaN).
cdef void _lsm_vjp_row(const floating *x, const floating *g, floating *gx, Py_ssize_t n,
                       floating *buf) noexcept nogil:
    cdef floating *dh = buf
    cdef floating *de = buf + n
    cdef floating m, e, R, L, G, Gp, yh, ye, Sd
    cdef Py_ssize_t j, a = 0
    m = _vmax(x, n)
    G = _lane_sum(g, n)
    if not isfinite(m):
        for j in range(n):
            gx[j] = NAN if (isnan(m) or m == INFINITY or m == -INFINITY) else g[j]
        return
    for j in range(n):
        if x[j] == m:
            a = j
            break
    # G'_a = sum_{j != a} g_j summed directly (de as scratch): G - g_a would carry G's
    # rounding, u |G|, into a component that can be far smaller than G (g_a dominating)
    for j in range(n):
        de[j] = g[j]
    de[a] = 0
    Gp = _lane_sum(de, n)
    G = Gp + g[a]
    for j in range(n):
        dh[j] = two_sum(x[j], -m, &e)
        de[j] = e if isfinite(e) else 0
    vexp(dh, gx, n)                    # gx as scratch: exp(d_j)
    for j in range(n):
        gx[j] = f_fma(gx[j], de[j], gx[j])
    gx[a] = 0
    R = _lane_sum(gx, n)
    L = f_log1p(R)
    for j in range(n):
        yh = two_sum(dh[j], -L, &ye)
        dh[j] = yh
        de[j] = (ye if isfinite(ye) else 0) + de[j]     # x_j = -inf: p_j = 0 exactly
    vexp(dh, gx, n)
    for j in range(n):
        e = f_fma(gx[j], de[j], gx[j])          # p_j
        gx[j] = f_fma(-e, G, g[j])
    Sd = 1 + R
    gx[a] = f_fma(G, R / Sd, -Gp)


def log_softmax_vjp_x(const floating[:, ::1] x,  # IN  logits, (rows, n)
                      const floating[:, ::1] g,  # IN  upstream gradient
                      floating[:, ::1] gx,       # OUT g - softmax(x) * sum(g)
                      int threads=1):
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    cdef floating *buf
    if rows == 0 or n == 0:
        return
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(2 * n * sizeof(floating))
        for i in prange(rows, schedule="static"):
            _lsm_vjp_row(&x[i, 0], &g[i, 0], &gx[i, 0], n, buf)
        free(buf)
