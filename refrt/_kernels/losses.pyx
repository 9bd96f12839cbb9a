# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Loss kernels (forward and VJP), float32 and float64.

Design:
a) One fused type (``cython.floating``).  float32 kernels call float32 libm (``logf``,
   ``log1pf``, ``expf`` through ``vexp``) and accumulate in float32: nothing widens.
b) Every loss is a sum of per-element terms that are >= 0 for in-domain inputs (kl_div
   excepted), so summing them cannot cancel.  Each term is formed as a double-word
   hi + lo with error-free transforms -- TwoSum for differences such as 1 - t or
   m - z, fma for products t * v -- so the only rounding inside a term is the one libm
   call (log, log1p, exp).  Measured worst case: ~1 ulp against the exact result.
c) Accumulation order (fixed, independent of the thread count): elementwise losses cut
   the flat input into blocks of BLOCK elements, row losses use one row per partial.
   Inside a partial, terms are added in index order with Sum2 (Ogita-Rump-Oishi: the
   branch-free form of Neumaier's compensated sum; TwoSum per addition, the rounding
   errors and the terms' lo parts collected in a second accumulator).  Partials are then
   added in order, sequentially, the same way.  So results are bitwise identical for
   any ``threads``.
d) The mean divides the double-word total (s + c) by n once, with one correction step:
   q = s / n, r = fma(-q, n, s) + c (exact remainder plus the low part), q + r / n.
   n is converted to the working dtype (exact below 2**24 elements/rows in float32).
e) Non-finite totals: once s is +-inf or NaN the compensation holds inf - inf = NaN
   garbage and is dropped: the result is s / n, which follows IEEE propagation.
f) Zero coefficient: a term t * v with t == 0 is 0 even when v is +-inf or the log of 0
   (TorchLean's 0 * log 0 = 0, and bce_with_logits' (1 - t) * inf at t = 1).
g) ``cdivision=True``: float division by zero follows IEEE (+-inf or NaN), never raises.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.math cimport isnan, isinf, isfinite, INFINITY, NAN
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from ._scalar cimport (f_log, f_log1p, f_abs, f_fma, two_sum, sigmoid)
from ._vecmath cimport vexp

# Tuning constants
# Elements per partial sum of the elementwise losses: large enough that the partial
# bookkeeping is free, small enough to spread over threads; fixed so the summation
# order never depends on the thread count.
cdef enum:
    BLOCK = 8192
# Elements per vexp call inside a block (a stack buffer; amortises the call).
cdef enum:
    CHUNK = 256


# ---------------------------------------------------------------- scalar helpers

# Sum2 step: s + c accumulates x exactly up to the rounding of c (see Design c).
cdef inline void acc(floating x, floating *s, floating *c) noexcept nogil:
    cdef floating e
    s[0] = two_sum(s[0], x, &e)
    c[0] += e


# Rounding error of p = fl(a * b), exact: a * b = p + prod_err(a, b, p).
# Dekker's TwoProduct with Veltkamp splitting (a = ah + al, halves of <= p/2 bits, so
# every partial product is exact) costs ~10 flops and no call; fma() is a libm call
# per element without -mfma (~3.4 ns measured).  The split c = K * a overflows for
# |a| > max / K, so large factors (split_safe) or products near max (product_safe) take the fma.  As
# with fma, a product in the subnormal range has an inexact error term; it is then
# below the smallest subnormal, i.e. below every ulp of the result.
cdef inline floating split_const(floating x) noexcept nogil:
    if floating is float:
        return 4097.0              # 2**12 + 1
    else:
        return 134217729.0         # 2**27 + 1


cdef inline floating split_safe(floating x) noexcept nogil:
    # factors below 2**100 / 2**964: K * a stays far below max
    if floating is float:
        return 1.2676506002282294e+30      # 2**100
    else:
        return 1.559250241824e+290     # 2**964


cdef inline floating product_safe(floating x) noexcept nogil:
    # products below 2**(emax - 3): the partial product ah * bh (at most 2**-11 above
    # |p|) cannot overflow
    if floating is float:
        return 4.253529586511731e+37       # 2**125
    else:
        return 2.247116418577895e+307      # 2**1021


cdef inline floating prod_err(floating a, floating b, floating p) noexcept nogil:
    cdef floating ca, ah, al, cb, bh, bl
    if not (f_abs(a) < split_safe(a) and f_abs(b) < split_safe(a)
            and f_abs(p) < product_safe(a)):
        return f_fma(a, b, -p)
    ca = split_const(a) * a
    ah = ca - (ca - a)
    al = a - ah
    cb = split_const(a) * b
    bh = cb - (cb - b)
    bl = b - bh
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


# t * (vh + vl) added to (s, c) with the product's rounding error captured exactly:
# t*vh = ph + prod_err(t, vh, ph); t*vl is below ulp(ph) and rounds harmlessly.
cdef inline void acc_prod(floating t, floating vh, floating vl, floating *s,
                          floating *c) noexcept nogil:
    cdef floating ph = t * vh
    acc(ph, s, c)
    c[0] += prod_err(t, vh, ph) + t * vl


# (s + c) / n with one correction step (Design d); non-finite s drops c (Design e).
cdef inline floating mean_dw(floating s, floating c, floating n) noexcept nogil:
    cdef floating q
    if not isfinite(s):
        return s / n
    q = s / n
    return q + (f_fma(-q, n, s) + c) / n


# Exact test of the real inequality a < 1 - eps (eps the exact dtype value): a + eps
# = s + e exactly (TwoSum), and s + e < 1 iff s < 1, or s == 1 and e < 0.  Comparing
# with the rounded float 1 - eps would misplace the clip bound by up to half an ulp.
cdef inline bint below_one_minus(floating a, floating eps) noexcept nogil:
    cdef floating e
    cdef floating s = two_sum(a, eps, &e)
    return s < 1 or (s == 1 and e < 0)


# log of the clipped probability p' = clip(p, eps, 1 - eps) (TorchLean: x > eps ? x : eps,
# then x < 1 - eps ? x : 1 - eps), with the real bound 1 - eps.  At the upper bound
# log(p') = log(1 - eps) = log1p(-eps) exactly in real terms, so no rounded 1 - eps is
# ever formed.  log(1 - p') is returned too: at the upper bound 1 - p' = eps exactly, so
# log(eps); otherwise log1p(-p') (-p' is exact).  NaN p propagates (the clip would
# otherwise map NaN to eps).
cdef inline floating clipped_logs(floating p, floating eps, floating *log1m) noexcept nogil:
    cdef floating lo
    if isnan(p):
        log1m[0] = p
        return p
    lo = p if p > eps else eps
    if below_one_minus(lo, eps):
        log1m[0] = f_log1p(-lo)
        return f_log(lo)
    log1m[0] = f_log(eps)
    return f_log1p(-eps)


# clip is active (derivative 0) unless eps < p < 1 - eps.
cdef inline bint clip_inside(floating p, floating eps) noexcept nogil:
    return p > eps and below_one_minus(p, eps)


cdef inline floating finish(const floating[::1] part_h, const floating[::1] part_l,
                            floating n) noexcept nogil:
    cdef floating s = 0, c = 0
    cdef Py_ssize_t b
    for b in range(part_h.shape[0]):
        acc(part_h[b], &s, &c)
        c += part_l[b]
    return mean_dw(s, c, n)


# ---------------------------------------------------------------- elementwise losses

cdef void mse_block(const floating *p, const floating *t, Py_ssize_t n,
                    floating *oh, floating *ol) noexcept nogil:
    cdef floating s = 0, c = 0, dh, dl, sq
    cdef Py_ssize_t i
    for i in range(n):
        # d = p - t = dh + dl exactly; d^2 = dh^2 + 2 dh dl + dl^2, dl^2 < ulp(dh^2)^2
        # is dropped; dh^2 = sq + prod_err(dh, dh, sq) exactly.
        dh = two_sum(p[i], -t[i], &dl)
        sq = dh * dh
        acc(sq, &s, &c)
        c += prod_err(dh, dh, sq) + 2 * dh * dl
    oh[0] = s
    ol[0] = c


cdef void bce_logits_block(const floating *x, const floating *t, Py_ssize_t n,
                           floating *oh, floating *ol) noexcept nogil:
    cdef floating s = 0, c = 0, xi, uh, ul
    cdef floating nabs[256]           # CHUNK
    cdef floating ex[256]             # CHUNK
    cdef Py_ssize_t i, j, base, m
    base = 0
    while base < n:
        m = n - base if n - base < CHUNK else CHUNK
        # exp(-|x|) for a chunk through vexp (the array exp of the softmax family)
        for j in range(m):
            nabs[j] = -f_abs(x[base + j])
        vexp(nabs, ex, m)
        for j in range(m):
            i = base + j
            xi = x[i]
            # softplus(x) - t x = (x > 0 ? (1 - t) x : -t x) + log1p(exp(-|x|)): the
            # first part is >= 0 for t in [0, 1] in both branches and exp(-|x|) <= 1
            # never overflows, so no term cancels.  log1p(exp(-|x|)) underflows
            # gracefully to 0 for large |x|.
            acc(f_log1p(ex[j]), &s, &c)
            if xi > 0:
                uh = two_sum(<floating>1, -t[i], &ul)   # 1 - t = uh + ul exactly
            else:
                uh = -t[i]
                ul = 0
            # Zero coefficient (t = 1 with x = +inf, t = 0 with x = -inf) contributes 0.
            if uh != 0 or ul != 0 or isnan(xi):
                acc_prod(xi, uh, ul, &s, &c)
        base += CHUNK
    oh[0] = s
    ol[0] = c


cdef void bce_block(const floating *p, const floating *t, Py_ssize_t n, floating eps,
                    floating *oh, floating *ol) noexcept nogil:
    cdef floating s = 0, c = 0, lp, l1m, uh, ul, ti
    cdef Py_ssize_t i
    for i in range(n):
        ti = t[i]
        lp = clipped_logs(p[i], eps, &l1m)
        # -(t log p' + (1 - t) log(1 - p')): both logs are <= 0, both terms >= 0.
        if ti != 0:
            acc_prod(ti, -lp, 0, &s, &c)
        uh = two_sum(<floating>1, -ti, &ul)
        if uh != 0 or ul != 0:
            acc_prod(-l1m, uh, ul, &s, &c)
    oh[0] = s
    ol[0] = c


def mse_fwd(const floating[::1] p,    # IN  pred, flat
            const floating[::1] t,    # IN  target, flat
            int threads=1):
    return _elementwise(0, p, t, 0, threads)


def bce_logits_fwd(const floating[::1] x,    # IN  logits, flat
                   const floating[::1] t,    # IN  targets, flat
                   int threads=1):
    return _elementwise(1, x, t, 0, threads)


def bce_fwd(const floating[::1] p,    # IN  probabilities, flat
            const floating[::1] t,    # IN  targets, flat
            floating eps,             # IN  clip bound (exact dtype value)
            int threads=1):
    return _elementwise(2, p, t, eps, threads)


cdef floating _elementwise(int which, const floating[::1] a, const floating[::1] b,
                           floating eps, int threads):
    """Mean over all elements (denominator size, or 1 when empty) of one elementwise loss."""
    import numpy as np
    cdef Py_ssize_t n = a.shape[0], nb = (n + BLOCK - 1) // BLOCK, k, lo, m
    dt = np.float32 if floating is float else np.float64
    ph_arr = np.zeros(nb, dtype=dt)
    pl_arr = np.zeros(nb, dtype=dt)
    cdef floating[::1] ph = ph_arr, pl = pl_arr
    with nogil:
        for k in prange(nb, num_threads=threads, schedule="static"):
            lo = k * BLOCK
            m = n - lo if n - lo < BLOCK else BLOCK
            if which == 0:
                mse_block(&a[lo], &b[lo], m, &ph[k], &pl[k])
            elif which == 1:
                bce_logits_block(&a[lo], &b[lo], m, &ph[k], &pl[k])
            else:
                bce_block(&a[lo], &b[lo], m, eps, &ph[k], &pl[k])
    return finish(ph, pl, <floating>(n if n > 0 else 1))


# ---------------------------------------------------------------- row losses
# Rows are the last-axis slices: x is viewed as (R, C) C-contiguous.  A target row is
# either probabilities (t != NULL) or one class id k (t == NULL).

# Cross entropy of one logits row: -sum_j t_j log_softmax(z)_j = sum_j t_j (w_j + L),
# w_j = m - z_j >= 0 (m = max z), L = log(sum_j exp(z_j - m)) >= 0, so every term is
# >= 0 and nothing cancels.
# Stability: with k = argmax, exp(z_k - m) = 1 exactly, so L = log1p(sum_{j != k} e_j)
# keeps full relative accuracy when one logit dominates (L << 1), where log(1 + s)
# would round 1 + s first.  The shift is compensated: z_j - m = dh_j + de_j (TwoSum),
# exp(z_j - m) = exp(dh_j) (1 + de_j) to first order; without it exp
# amplifies the subtraction's rounding by |z_j - m| (~40 ulp at z_j - m = -80 in
# float32).  The exps go through vexp on the row buffer.
# Non-finite rows follow the direct formula: m = +inf gives NaN at the inf entries and
# +inf elsewhere (for t_j > 0); all -inf (or a NaN) gives NaN.
cdef void ce_row(const floating *z, const floating *t, int64_t k_id, Py_ssize_t C,
                 floating *dh, floating *ex, floating *de, floating *oh,
                 floating *ol) noexcept nogil:
    cdef floating m = -INFINITY, s = 0, c = 0, sh = 0, sc = 0, L, uh, ul, tj
    cdef Py_ssize_t j, k = 0
    cdef bint has_nan = False
    for j in range(C):
        if z[j] > m:
            m = z[j]
            k = j
        elif isnan(z[j]):
            has_nan = True
    if C == 0:
        oh[0] = 0
        ol[0] = 0
        return
    if isinf(m) and m > 0:
        for j in range(C):
            tj = (1 if j == k_id else 0) if t == NULL else t[j]
            if tj != 0:
                acc(NAN if isinf(z[j]) or isnan(z[j]) else tj * INFINITY, &s, &c)
        oh[0] = s
        ol[0] = c
        return
    for j in range(C):
        dh[j] = two_sum(z[j], -m, &de[j])
    vexp(dh, ex, C)
    for j in range(C):
        if j != k:
            if isfinite(dh[j]):
                # e (1 + de) = e + e de: the rounding of the tiny product e de is
                # ~2**-p of a term that is itself ~2**-p of e, so no fma is needed.
                ex[j] = ex[j] + ex[j] * de[j]
            acc(ex[j], &sh, &sc)
    L = f_log1p(sh + sc) if not has_nan else <floating>NAN
    if m == -INFINITY:
        L = NAN
    for j in range(C):
        if t == NULL:
            if j != k_id:
                continue
            tj = 1
        else:
            tj = t[j]
            if tj == 0:
                continue
        # w_j + L = (-dh_j - de_j) + L as a double-word: TwoSum(-dh_j, L) + (-de_j).
        # A -inf logit has w_j = +inf (de_j is NaN there and is dropped).
        uh = two_sum(-dh[j], L, &ul)
        if isfinite(dh[j]):
            ul = ul - de[j]
        acc_prod(tj, uh, ul, &s, &c)
    oh[0] = s
    ol[0] = c


# -sum t log p' over one row (cross_entropy_probs), clip as in clipped_logs.
cdef void ce_probs_row(const floating *p, const floating *t, int64_t k_id, Py_ssize_t C,
                       floating eps, floating *oh, floating *ol) noexcept nogil:
    cdef floating s = 0, c = 0, l1m, tj
    cdef Py_ssize_t j
    for j in range(C):
        tj = ((1 if j == k_id else 0) if t == NULL else t[j])
        if tj != 0:
            acc_prod(tj, -clipped_logs(p[j], eps, &l1m), 0, &s, &c)
    oh[0] = s
    ol[0] = c


# -sum t log_probs over one row (nll_loss); t = 0 skips even a -inf log-probability.
cdef void nll_row(const floating *lp, const floating *t, int64_t k_id, Py_ssize_t C,
                  floating *oh, floating *ol) noexcept nogil:
    cdef floating s = 0, c = 0, tj
    cdef Py_ssize_t j
    if t == NULL:
        oh[0] = -lp[k_id]
        ol[0] = 0
        return
    for j in range(C):
        tj = t[j]
        if tj != 0:
            acc_prod(tj, -lp[j], 0, &s, &c)
    oh[0] = s
    ol[0] = c


# sum t (log t - lp) over one row (kl_div, xlogy semantics: t = 0 contributes 0, also
# against lp = -inf).  log t - lp is formed exactly from the rounded log t (TwoSum), so
# only log's own rounding enters each term; terms of both signs can cancel here.
cdef void kl_row(const floating *lp, const floating *t, Py_ssize_t C,
                 floating *oh, floating *ol) noexcept nogil:
    cdef floating s = 0, c = 0, tj, dh, dl
    cdef Py_ssize_t j
    for j in range(C):
        tj = t[j]
        if tj != 0:
            dh = two_sum(f_log(tj), -lp[j], &dl)
            acc_prod(tj, dh, dl, &s, &c)
    oh[0] = s
    ol[0] = c


# which: 0 cross_entropy_logits, 1 cross_entropy_probs, 2 nll_loss, 3 kl_div
cdef floating _rows(int which, const floating[::1] x, const floating *t,
                    const int64_t *ids, Py_ssize_t C, floating eps, int threads):
    import numpy as np
    cdef Py_ssize_t R = x.shape[0] // C if C > 0 else 0, r
    cdef Py_ssize_t n_rows = R
    cdef floating *buf
    if C == 0:
        # (..., 0): no classes; every row sums no terms.  The row count still sets
        # the denominator, the total is 0 either way.
        return 0
    dt = np.float32 if floating is float else np.float64
    ph_arr = np.zeros(R, dtype=dt)
    pl_arr = np.zeros(R, dtype=dt)
    cdef floating[::1] ph = ph_arr, pl = pl_arr
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(3 * C * sizeof(floating))
        for r in prange(R, schedule="static"):
            if which == 0:
                ce_row(&x[r * C], (t + r * C) if t != NULL else NULL,
                       ids[r] if ids != NULL else -1, C, buf, buf + C, buf + 2 * C,
                       &ph[r], &pl[r])
            elif which == 1:
                ce_probs_row(&x[r * C], (t + r * C) if t != NULL else NULL,
                             ids[r] if ids != NULL else -1, C, eps, &ph[r], &pl[r])
            elif which == 2:
                nll_row(&x[r * C], (t + r * C) if t != NULL else NULL,
                        ids[r] if ids != NULL else -1, C, &ph[r], &pl[r])
            else:
                kl_row(&x[r * C], t + r * C, C, &ph[r], &pl[r])
        free(buf)
    return finish(ph, pl, <floating>(n_rows if n_rows > 0 else 1))


def rows_fwd(int which,                    # IN  0 ce_logits, 1 ce_probs, 2 nll, 3 kl
             const floating[::1] x,        # IN  scores, flat (R*C)
             const floating[::1] t,        # IN  target rows, flat (R*C)
             Py_ssize_t C,                 # IN  classes (last axis)
             floating eps=0,               # IN  clip bound (ce_probs)
             int threads=1):
    return _rows(which, x, &t[0] if t.shape[0] else NULL, NULL, C, eps, threads)


def rows_ids_fwd(int which,                # IN  0 ce_logits, 1 ce_probs, 2 nll
                 const floating[::1] x,    # IN  scores, flat (R*C)
                 const int64_t[::1] ids,   # IN  class ids (R), validated in [0, C)
                 Py_ssize_t C,             # IN  classes
                 floating eps=0,           # IN  clip bound (ce_probs)
                 int threads=1):
    return _rows(which, x, NULL, &ids[0] if ids.shape[0] else NULL, C, eps, threads)


# ---------------------------------------------------------------- VJPs
# k is the scalar upstream gradient divided by the denominator (g / n or g / m),
# rounded once to the working dtype by the binding.

def mse_vjp(const floating[::1] p,     # IN  pred
            const floating[::1] t,     # IN  target
            floating k,                # IN  2 g / n
            floating[::1] gp,          # OUT d pred = k (p - t)
            floating[::1] gt,          # OUT d target = -d pred
            int threads=1):
    cdef Py_ssize_t i
    with nogil:
        for i in prange(p.shape[0], num_threads=threads, schedule="static"):
            gp[i] = k * (p[i] - t[i])
            gt[i] = -gp[i]


def bce_logits_vjp(const floating[::1] x,   # IN  logits
                   const floating[::1] t,   # IN  targets
                   floating k,              # IN  g / n
                   floating[::1] gx,        # OUT k (sigmoid(x) - t)
                   floating[::1] gt,        # OUT -k x
                   int threads=1):
    cdef Py_ssize_t i
    with nogil:
        for i in prange(x.shape[0], num_threads=threads, schedule="static"):
            gx[i] = k * (sigmoid(x[i]) - t[i])
            gt[i] = -k * x[i]


def bce_vjp(const floating[::1] p,     # IN  probabilities
            const floating[::1] t,     # IN  targets
            floating eps,              # IN  clip bound
            floating k,                # IN  g / n
            floating[::1] gp,          # OUT k (p - t) / (p (1 - p)) inside the clip, else 0
            floating[::1] gt,          # OUT k (log(1 - p') - log p')
            int threads=1):
    cdef Py_ssize_t i
    cdef floating l1m, lp
    with nogil:
        for i in prange(p.shape[0], num_threads=threads, schedule="static"):
            lp = clipped_logs(p[i], eps, &l1m)
            gt[i] = k * (l1m - lp)
            if clip_inside(p[i], eps):
                # 1 - p is exact for p >= 1/2 (Sterbenz); for p < 1/2 it rounds once.
                gp[i] = k * ((p[i] - t[i]) / (p[i] * (1 - p[i])))
            elif isnan(p[i]):
                gp[i] = p[i]
            else:
                gp[i] = 0


# Row-loss VJPs.  gx: gradient of the scores; gt (probability targets only): of the
# targets.  ids != NULL selects one-hot rows.
cdef void ce_row_vjp(const floating *z, const floating *t, int64_t k_id, Py_ssize_t C,
                     floating k, floating *gz, floating *gt, floating *dh,
                     floating *ex) noexcept nogil:
    # d/dz of sum_j t_j (lse - z_j) = softmax * sum(t) - t (catalog 6.1 item 5: no
    # assumption that rows sum to 1); d/dt_j = -log_softmax_j = lse - z_j.
    cdef floating m = -INFINITY, S = 0, St = 0, lse_shift
    cdef Py_ssize_t j
    for j in range(C):
        if z[j] > m or isnan(z[j]):
            m = z[j]
    for j in range(C):
        dh[j] = z[j] - m
    vexp(dh, ex, C)
    for j in range(C):
        S += ex[j]
        St += (1 if j == k_id else 0) if t == NULL else t[j]
    lse_shift = f_log(S)
    for j in range(C):
        gz[j] = k * (ex[j] / S * St - ((1 if j == k_id else 0) if t == NULL else t[j]))
        if t != NULL:
            gt[j] = k * (lse_shift - dh[j])


def ce_logits_vjp(const floating[::1] z,      # IN  logits, flat (R*C)
                  const floating[::1] t,      # IN  target rows (empty with ids)
                  const int64_t[::1] ids,     # IN  class ids (empty with target rows)
                  Py_ssize_t C,               # IN  classes
                  floating k,                 # IN  g / m
                  floating[::1] gz,           # OUT
                  floating[::1] gt,           # OUT (unused with ids)
                  int threads=1):
    cdef Py_ssize_t R = z.shape[0] // C if C > 0 else 0, r
    cdef floating *buf
    cdef bint use_ids = ids.shape[0] > 0
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(2 * C * sizeof(floating))
        for r in prange(R, schedule="static"):
            ce_row_vjp(&z[r * C], NULL if use_ids else &t[r * C],
                       ids[r] if use_ids else -1, C, k, &gz[r * C],
                       NULL if use_ids else &gt[r * C], buf, buf + C)
        free(buf)


def rows_vjp(int which,                   # IN  1 ce_probs, 2 nll, 3 kl
             const floating[::1] x,       # IN  scores, flat
             const floating[::1] t,       # IN  target rows (empty with ids)
             const int64_t[::1] ids,      # IN  class ids (empty with target rows)
             Py_ssize_t C,                # IN  classes
             floating eps,                # IN  clip bound (ce_probs)
             floating k,                  # IN  g / m
             floating[::1] gx,            # OUT
             floating[::1] gt,            # OUT (unused with ids)
             int threads=1):
    cdef Py_ssize_t n = x.shape[0], i
    cdef bint use_ids = ids.shape[0] > 0
    cdef floating tj, lt, l1m
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            if use_ids:
                tj = 1 if ids[i // C] == i % C else 0
            else:
                tj = t[i]
            if which == 1:
                # -t log p' : d/dp = -t / p inside the clip, 0 where it is active;
                # d/dt = -log p'.
                gx[i] = k * (-tj / x[i]) if clip_inside(x[i], eps) else (
                    x[i] if isnan(x[i]) else 0)
                if not use_ids:
                    gt[i] = -k * clipped_logs(x[i], eps, &l1m)
            elif which == 2:
                gx[i] = -k * tj
                if not use_ids:
                    gt[i] = -k * x[i]
            else:
                gx[i] = -k * tj
                # d/dt of t (log t - lp) = log t + 1 - lp; TorchLean's real-number
                # node at t = 0 uses log 0 = 0 and t * t^-1 = 0, giving -lp.
                if tj != 0:
                    lt = f_log(tj)
                    gt[i] = k * ((lt + 1) - x[i])
                else:
                    gt[i] = -k * x[i]
