# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Loss kernels (forward and VJP), float32 and float64.

Design:
a) One fused type (``cython.floating``).  float32 kernels run float32 arithmetic, the
   array ``vexp`` / ``vlog`` of vecmath.h in their float32 form and float32
   accumulators: nothing widens.
b) Speed comes from three rules: (1) transcendental work goes through the branch-free
   array functions ``vexp`` / ``vlog`` on CHUNK-element stack buffers (or a per-thread
   row buffer), never a libm call per element; (2) the per-element loops that form the
   terms are call-free and branch-free (conditions are selects, ``a if c else b`` on
   values already computed), so gcc -O3 vectorises them; fma() is one instruction in
   the AVX2+FMA build (and a correctly rounded libm call elsewhere: same bits, slower);
   (3) the sum runs on LANES independent accumulators (``lanes_add``), which is what
   lets the compiler vectorise a compensated sum at all.
c) Terms.  Every loss is a sum of per-element terms that are >= 0 for in-domain inputs
   (kl_div excepted), so the sum cannot cancel and the result's relative error is at
   most the worst term's relative error plus the summation and division error.  Each
   term is a double-word hi + lo: differences such as 1 - t or m - z by TwoSum (exact),
   products by fma (exact residual).  The rounding left in a term is its transcendental:
   bce_with_logits' log1p(exp(-|x|)) (~1.6 ulp, see bce_logits_chunk), cross entropy's
   log1p of the row sum (libm, once per row), kl_div's log t (vlog, < 0.7 ulp),
   binary_cross_entropy's and cross_entropy_probs' log p' and log1p(-p') (vlog /
   vlog1p of the clipped value, < 0.7 ulp; on the upper clip bound the exact constants
   log1p(-eps), log(eps) are selected instead, see clip_upper).
   Exception: float32 mse_loss rounds p - t once (term error <= 2u, see mse_term).
d) Accumulation order (fixed, independent of the thread count): elementwise losses cut
   the flat input into blocks of BLOCK elements, row losses use one row per partial.
   Inside a partial, terms are dealt round-robin to LANES Sum2 accumulators (Ogita-Rump-
   Oishi: the branch-free form of Neumaier's compensated sum; TwoSum per addition, the
   rounding errors and the terms' lo parts collected in a second accumulator per lane):
   term i goes to lane i mod LANES within its CHUNK.  The lanes are then folded in lane
   order with Sum2, and the partials added in order the same way.  Each Sum2 adds
   ~n u^2 sum|t_i| to its exact partial, so the total is the exact sum of the computed
   terms up to ~1 rounding: bitwise identical for any ``threads``.
e) The mean divides the double-word total (s + c) by n once, with one correction step:
   q = s / n, r = fma(-q, n, s) + c (exact remainder plus the low part), q + r / n.
   n is converted to the working dtype (exact below 2**24 elements/rows in float32).
f) Non-finite totals: once s is +-inf or NaN the compensation holds inf - inf = NaN
   garbage and is dropped: the result is s / n, which follows IEEE propagation.  A term
   has a non-finite lo only when its hi is non-finite, so a lane with a NaN compensation
   always makes the total non-finite too.
g) Zero coefficient: a term t * v with t == 0 is 0 even when v is +-inf or the log of 0
   (TorchLean's 0 * log 0 = 0, and bce_with_logits' (1 - t) * inf at t = 1): selected.
h) ``cdivision=True``: float division by zero follows IEEE (+-inf or NaN), never raises.
"""
import numpy as _np
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.math cimport isnan, isinf, isfinite, INFINITY, NAN
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from ._scalar cimport (f_log, f_log1p, f_abs, f_fma, two_sum)
from ._vecmath cimport (vexp, vlog, vlog1p, vmax as _vmax, vshift as _vshift,
                       vexpsum as _vexpsum)

# Quiet comparisons (C99 isgreater & co.): unlike `a > b` they do not raise FE_INVALID
# on NaN, so under the default -ftrapping-math gcc may turn a select on them into a
# vector blend; with `>` it keeps a branch and the loop stays scalar.
cdef extern from *:
    """
    #define refrt_gt(a, b) __builtin_isgreater((a), (b))
    #define refrt_ge(a, b) __builtin_isgreaterequal((a), (b))
    """
    bint refrt_gt(double a, double b) nogil
    bint refrt_ge(double a, double b) nogil

# Tuning constants
# Elements per partial sum of the elementwise losses: large enough that the partial
# bookkeeping is free, small enough to spread over threads; fixed so the summation
# order never depends on the thread count.
cdef enum:
    BLOCK = 8192
# Elements per stack buffer (vexp / vlog call and one lanes_add): fits L1 with the
# four buffers of bce_with_logits in float64 (16 KiB); a multiple of LANES.
cdef enum:
    CHUNK = 512
# Independent Sum2 accumulators: 16 float32 = two AVX2 registers, 16 float64 = four,
# enough to hide the 4-cycle add latency of the TwoSum chain.
cdef enum:
    LANES = 16


# ---------------------------------------------------------------- scalar helpers

# Sum2 step: s + c accumulates x exactly up to the rounding of c (see Design d).
cdef inline void acc(floating x, floating *s, floating *c) noexcept nogil:
    cdef floating e
    s[0] = two_sum(s[0], x, &e)
    c[0] += e


# One Sum2 lane step with a residual: S + p = s + err exactly (TwoSum), and err plus the
# term's own rounding residual lo go to the lane's error accumulator E.
cdef inline void lane_add(floating p, floating lo, floating *S, floating *E) noexcept nogil:
    cdef floating s = S[0] + p
    cdef floating bb = s - S[0]
    E[0] = E[0] + (((S[0] - (s - bb)) + (p - bb)) + lo)
    S[0] = s


# t * (vh + vl) added to (s, c): t*vh = ph + fma(t, vh, -ph) exactly; t*vl is below
# ulp(ph) and rounds harmlessly.
cdef inline void acc_prod(floating t, floating vh, floating vl, floating *s,
                          floating *c) noexcept nogil:
    cdef floating ph = t * vh
    acc(ph, s, c)
    c[0] += f_fma(t, vh, -ph) + t * vl


# (s + c) / n with one correction step (Design e); non-finite s drops c (Design f).
cdef inline floating mean_dw(floating s, floating c, floating n) noexcept nogil:
    cdef floating q
    if not isfinite(s):
        return s / n
    q = s / n
    return q + (f_fma(-q, n, s) + c) / n


# Sum2 of the double-word terms hi[i] + lo[i], 0 <= i < n, term i into lane i mod LANES
# (the tail of n % LANES terms into the first lanes).  The lane loop has no dependency
# between iterations, so it vectorises; S, E are the caller's stack arrays.
cdef inline void lanes_add(const floating *hi, const floating *lo, Py_ssize_t n,
                           floating *S, floating *E) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % LANES
    cdef floating x, s, bb
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            x = hi[j + l]
            s = S[l] + x
            bb = s - S[l]
            E[l] = E[l] + (((S[l] - (s - bb)) + (x - bb)) + lo[j + l])
            S[l] = s
    for l in range(n - full):
        x = hi[full + l]
        s = S[l] + x
        bb = s - S[l]
        E[l] = E[l] + (((S[l] - (s - bb)) + (x - bb)) + lo[full + l])
        S[l] = s


# Same for single-word terms.
cdef inline void lanes_add1(const floating *hi, Py_ssize_t n, floating *S,
                            floating *E) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % LANES
    cdef floating x, s, bb
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            x = hi[j + l]
            s = S[l] + x
            bb = s - S[l]
            E[l] = E[l] + ((S[l] - (s - bb)) + (x - bb))
            S[l] = s
    for l in range(n - full):
        x = hi[full + l]
        s = S[l] + x
        bb = s - S[l]
        E[l] = E[l] + ((S[l] - (s - bb)) + (x - bb))
        S[l] = s


# One Sum2 step of a single-word term into lane (S, E), for lane loops written inline
# (gcc vectorises these; the lanes_add1 loop inlined into a row kernel stayed scalar).
cdef inline void sum2_lane(floating x, floating *S, floating *E) noexcept nogil:
    cdef floating s = S[0] + x
    cdef floating bb = s - S[0]
    E[0] = E[0] + ((S[0] - (s - bb)) + (x - bb))
    S[0] = s


cdef inline void lanes_zero(floating *S, floating *E) noexcept nogil:
    cdef Py_ssize_t l
    for l in range(LANES):
        S[l] = 0
        E[l] = 0


# lanes_fold over the first nl lanes only: a row of C < LANES terms touches lanes
# 0..C-1, and folding the untouched (+0, +0) lanes changes no bit (s starts at +0 and a
# round-to-nearest sum is never -0 unless both addends are) but is a chain of 16
# dependent Sum2 steps, most of a 10-class row.
cdef inline void lanes_fold_n(const floating *S, const floating *E, Py_ssize_t nl,
                              floating *s, floating *c) noexcept nogil:
    cdef Py_ssize_t l
    s[0] = 0
    c[0] = 0
    for l in range(nl):
        acc(S[l], s, c)
        c[0] += E[l]


# Fold the lanes in lane order into one double-word (s, c).
cdef inline void lanes_fold(const floating *S, const floating *E, floating *s,
                            floating *c) noexcept nogil:
    cdef Py_ssize_t l
    s[0] = 0
    c[0] = 0
    for l in range(LANES):
        acc(S[l], s, c)
        c[0] += E[l]


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


# Clip, vectorised (clipped_logs without the logs): q = max(p, eps) as the input to vlog
# / vlog1p, and whether q sits on the upper bound, q >= 1 - eps in real terms (the
# exact TwoSum test of below_one_minus: q + eps = s + e exactly, and s + e >= 1 iff s > 1
# (then s >= 1 + ulp and |e| <= ulp(s)/2) or s == 1 and e >= 0).  Quiet compares throughout: a NaN p fails
# eps >= p and stays p (NaN reaches the log), and its NaN sum is never "upper".
cdef inline floating clip_low(floating p, floating eps) noexcept nogil:
    return eps if refrt_ge(eps, p) else p


cdef inline bint clip_upper(floating q, floating eps) noexcept nogil:
    cdef floating e, bb
    cdef floating s = q + eps
    bb = s - q
    e = (q - (s - bb)) + (eps - bb)
    return refrt_gt(s, 1) | ((s == 1) & refrt_ge(e, 0))


cdef inline floating finish(const floating[::1] part_h, const floating[::1] part_l,
                            floating n) noexcept nogil:
    cdef floating s = 0, c = 0
    cdef Py_ssize_t b
    for b in range(part_h.shape[0]):
        acc(part_h[b], &s, &c)
        c += part_l[b]
    return mean_dw(s, c, n)


# ---------------------------------------------------------------- elementwise losses
# Each *_chunk fills hi[0:m], lo[0:m] with the terms of m <= CHUNK elements.

# softplus(x) - t x = (x > 0 ? (1 - t) x : -t x) + log1p(exp(-|x|)).  The first part is
# >= 0 for t in [0, 1] in both branches and exp(-|x|) <= 1 never overflows, so no term
# cancels; log1p(exp(-|x|)) underflows gracefully to 0 for large |x|.
# log1p(u), u = exp(-|x|) in [0, 1], from the array log: w = fl(1 + u) and its rounding
# error d = u - (w - 1) are exact (w - 1 by Sterbenz, w in [1, 2]; d is the Fast2Sum
# error of 1 + u), so log1p(u) = log(w (1 + d/w)) = log(w) + d/w - (d/w)^2/2 + ...,
# and (d/w)^2 <= 2**-2p is dropped.  When 1 + u rounds to 1, d = u and the formula gives
# u (log1p(u) = u to working precision there).  Error of this term, in ulps of
# log1p(u): vexp's error (<= 0.54 ulp of u, which log1p does not amplify: its relative
# condition number u / ((1 + u) log1p(u)) is <= 1), vlog's (< 0.7 ulp; log(w) and
# log1p(u) differ by < 1 ulp of the result) and the final addition (0.5): ~1.7 ulp
# worst case, usually far less, and diluted by the exact linear part.  (Goldberg's
# log(w) u / (w - 1) correction costs a division and a product and is bounded by 5u.)
# The linear part is the exact double-word x (ch + cl) with 1 - t = ch + cl (TwoSum).
# Zero coefficient (t = 1 with x = +inf, t = 0 with x = -inf) is selected to 0 (Design
# g); a NaN x still reaches the result through u.
cdef void bce_logits_chunk(const floating *x, const floating *t, Py_ssize_t m,
                           floating *u, floating *w, floating *hi,
                           floating *lo) noexcept nogil:
    cdef floating xi, ti, d, sp, ch, cl, bb, p, pe, s, pos1
    cdef bint zero
    cdef Py_ssize_t j
    for j in range(m):
        u[j] = -f_abs(x[j])
    vexp(u, u, m)
    for j in range(m):
        w[j] = 1 + u[j]
    vlog(w, hi, m)
    for j in range(m):
        xi = x[j]
        ti = t[j]
        d = u[j] - (w[j] - 1)
        sp = hi[j] + d / w[j]
        # [x > 0] - t = ch + cl exactly (TwoSum; for x <= 0 it is -t, cl = 0)
        pos1 = 1 if refrt_gt(xi, 0) else 0
        ch = pos1 - ti
        bb = ch - pos1
        cl = (pos1 - (ch - bb)) + (-ti - bb)
        # Zero coefficient: select x itself to 0 (selecting the product instead lets gcc
        # sink the multiply into a branch, which does not vectorise).
        zero = (ch == 0) & (cl == 0)
        xi = 0 if zero else xi
        p = xi * ch
        pe = f_fma(xi, ch, -p) + xi * cl
        s = p + sp
        bb = s - p
        hi[j] = s
        lo[j] = ((p - (s - bb)) + (sp - bb)) + pe


# (p - t)^2: p - t = dh + dl exactly (TwoSum); d^2 = dh^2 + 2 dh dl + dl^2, where dh^2 =
# sq + fma(dh, dh, -sq) exactly and dl^2 < ulp(dh^2)^2 is dropped.  So each term is
# exact to ~2**-2p and the loss error is the summation's plus the final division's.
# The mse term is fused into the lane loop of lanes_add: terms never go through a buffer
# (the buffer round trip cost ~15%); same lanes and order as lanes_add.
# float64: the exact term above.  float32 drops the TwoSum of p - t (7 of ~18
# flops per element; the float32 loop is flop-bound): d = fl(p - t) = (p - t)(1 + a),
# |a| <= u (and a = 0 when p, t are within a factor 2, Sterbenz), and d^2 = sq + lo
# is still exact (fma), so each term is (p - t)^2 (1 + b), |b| <= 2u + u^2.  The terms
# are >= 0, so the total has relative error <= 2u plus the compensated sum's ~u^2 n and
# the final rounding and division (Design e): <= ~3 ulp worst case against the 4 ulp
# tolerance, and far less on average since the a's of different terms do not align.
cdef inline void mse_term(floating a, floating b, floating *S, floating *E) noexcept nogil:
    cdef floating dh, bb, dl, sq, lo, s
    dh = a - b
    sq = dh * dh
    if floating is float:
        lo = f_fma(dh, dh, -sq)
    else:
        bb = dh - a
        dl = (a - (dh - bb)) + (-b - bb)
        lo = f_fma(dh, dh, -sq) + 2 * dh * dl
    lane_add(sq, lo, S, E)


cdef void mse_block(const floating *p, const floating *t, Py_ssize_t n,
                    floating *oh, floating *ol) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef Py_ssize_t base, m, j, l, full
    lanes_zero(S, E)
    base = 0
    while base < n:
        m = n - base if n - base < CHUNK else CHUNK
        full = m - m % LANES
        for j in range(base, base + full, 16):      # LANES
            for l in range(LANES):
                mse_term(p[j + l], t[j + l], &S[l], &E[l])
        for l in range(m - full):
            mse_term(p[base + full + l], t[base + full + l], &S[l], &E[l])
        base += CHUNK
    lanes_fold(S, E, oh, ol)


cdef void bce_logits_block(const floating *x, const floating *t, Py_ssize_t n,
                           floating *oh, floating *ol) noexcept nogil:
    cdef floating u[512]              # CHUNK
    cdef floating w[512]
    cdef floating hi[512]
    cdef floating lo[512]
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef Py_ssize_t base, m, j
    lanes_zero(S, E)
    base = 0
    while base < n:
        m = n - base if n - base < CHUNK else CHUNK
        bce_logits_chunk(x + base, t + base, m, u, w, hi, lo)
        lanes_add(hi, lo, m, S, E)
        base += CHUNK
    lanes_fold(S, E, oh, ol)


# binary_cross_entropy term -(t log p' + (1 - t) log(1 - p')) into lane (S, E).  q is the
# lower clip max(p, eps) (clip_low), lq = vlog(q), l1q = vlog1p(-q) (-q exact).  On the
# upper bound (clip_upper: q >= 1 - eps in real terms) log p' = log1p(-eps) (= l1) and
# log(1 - p') = log(eps) (= le), both exact in real terms, selected as inputs.
# Both logs are <= 0, so both products are >= 0: t (-log p') with its fma residual,
# and (-log(1 - p')) (uh + ul), 1 - t = uh + ul exactly (TwoSum).  Zero coefficients
# (t = 0, 1 - t = 0) select the log input to 0 (Design g; quiet compares, so a NaN t
# still reaches both products).  The two products are joined by TwoSum into one
# double-word term, so each element costs one Sum2 step.
cdef inline void bce_term(floating tj, floating qj, floating lqj, floating l1qj,
                          floating l1, floating le, floating eps, floating *S,
                          floating *E) noexcept nogil:
    cdef floating a, b, uh, ul, bb, p1, p2, lo, h, s
    cdef bint up = clip_upper(qj, eps)
    a = l1 if up else lqj
    b = le if up else l1qj
    a = -a if refrt_gt(f_abs(tj), 0) else 0
    uh = 1 - tj
    bb = uh - 1
    ul = (1 - (uh - bb)) + (-tj - bb)
    b = -b if (refrt_gt(f_abs(uh), 0) | refrt_gt(f_abs(ul), 0)) else 0
    p1 = tj * a
    p2 = b * uh
    lo = f_fma(tj, a, -p1) + (f_fma(b, uh, -p2) + b * ul)
    h = p1 + p2
    bb = h - p1
    lo = lo + ((p1 - (h - bb)) + (p2 - bb))
    lane_add(h, lo, S, E)


# One BLOCK of binary_cross_entropy: per CHUNK, the branch-free lower clip into q, the
# array logs vlog(q) and vlog1p(-q) (< 0.7 ulp each; the terms are >= 0, so the sum's
# relative error stays the worst term's), then bce_term fused into the 16-lane Sum2
# (term i into lane i mod LANES within its CHUNK, as lanes_add).
cdef void bce_block(const floating *p, const floating *t, Py_ssize_t n, floating eps,
                    floating *oh, floating *ol) noexcept nogil:
    cdef floating q[512]              # CHUNK
    cdef floating nq[512]
    cdef floating lq[512]
    cdef floating l1q[512]
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef floating l1 = f_log1p(-eps), le = f_log(eps)
    cdef Py_ssize_t base, m, j, l, full
    lanes_zero(S, E)
    base = 0
    while base < n:
        m = n - base if n - base < CHUNK else CHUNK
        for j in range(m):
            q[j] = clip_low(p[base + j], eps)
            nq[j] = -q[j]
        vlog(q, lq, m)
        vlog1p(nq, l1q, m)
        full = m - m % LANES
        for j in range(0, full, 16):       # LANES
            for l in range(LANES):
                bce_term(t[base + j + l], q[j + l], lq[j + l], l1q[j + l], l1, le, eps,
                         &S[l], &E[l])
        for l in range(m - full):
            bce_term(t[base + full + l], q[full + l], lq[full + l], l1q[full + l], l1,
                     le, eps, &S[l], &E[l])
        base += CHUNK
    lanes_fold(S, E, oh, ol)


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
# either probabilities (t != NULL) or one class id k (t == NULL).  Row kernels get a
# per-thread buffer of 3 * C elements.

# max of z[0:C], NaN ignored (a NaN reaches the result through exp), -inf when C == 0
# or every entry is -inf/NaN.  LANES running maxima keep the loop vectorisable.
cdef inline floating row_max(const floating *z, Py_ssize_t C) noexcept nogil:
    cdef floating M[16]               # LANES
    cdef floating m = -INFINITY, v
    cdef Py_ssize_t j, l, full = C - C % LANES
    for l in range(LANES):
        M[l] = -INFINITY
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            v = z[j + l]
            M[l] = v if refrt_gt(v, M[l]) else M[l]
    for j in range(full, C):
        m = z[j] if z[j] > m else m
    for l in range(LANES):
        m = M[l] if M[l] > m else m
    return m


# Cross entropy of one logits row: -sum_j t_j log_softmax(z)_j = sum_j t_j (w_j + L),
# w_j = m - z_j >= 0 (m = max z), L = log(sum_j exp(z_j - m)) >= 0, so every term is
# >= 0 and nothing cancels.
# Stability: the max entries contribute exp(0) = 1 exactly, so the compensated row sum
# sh + sc is >= 1 and sh - 1 is exact (Sterbenz for sh < 2; above, sh and 1 are both
# multiples of ulp(sh)); L = log1p((sh - 1) + sc) keeps full relative accuracy when one
# logit dominates (L << 1), where log(sh) would round 1 + s first.  The shift is
# compensated: z_j - m = dh_j + de_j (TwoSum), exp(z_j - m) = exp(dh_j) (1 + de_j) to
# first order; without it exp amplifies the subtraction's rounding by |z_j - m| (~40 ulp
# at z_j - m = -80 in float32).  e (1 + de) = e + e de: the rounding of the tiny product
# e de is ~2**-p of a term that is itself ~2**-p of e, so no fma is needed.  de is
# selected to 0 where it is NaN (z_j = -inf: exp gives 0).
# Non-finite rows: m = +inf takes the direct formula (NaN at the inf entries, +inf
# elsewhere for t_j > 0); a NaN or an all -inf row gives NaN through the arithmetic.
cdef void ce_row_slow(const floating *z, const floating *t, int64_t k_id, Py_ssize_t C,
                 floating *dh, floating *ex, floating *de, floating *oh,
                 floating *ol) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef floating m, s = 0, c = 0, sh, sc, L, tj, a, b, bb, e, uh, ul, p
    cdef Py_ssize_t j
    if C == 0:
        oh[0] = 0
        ol[0] = 0
        return
    m = row_max(z, C)
    if isinf(m) and m > 0:
        for j in range(C):
            tj = (1 if j == k_id else 0) if t == NULL else t[j]
            if tj != 0:
                acc(NAN if isinf(z[j]) or isnan(z[j]) else tj * INFINITY, &s, &c)
        oh[0] = s
        ol[0] = c
        return
    for j in range(C):
        a = z[j]
        b = -m
        sh = a + b
        bb = sh - a
        e = (a - (sh - bb)) + (b - bb)
        dh[j] = sh
        de[j] = e if e == e else 0
    vexp(dh, ex, C)
    for j in range(C):
        ex[j] = ex[j] + ex[j] * de[j]
    lanes_zero(S, E)
    lanes_add1(ex, C, S, E)
    lanes_fold(S, E, &sh, &sc)
    L = f_log1p((sh - 1) + sc)
    if t == NULL:
        # w_k + L = (-dh_k - de_k) + L as a double-word: TwoSum(-dh_k, L) - de_k.
        uh = two_sum(-dh[k_id], L, &ul)
        oh[0] = uh
        ol[0] = ul - de[k_id]
        return
    for j in range(C):
        tj = t[j]
        a = -dh[j]
        uh = a + L
        bb = uh - a
        ul = ((a - (uh - bb)) + (L - bb)) - de[j]
        p = tj * uh
        e = f_fma(tj, uh, -p) + tj * ul
        # t_j = 0 contributes 0, also against a -inf logit (w_j = +inf)
        ex[j] = 0 if tj == 0 else p
        de[j] = 0 if tj == 0 else e
    lanes_zero(S, E)
    lanes_add(ex, de, C, S, E)
    lanes_fold(S, E, oh, ol)


# The softmax-row passes _vmax, _vshift, _vexpsum come from _vecmath.pxd (vecmath.h,
# "softmax rows"): integer-key lane max, exact TwoSum shift (NaN error selected to 0 at
# d = -inf), and the compensated 16-lane sum of exp(d)(1 + e) over the entries below
# the max, whose count is returned separately (each contributes exactly 1).


# Cross entropy term t_j (w_j + L), w_j = -(dh_j + de_j), as a double-word added to lane
# (S, E), fused into the lane loop (no term buffer; same lanes and order as lanes_add).
# The input w_j is selected to 0 where t_j is 0, so 0 * (0 + L) = 0 even against a -inf
# logit, instead of selecting the computed product: a select on a product lets gcc sink
# the multiply into a branch, and the loop stays scalar.  |t_j| > 0 is a quiet compare;
# a NaN t_j still reaches the product.
cdef inline void ce_term(floating tj, floating dhj, floating dej, floating L, floating *S,
                         floating *E) noexcept nogil:
    cdef floating a, uh, bb, ul, p, lo, s
    a = -dhj if refrt_gt(f_abs(tj), 0) else 0
    uh = a + L
    bb = uh - a
    ul = ((a - (uh - bb)) + (L - bb)) - dej
    p = tj * uh
    lo = f_fma(tj, uh, -p) + tj * ul
    lane_add(p, lo, S, E)


# Fast cross entropy row (finite max, no NaN): the same terms as ce_row_slow, with the
# row passes of vecmath.h.  L = log(cnt + S') = log1p((cnt - 1) + S'), cnt >= 1 the
# number of entries equal to the max (exact small integer), S' the compensated sum of
# the others: cnt - 1 + S' by TwoSum, so L keeps full relative accuracy when L << 1.
# Probability targets: ce_term fused into the lane loop.
cdef void ce_row(const floating *z, const floating *t, int64_t k_id, Py_ssize_t C,
                 floating *dh, floating *ex, floating *de, floating *oh,
                 floating *ol) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef floating sums[3]
    cdef floating m, L, uh, ul, s, err
    cdef Py_ssize_t j, l, full
    if C == 0:
        oh[0] = 0
        ol[0] = 0
        return
    m = _vmax(z, C)
    if not isfinite(m):
        ce_row_slow(z, t, k_id, C, dh, ex, de, oh, ol)
        return
    _vshift(z, C, m, dh, de)
    vexp(dh, ex, C)
    _vexpsum(z, C, m, de, ex, sums)
    if isnan(sums[0]):                 # a NaN logit the key max skipped
        ce_row_slow(z, t, k_id, C, dh, ex, de, oh, ol)
        return
    s = two_sum(sums[2] - 1, sums[0], &err)
    L = f_log1p(s + (err + sums[1]))
    if t == NULL:
        # w_k + L = (-dh_k - de_k) + L as a double-word: TwoSum(-dh_k, L) - de_k.
        uh = two_sum(-dh[k_id], L, &ul)
        oh[0] = uh
        ol[0] = ul - de[k_id]
        return
    full = C - C % LANES
    lanes_zero(S, E)
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            ce_term(t[j + l], dh[j + l], de[j + l], L, &S[l], &E[l])
    for l in range(C - full):
        ce_term(t[full + l], dh[full + l], de[full + l], L, &S[l], &E[l])
    lanes_fold(S, E, oh, ol)


# Short rows (C <= SHORT_C, e.g. 256 x 10): ce_row's four row passes cost ~40 ns each
# in call and lane set-up, more than the work on 10 logits.  A block of rows (<=
# SHORT_BLOCK logits) is shifted in one scalar loop (TwoSum per entry, as _vshift),
# exponentiated by ONE vexp call, then each row is summed with a single Sum2 lane and
# its terms added with ce_term: the same formulas and error budget as ce_row, only the
# summation order of S' and of the terms differs (index order within the row).  Rows
# with a non-finite max or a NaN go to ce_row_slow as in ce_row.
cdef enum:
    SHORT_C = 32
    SHORT_BLOCK = 2048


cdef void ce_short_block(const floating *z, const floating *t, const int64_t *ids,
                         Py_ssize_t R, Py_ssize_t C, floating *buf, floating *ph,
                         floating *pl) noexcept nogil:
    cdef Py_ssize_t i, j, k = R * C
    cdef floating *dh = buf
    cdef floating *de = buf + k
    cdef floating *ex = buf + 2 * k
    cdef floating *ms = buf + 3 * k
    cdef floating m, s, bb, hi, lo, cnt, err, L, v, uh, ul
    cdef floating S[1]
    cdef floating E[1]
    cdef const floating *zi
    cdef const floating *ti
    cdef int64_t kid
    for i in range(R):
        zi = z + i * C
        m = zi[0]
        for j in range(1, C):
            if zi[j] > m:
                m = zi[j]
        ms[i] = m
        for j in range(C):
            s = zi[j] - m
            bb = s - zi[j]
            dh[i * C + j] = s
            de[i * C + j] = 0 if isinf(s) or not isfinite(m) else (zi[j] - (s - bb)) + (-m - bb)
    vexp(dh, ex, k)
    for i in range(R):
        zi = z + i * C
        ti = (t + i * C) if t != NULL else NULL
        kid = ids[i] if ids != NULL else -1
        m = ms[i]
        hi = 0
        lo = 0
        cnt = 0
        if isfinite(m):
            for j in range(C):
                v = ex[i * C + j] + ex[i * C + j] * de[i * C + j]
                if zi[j] == m:
                    cnt = cnt + 1
                else:
                    s = hi + v
                    bb = s - hi
                    lo = lo + ((hi - (s - bb)) + (v - bb))
                    hi = s
        if not isfinite(m) or isnan(hi):
            ce_row_slow(zi, ti, kid, C, dh + i * C, ex + i * C, de + i * C, &ph[i], &pl[i])
            continue
        s = two_sum(cnt - 1, hi, &err)
        L = f_log1p(s + (err + lo))
        if ti == NULL:
            uh = two_sum(-dh[i * C + kid], L, &ul)
            ph[i] = uh
            pl[i] = ul - de[i * C + kid]
            continue
        S[0] = 0
        E[0] = 0
        for j in range(C):
            ce_term(ti[j], dh[i * C + j], de[i * C + j], L, &S[0], &E[0])
        ph[i] = S[0]
        pl[i] = E[0]


# nll_loss term t (-lp) as a double-word added to lane (S, E): p = t (-lp) rounded,
# fma(t, -lp, -p) its exact residual, both into the Sum2 lane (same lanes and order as
# lanes_add).  t = 0 contributes 0, also against lp = -inf or NaN: the input -lp is
# selected to 0 there (a select on the product would keep the loop scalar, see ce_term);
# |t| > 0 is a quiet compare, so a NaN t still reaches the product.
cdef inline void nll_term(floating tj, floating lpj, floating *S,
                          floating *E) noexcept nogil:
    cdef floating a, p, lo, s, bb
    a = -lpj if refrt_gt(f_abs(tj), 0) else 0
    p = tj * a
    lo = f_fma(tj, a, -p)
    lane_add(p, lo, S, E)


# -sum t log_probs over one row (nll_loss): a dot product of the target and log-prob rows,
# call- and branch-free so it vectorises; term j into lane j mod LANES.
cdef void nll_row(const floating *lp, const floating *t, int64_t k_id, Py_ssize_t C,
                  floating *oh, floating *ol) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef Py_ssize_t j, l, full = C - C % LANES
    if t == NULL:
        oh[0] = -lp[k_id]
        ol[0] = 0
        return
    lanes_zero(S, E)
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            nll_term(t[j + l], lp[j + l], &S[l], &E[l])
    for l in range(C - full):
        nll_term(t[full + l], lp[full + l], &S[l], &E[l])
    lanes_fold_n(S, E, C if C < LANES else LANES, oh, ol)


# cross_entropy_probs term t (-log p') into lane (S, E): log p' is lq (vlog of the lower
# clip) or, on the upper bound, l1 = log1p(-eps) = log(1 - eps) exactly in real terms.
# Both are inputs of the select; t = 0 selects the input 0 (see nll_term).
cdef inline void ce_probs_term(floating tj, floating qj, floating lqj, floating l1,
                               floating eps, floating *S, floating *E) noexcept nogil:
    cdef floating a
    a = l1 if clip_upper(qj, eps) else lqj
    nll_term(tj, a, S, E)


# -sum t log p' over one row (cross_entropy_probs), clip as in clipped_logs.  The clipped
# values go through vlog on the row buffer q (< 0.7 ulp, vs libm's ~0.5: the terms are
# >= 0, so the row sum's relative error stays the worst term's plus the compensated
# sum's), then the terms are fused into the 16-lane Sum2 loop.
cdef void ce_probs_row(const floating *p, const floating *t, int64_t k_id, Py_ssize_t C,
                       floating eps, floating *q, floating *lq, floating *oh,
                       floating *ol) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef floating l1m, l1
    cdef Py_ssize_t j, l, full = C - C % LANES
    if t == NULL:
        oh[0] = -clipped_logs(p[k_id], eps, &l1m)
        ol[0] = 0
        return
    for j in range(C):
        q[j] = clip_low(p[j], eps)
    vlog(q, lq, C)
    l1 = f_log1p(-eps)
    lanes_zero(S, E)
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            ce_probs_term(t[j + l], q[j + l], lq[j + l], l1, eps, &S[l], &E[l])
    for l in range(C - full):
        ce_probs_term(t[full + l], q[full + l], lq[full + l], l1, eps, &S[l], &E[l])
    lanes_fold(S, E, oh, ol)


# kl_div term t (log t - lp) as a double-word, added to lane (S, E) (xlogy semantics: t = 0
# contributes 0, also against lp = -inf).  lt = log t comes from vlog on the row
# (< 0.7 ulp); log t - lp is formed exactly from it (TwoSum) and the product by fma, so
# only log's own rounding enters each term; terms of both signs can cancel here
# (inherent to kl_div).  Inputs are selected, not products (see ce_row): log t -> 0 (it
# is -inf at t = 0) and lp -> 0 where t = 0, so the term is 0 * (0 - 0) = 0.  |t| > 0 is
# a quiet compare; a NaN t still reaches the product.
cdef inline void kl_term(floating tj, floating ltj, floating lpj, floating *S,
                         floating *E) noexcept nogil:
    cdef floating a, b, dh, bb, dl, p, lo, s
    cdef bint live = refrt_gt(f_abs(tj), 0)
    a = ltj if live else 0
    b = -lpj if live else 0
    dh = a + b
    bb = dh - a
    dl = (a - (dh - bb)) + (b - bb)
    p = tj * dh
    lo = f_fma(tj, dh, -p) + tj * dl
    lane_add(p, lo, S, E)


# sum t (log t - lp) over one row: vlog of the target row, then the terms fused into the
# lane sum (no term buffer: same lanes and order as lanes_add, term j into lane j mod
# LANES), as mse_block does.
cdef void kl_row(const floating *lp, const floating *t, Py_ssize_t C, floating *lt,
                 floating *oh, floating *ol) noexcept nogil:
    vlog(t, lt, C)
    kl_row_terms(lp, t, C, lt, oh, ol)


# The lane sum of kl_row on lt = log t already computed (the short-row path takes the
# logs of a block of rows in one vlog call).
cdef void kl_row_terms(const floating *lp, const floating *t, Py_ssize_t C,
                       const floating *lt, floating *oh, floating *ol) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef Py_ssize_t j, l, full = C - C % LANES
    lanes_zero(S, E)
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            kl_term(t[j + l], lt[j + l], lp[j + l], &S[l], &E[l])
    for l in range(C - full):
        kl_term(t[full + l], lt[full + l], lp[full + l], &S[l], &E[l])
    lanes_fold_n(S, E, C if C < LANES else LANES, oh, ol)


cdef void kl_short_block(const floating *lp, const floating *t, Py_ssize_t rows,
                         Py_ssize_t C, floating *lt, floating *oh,
                         floating *ol) noexcept nogil:
    cdef Py_ssize_t i
    vlog(t, lt, rows * C)
    for i in range(rows):
        kl_row_terms(lp + i * C, t + i * C, C, lt + i * C, &oh[i], &ol[i])


# which: 0 cross_entropy_logits, 1 cross_entropy_probs, 2 nll_loss, 3 kl_div
cdef floating _rows(int which, const floating[::1] x, const floating *t,
                    const int64_t *ids, Py_ssize_t C, floating eps, int threads):
    cdef Py_ssize_t R = x.shape[0] // C if C > 0 else 0, r
    cdef Py_ssize_t n_rows = R
    cdef floating *buf
    if C == 0:
        # (..., 0): no classes; every row sums no terms.  The row count still sets
        # the denominator, the total is 0 either way.
        return 0
    # one work array for the per-row double words (an import and two allocations per
    # call were a visible part of a 256 x 10 call)
    work = _np.zeros((2, R), dtype=_np.float32 if floating is float else _np.float64)
    cdef floating[::1] ph = work[0], pl = work[1]
    cdef Py_ssize_t b, nb, per
    if which == 0 and C <= SHORT_C:
        per = max(1, SHORT_BLOCK // C)         # rows per block
        nb = (R + per - 1) // per
        with nogil, parallel(num_threads=threads, use_threads_if=R * C > 32768):
            buf = <floating *> malloc((3 * per * C + per) * sizeof(floating))
            if buf != NULL:
                for b in prange(nb, schedule="static"):
                    ce_short_block(&x[b * per * C], (t + b * per * C) if t != NULL else NULL,
                                   (ids + b * per) if ids != NULL else NULL,
                                   min(per, R - b * per), C, buf, &ph[b * per], &pl[b * per])
                free(buf)
        return finish(ph, pl, <floating>(n_rows if n_rows > 0 else 1))
    if which == 3 and C <= SHORT_C and t != NULL:
        # short kl_div rows: one vlog per block of rows (a vlog call per 10-entry row
        # costs more than its work), then the same lane sums as kl_row: same bits
        per = max(1, SHORT_BLOCK // C)
        nb = (R + per - 1) // per
        with nogil, parallel(num_threads=threads, use_threads_if=R * C > 32768):
            buf = <floating *> malloc(per * C * sizeof(floating))
            if buf != NULL:
                for b in prange(nb, schedule="static"):
                    kl_short_block(&x[b * per * C], t + b * per * C, min(per, R - b * per),
                                   C, buf, &ph[b * per], &pl[b * per])
                free(buf)
        return finish(ph, pl, <floating>(n_rows if n_rows > 0 else 1))
    with nogil, parallel(num_threads=threads, use_threads_if=R * C > 32768):
        buf = <floating *> malloc(3 * C * sizeof(floating))
        for r in prange(R, schedule="static"):
            if which == 0:
                ce_row(&x[r * C], (t + r * C) if t != NULL else NULL,
                       ids[r] if ids != NULL else -1, C, buf, buf + C, buf + 2 * C,
                       &ph[r], &pl[r])
            elif which == 1:
                ce_probs_row(&x[r * C], (t + r * C) if t != NULL else NULL,
                             ids[r] if ids != NULL else -1, C, eps, buf, buf + C,
                             &ph[r], &pl[r])
            elif which == 2:
                nll_row(&x[r * C], (t + r * C) if t != NULL else NULL,
                        ids[r] if ids != NULL else -1, C, &ph[r], &pl[r])
            else:
                kl_row(&x[r * C], t + r * C, C, buf, &ph[r], &pl[r])
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


# d/dx = k (sigmoid(x) - t) without cancellation.  With e = exp(-|x|) <= 1 (never
# overflows; from vexp on a stack buffer):
#   x >= 0: sigmoid(x) = 1 / (1 + e), so sigmoid(x) - t = ((1 - t) - t e) / (1 + e);
#   x < 0:  sigmoid(x) = e / (1 + e), so sigmoid(x) - t = (e (1 - t) - t) / (1 + e);
# each numerator one fma of 1 - t (exact for t >= 1/2 by Sterbenz, else one rounding
# of an exact input), so a large logit with t = 1 gives -e / (1 + e) to full relative
# accuracy; the former 1 / (1 + e) - t cancelled (609 ulp in float64 on targets near 1,
# 38 ulp at x ~ 30).  The cancellation left is the problem's own (sigmoid(x) close to a
# soft t).  x = +-inf: e = 0 gives 1 - t and -t, the limits.  Both numerators are
# computed and one selected, so the loop stays branch-free and vectorises.
cdef void bce_logits_vjp_chunk(const floating *x, const floating *t, Py_ssize_t m,
                               floating k, floating *gx, floating *gt) noexcept nogil:
    cdef floating e[512]              # CHUNK
    cdef floating xi, tj, omt, num
    cdef Py_ssize_t j
    for j in range(m):
        e[j] = -f_abs(x[j])
    vexp(e, e, m)
    for j in range(m):
        xi = x[j]
        tj = t[j]
        omt = 1 - tj
        num = f_fma(-tj, e[j], omt) if refrt_ge(xi, 0) else f_fma(e[j], omt, -tj)
        num = num if not isnan(xi) else xi
        gx[j] = k * (num / (1 + e[j]))
        gt[j] = -k * xi


def bce_logits_vjp(const floating[::1] x,   # IN  logits
                   const floating[::1] t,   # IN  targets
                   floating k,              # IN  g / n
                   floating[::1] gx,        # OUT k (sigmoid(x) - t)
                   floating[::1] gt,        # OUT -k x
                   int threads=1):
    cdef Py_ssize_t n = x.shape[0], nb = (n + CHUNK - 1) // CHUNK, b, lo
    with nogil:
        for b in prange(nb, num_threads=threads, schedule="static"):
            lo = b * CHUNK
            bce_logits_vjp_chunk(&x[lo], &t[lo], n - lo if n - lo < CHUNK else CHUNK, k,
                                 &gx[lo], &gt[lo])


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
#
# Cross entropy, d/dz_j of sum_j t_j (lse - z_j) = p_j sum(t) - t_j (catalog 6.1 item 5:
# no assumption that rows sum to 1), p = softmax(z); d/dt_j = lse - z_j.  Stable form
# (issue 9, reproducer 4: the former fma(e_j, sum(t)/S, -t_j) was 7e8 ulp off in float32
# and 3e11 in float64 with one logit 30 above the rest):
#   * a = the first argmax, m = z_a; z_j - m = d_j + de_j exactly (TwoSum) and
#     e_j = exp(z_j - m) = exp(d_j) (1 + de_j) (fma; as _scalar.exp_diff): without the
#     correction exp amplifies the subtraction's rounding by |d_j| (600 ulp at d = -600
#     in float64, the "uniform in +-300" rows), so tiny p_j keep their relative accuracy.
#   * R = sum_{j != a} e_j (compensated), S = 1 + R, so p_a = 1 / S and
#       p_a sum(t) - t_a = (T' - t_a R) / S,   T' = sum_{j != a} t_j,
#     which has no cancellation for a one-hot target on a (T' = 0: -R / S, the identity
#     p_a - 1 = -sum_{j != a} p_j); for soft targets T' - t_a R is one fma, and what
#     cancellation is left is the problem's own (p_a sum(t) close to t_a).
#   * j != a: fma(e_j, q, -t_j), q = sum(t) / S (the same as before: p_j <= 1/2 there,
#     and p_j sum(t) - t_j cancels only where the exact values do).
#   * d/dt_j = log1p(R) - d_j - de_j: log1p keeps lse - m = log(1 + R) accurate when R is
#     tiny (log(fl(1 + R)) lost it all: the dominant class' target gradient).
# Rows whose max is not finite (+inf, NaN, all -inf): see the special-row comment below.
# Passes: key max; shift (TwoSum); vexp; correction; the Sum2 of the exps and of t in
# one lane loop (exps S, E; targets T, F), e_a excluded; output.
cdef void ce_row_vjp(const floating *z, const floating *t, int64_t k_id, Py_ssize_t C,
                     floating k, floating *gz, floating *gt, floating *dh,
                     floating *ex, floating *de) noexcept nogil:
    cdef floating S[16]               # LANES
    cdef floating E[16]
    cdef floating T[16]
    cdef floating F[16]
    cdef floating m, sh, sc, St = 1, lse_shift, tj, q, e, R, Tp, ta, Sd
    cdef Py_ssize_t j, l, a = 0, full = C - C % LANES
    cdef bint finite_max
    m = _vmax(z, C)
    finite_max = isfinite(m)
    for j in range(C):
        dh[j] = two_sum(z[j], -m, &e)
        de[j] = e if refrt_gt(f_abs(e), -1) else 0      # NaN (from inf) -> 0
    vexp(dh, ex, C)
    if finite_max:
        for j in range(C):
            if z[j] == m:
                a = j
                break
        for j in range(C):
            ex[j] = f_fma(ex[j], de[j], ex[j])
        ex[a] = 0                      # excluded from R; restored below
    lanes_zero(S, E)
    if t == NULL:
        for j in range(0, full, 16):           # LANES
            for l in range(LANES):
                sum2_lane(ex[j + l], &S[l], &E[l])
    else:
        lanes_zero(T, F)
        for j in range(0, full, 16):           # LANES
            for l in range(LANES):
                sum2_lane(ex[j + l], &S[l], &E[l])
                sum2_lane(t[j + l], &T[l], &F[l])
        for l in range(C - full):
            sum2_lane(t[full + l], &T[l], &F[l])
        lanes_fold(T, F, &St, &sc)
    for l in range(C - full):
        sum2_lane(ex[full + l], &S[l], &E[l])
    lanes_fold(S, E, &sh, &sc)
    if not finite_max:
        # Design of the special rows (as softmax's): a +inf logit makes softmax, hence
        # d/dz, undefined (NaN); d/dt_j = lse - z_j = +inf - z_j is +inf for z_j < inf
        # and NaN where z_j = +inf.  A NaN logit or an all -inf row (lse = -inf - -inf):
        # NaN throughout.
        for j in range(C):
            gz[j] = NAN
            if t != NULL:
                gt[j] = k * INFINITY if (m == INFINITY and z[j] != m) else NAN
        return
    R = sh + sc
    ex[a] = 1
    Sd = 1 + R
    lse_shift = f_log1p(R)
    if t == NULL:
        ta = 1 if a == k_id else 0
        Tp = 1 - ta
        St = 1
    else:
        lanes_fold(T, F, &St, &sc)
        ta = t[a]
        Tp = (St - ta) + sc            # sum_{j != a} t_j
        St = St + sc
    q = St / Sd
    if t == NULL:
        for j in range(C):
            tj = 1 if j == k_id else 0
            gz[j] = k * f_fma(ex[j], q, -tj)
    else:
        for j in range(C):
            gz[j] = k * f_fma(ex[j], q, -t[j])
            gt[j] = k * ((lse_shift - dh[j]) - de[j])
    gz[a] = k * (f_fma(-ta, R, Tp) / Sd)


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
        buf = <floating *> malloc(3 * C * sizeof(floating))
        for r in prange(R, schedule="static"):
            ce_row_vjp(&z[r * C], NULL if use_ids else &t[r * C],
                       ids[r] if use_ids else -1, C, k, &gz[r * C],
                       NULL if use_ids else &gt[r * C], buf, buf + C, buf + 2 * C)
        free(buf)


# kl_div row VJP: d/dlp = -k t; d/dt of t (log t - lp) = log t + 1 - lp, and TorchLean's
# real-number node at t = 0 uses log 0 = 0 and t * t^-1 = 0, giving -lp.  log t comes
# from vlog on the row (lt is a C-element work buffer); the t = 0 case selects the
# input -0.0 in place of log t + 1 (-0 - lp = -lp exactly, with -k lp's zero sign), so
# the loop is call- and branch-free and vectorises.
cdef void kl_row_vjp(const floating *lp, const floating *t, Py_ssize_t C, floating k,
                     floating *glp, floating *gt, floating *lt) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating tj, a
    vlog(t, lt, C)
    for j in range(C):
        tj = t[j]
        a = (lt[j] + 1) if refrt_gt(f_abs(tj), 0) else -0.0
        glp[j] = -k * tj
        gt[j] = k * (a - lp[j])


# nll_loss (which 2) and cross_entropy_probs (which 1) row VJPs; t == NULL: one-hot k_id.
cdef void rows_vjp_row(int which, const floating *x, const floating *t, int64_t k_id,
                       Py_ssize_t C, floating eps, floating k, floating *gx,
                       floating *gt) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating tj, l1m
    if which == 2:
        if t == NULL:
            for j in range(C):
                gx[j] = -k * 0
            gx[k_id] = -k
        else:
            for j in range(C):
                gx[j] = -k * t[j]
                gt[j] = -k * x[j]
        return
    for j in range(C):
        tj = ((1 if j == k_id else 0) if t == NULL else t[j])
        # -t log p' : d/dp = -t / p inside the clip, 0 where it is active;
        # d/dt = -log p'.
        gx[j] = k * (-tj / x[j]) if clip_inside(x[j], eps) else (
            x[j] if isnan(x[j]) else 0)
        if t != NULL:
            gt[j] = -k * clipped_logs(x[j], eps, &l1m)


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
    cdef Py_ssize_t R = x.shape[0] // C if C > 0 else 0, r
    cdef bint use_ids = ids.shape[0] > 0
    cdef floating *buf
    if R == 0:
        return
    with nogil, parallel(num_threads=threads):
        buf = <floating *> malloc(C * sizeof(floating)) if which == 3 else NULL
        for r in prange(R, schedule="static"):
            if which == 3:
                kl_row_vjp(&x[r * C], &t[r * C], C, k, &gx[r * C], &gt[r * C], buf)
            else:
                rows_vjp_row(which, &x[r * C], NULL if use_ids else &t[r * C],
                             ids[r] if use_ids else -1, C, eps, k, &gx[r * C],
                             NULL if use_ids else &gt[r * C])
        free(buf)
