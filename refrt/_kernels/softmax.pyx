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
c) exp(x_j - m) is evaluated as exp(d) (1 + e) with d + e = x_j - m exactly (TwoSum,
   as ``exp_diff`` in _scalar.pxd); the exp(d) are computed through ``vexp`` on a row
   buffer (the SIMD array exp), then corrected by exp(d) + exp(d) e.
d) S' is Neumaier-compensated (positive terms, no cancellation: one level suffices), in
   four interleaved lanes merged in lane order (a TwoSum chain is latency-bound).
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
from ._vecmath cimport vexp

# Which quantity a row pass writes.
cdef enum:
    LSE = 0
    SOFTMAX = 1
    LOG_SOFTMAX = 2


# Max and first argmax of a non-empty row; NaN if any entry is NaN.
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


# Fill d, e with d_j + e_j = x_j - m exactly, then t_j = exp(d_j) (vexp).  Where x_j - m
# is -inf (x_j = -inf, or the subtraction overflows: x_j = -max, m = max) TwoSum's e is
# NaN; exp(d) = 0 there already, so e is set to 0.
cdef inline void _shifted_exp(const floating *x, Py_ssize_t n, floating m, floating *d,
                              floating *e, floating *t) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        d[j] = two_sum(x[j], -m, &e[j])
        if not isfinite(d[j]):
            e[j] = 0
    vexp(d, t, n)
    # exp(d) (1 + e) as exp(d) + exp(d) e: |e| <= ulp(d) / 2, so the product's own
    # rounding is below u^2 exp(d) and only the final addition matters; no fma needed
    # (without -mfma an fma is a libm call per element)
    for j in range(n):
        t[j] = t[j] + t[j] * e[j]


# S' = sum_{j != a} t_j, compensated; returns hi, lo gets the error sum.  The terms are
# positive (no cancellation), so one Neumaier level gives |error| <= u S' + n u^2 S'.
# Order: four interleaved lanes (j = l, l + 4, ...: a TwoSum chain is latency-bound),
# merged in lane order; t_a (exactly 1) is zeroed for the sum and restored.
cdef inline floating _tail_sum(floating *t, Py_ssize_t n, Py_ssize_t a,
                               floating *lo) noexcept nogil:
    cdef Py_ssize_t j = 0
    cdef floating s0 = 0, s1 = 0, s2 = 0, s3 = 0, c = 0, c1 = 0, c2 = 0, c3 = 0
    cdef floating e0, e1, e2, e3, keep = t[a]
    t[a] = 0
    while j + 4 <= n:
        s0 = two_sum(s0, t[j], &e0)
        s1 = two_sum(s1, t[j + 1], &e1)
        s2 = two_sum(s2, t[j + 2], &e2)
        s3 = two_sum(s3, t[j + 3], &e3)
        c = c + e0
        c1 = c1 + e1
        c2 = c2 + e2
        c3 = c3 + e3
        j = j + 4
    while j < n:
        s0 = two_sum(s0, t[j], &e0)
        c = c + e0
        j = j + 1
    s0 = two_sum(s0, s1, &e1)
    s0 = two_sum(s0, s2, &e2)
    s0 = two_sum(s0, s3, &e3)
    t[a] = keep
    lo[0] = (c + c1 + c2 + c3) + (e1 + e2 + e3)
    return s0


# One row of any of the three ops (Design b-e).  buf holds 3 n entries.
cdef inline floating _row(const floating *x, floating *y, Py_ssize_t n, int what,
                          floating *buf) noexcept nogil:
    cdef Py_ssize_t j, a
    cdef floating m, hi, lo, L, total, tlo, s, err
    cdef floating *d = buf
    cdef floating *e = buf + n
    cdef floating *t = buf + 2 * n
    if n == 0:
        return -INFINITY
    m = _row_max(x, n, &a)
    if not isfinite(m):
        if what == LSE:
            return m                       # NaN, +inf, or -inf for an all -inf row
        for j in range(n):
            y[j] = NAN
        return NAN
    _shifted_exp(x, n, m, d, e, t)
    hi = _tail_sum(t, n, a, &lo)
    if what == SOFTMAX:
        # 1 + S' as a double word (total, tlo); the quotient's error is dominated by the
        # rounding of t_j and of the division
        total = two_sum(<floating>1, hi, &tlo)
        total = total + (tlo + lo)
        for j in range(n):
            y[j] = t[j] / total
        return 0
    L = f_log1p(hi + lo)
    if what == LSE:
        return m + L
    for j in range(n):
        # (d_j + e_j) - L: d_j - L = s + err exactly, then add the small parts together
        s = two_sum(d[j], -L, &err)
        y[j] = s + (err + e[j]) if isfinite(s) else s
    return 0


# Run one op over every row.  y is (rows, n) for softmax/log_softmax and NULL for
# logsumexp, whose per-row result goes to r (NULL otherwise).
cdef void _rows(const floating *x, floating *y, floating *r, Py_ssize_t rows,
                Py_ssize_t n, int what, int threads) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating *buf = NULL
    cdef floating v
    with parallel(num_threads=threads):
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
    the true gradient y_a * (-R) keeps its relative accuracy.
    """
    cdef Py_ssize_t i, j, a, rows = y.shape[0], n = y.shape[1]
    cdef floating r, c, p, err, dg, dge, ga
    if rows == 0 or n == 0:
        return
    with nogil:
        for i in prange(rows, num_threads=threads, schedule="static"):
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


def log_softmax_vjp(const floating[:, ::1] y,  # IN  log_softmax(x), (rows, n)
                    const floating[:, ::1] g,  # IN  upstream gradient
                    floating[:, ::1] gx,       # OUT g - exp(y) * sum(g)
                    int threads=1):
    cdef Py_ssize_t i, j, rows = y.shape[0], n = y.shape[1]
    cdef floating s, c, err
    if rows == 0 or n == 0:
        return
    with nogil:
        for i in prange(rows, num_threads=threads, schedule="static"):
            s = 0
            c = 0
            for j in range(n):
                s = two_sum(s, g[i, j], &err)
                c = c + err
            s = s + c
            for j in range(n):
                gx[i, j] = f_fma(-f_exp(y[i, j]), s, g[i, j])
