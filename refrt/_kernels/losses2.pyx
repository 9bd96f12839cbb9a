# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Pairwise regression losses (forward and VJP), float32 and float64: l1 (MAE), Huber,
smooth L1, log-cosh, hinge and Poisson (log input).  Each is TorchLean's
sum(term(p, t)) / meanDenom (the size, 1 when empty).

Design:
a) One fused type (``cython.floating``); float32 runs float32 arithmetic and float32 libm
   (``expf``, ``log1pf``, ``sinhf``) with float32 accumulators: nothing widens.
b) Terms are double words hi + lo: p - t by TwoSum (exact), products by TwoProd (fma),
   so the rounding left in a term is its one transcendental (log-cosh's sinh/log1p,
   Poisson's exp).  Every term but Poisson's is >= 0, so the sum cannot cancel.
c) Accumulation: the flat input is cut into blocks of BLOCK elements (the partials, in a
   ``prange``); inside a block the terms are added in order with Neumaier-style Sum2
   (TwoSum, the errors and the terms' lo parts in a second accumulator), and the
   partials are then folded in order the same way: the order never depends on the
   thread count, so results are bitwise identical for any ``threads``.
d) The mean divides the double-word total (s + c) by n once with a correction step
   (q = s / n; q + (fma(-q, n, s) + c) / n).  A non-finite total drops c (which then
   holds inf - inf garbage) and follows IEEE propagation: s / n.
f) Overflow rescue.  Finite inputs can give a non-finite total although the exact mean is
   finite (huber_loss of +-max entries: |p - t| overflows, the mean of the row does not;
   Poisson's exp(p) = +inf against t p = -inf gives inf - inf = NaN).  When the fast
   total is non-finite and every input is finite, `_rescue` redoes the sum exactly: each
   term goes into the wide superaccumulator of superacc.h as pieces x 2^e; a term that
   overflows is recomputed on inputs scaled by 2^-K (K = 64 / 512, exact: such a term has
   max(|p|, |t|) >= 2^62, so a smaller input's underflow is far below the term's ulp)
   using homogeneity (degree 1: l1, smooth L1, log-cosh's a - ln 2, whose ln 2 is below
   2^-K a's ulp; degree 2: Huber, hinge's 1 - p t), Poisson's exp(p) = v^2 with
   v = exp(p / 2) split exactly by frexp/fma and t p by an exact TwoProd on frexp
   mantissas.  S / n is then S rounded once to 53 bits, divided by n (<= 1 ulp; float32
   rounds that double once more, the integer superaccumulator has no float32 form).
   A Poisson term whose exp(p / 2) overflows is > 2^2046 / 2^254: +inf.
e) Parameters (delta, beta) arrive as doubles already rounded to the input dtype by
   ``refrt._prepare`` (exact casts).  VJPs receive k = g / n rounded once by the binding.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, NAN, INFINITY
from libc.float cimport FLT_MIN, DBL_MIN
from ._scalar cimport (f_exp, f_log1p, f_sinh, f_tanh, f_abs, f_fma, two_sum, exp_diff, f_expm1,
                      f_ldexp, f_frexp)
from libc.stdint cimport int64_t


# The exact wide superaccumulator of superacc.h (bit 0 at 2^-(1074 + WOFF), room for n
# terms up to 2^2048) and its rounding, for the overflow rescue of `loss_fwd` (Design f).
cdef extern from "superacc.h" nogil:
    """
    /* S / n for the wide digits d: S rounded once to 53 bits (M 2^L), then M / n and the
     * scale 2^(L - 1074 - WOFF), which overflows to inf as IEEE does. */
    static inline double refrt_wide_mean(int64_t *d, double n) {
        int L, neg;
        uint64_t M;
        double v;
        refrt_sa_carry(d, REFRT_SA_WCHUNKS);
        neg = d[REFRT_SA_WCHUNKS - 1] < 0;
        if (neg) refrt_sa_negate(d, REFRT_SA_WCHUNKS);
        M = refrt_sa_round(d, REFRT_SA_WCHUNKS, 53, 0, &L);
        v = ldexp((double)M / n, L - 1074 - REFRT_SA_WOFF);
        return neg ? -v : v;
    }
    """
    enum: REFRT_SA_WCHUNKS
    void refrt_sa_wide_add(int64_t *d, double x, int e)
    void refrt_sa_carry(int64_t *c, int nc)
    double refrt_wide_mean(int64_t *d, double n)


cdef enum:
    L1, HUBER, SMOOTH_L1, LOG_COSH, HINGE, POISSON

CODES = dict(l1_loss=L1, huber_loss=HUBER, smooth_l1_loss=SMOOTH_L1, log_cosh_loss=LOG_COSH,
             hinge_loss=HINGE, poisson_nll_loss=POISSON)

cdef enum:
    BLOCK = 8192

# ln 2 as hi + lo (mpmath, 300 bits) for the log-cosh tail; LOGCOSH_CUT see `_log_cosh`.
cdef extern from *:
    """
    static const double REFRT_LN2_HI_D = 0.6931471805599453;
    static const double REFRT_LN2_LO_D = 2.3190468138462996e-17;
    static const float REFRT_LN2_HI_F = 0.6931471824645996f;
    static const float REFRT_LN2_LO_F = -1.9046542121259336e-09f;
    static const double REFRT_LOGCOSH_CUT = 2.0;
    """
    const double LN2_HI_D "REFRT_LN2_HI_D"
    const double LN2_LO_D "REFRT_LN2_LO_D"
    const float LN2_HI_F "REFRT_LN2_HI_F"
    const float LN2_LO_F "REFRT_LN2_LO_F"
    const double LOGCOSH_CUT "REFRT_LOGCOSH_CUT"


# ---- scalar helpers -----------------------------------------------------------------

# |p - t| as a double word: TwoSum gives p - t = dh + dl exactly; the sign of dh is the
# sign of the difference (|dl| <= ulp(dh)/2), so |d| = sgn(dh) (dh + dl).
cdef inline floating _absdiff(floating p, floating t, floating *lo) noexcept nogil:
    cdef floating dl
    cdef floating dh = two_sum(p, -t, &dl)
    if dh < 0:
        lo[0] = -dl
        return -dh
    lo[0] = dl
    return dh


# d^2 for d = ah + al: ah^2 = sq + fma(ah, ah, -sq) exactly, plus 2 ah al (al^2 dropped:
# below ulp(sq) * eps).
cdef inline floating _sq(floating ah, floating al, floating *lo) noexcept nogil:
    cdef floating sq = ah * ah
    lo[0] = f_fma(ah, ah, -sq) + 2 * ah * al
    return sq


# c (ah + al) as a double word (TwoProd of c * ah plus c * al).
cdef inline floating _scale_dw(floating c, floating ah, floating al, floating *lo) noexcept nogil:
    cdef floating ph = c * ah
    lo[0] = f_fma(c, ah, -ph) + c * al
    return ph


# (ah + al) - c as a double word (TwoSum).
cdef inline floating _sub_dw(floating ah, floating al, floating c, floating *lo) noexcept nogil:
    cdef floating e
    cdef floating s = two_sum(ah, -c, &e)
    lo[0] = e + al
    return s


# log cosh(d), a = |d| = ah + al.
# Small |d| (a < LOGCOSH_CUT = 2): cosh d = 1 + 2 sinh^2(d/2), so
#   log cosh d = log1p(2 sinh^2(a/2)),
# which has no subtraction (the textbook tail form below cancels to ~d^2/2 for small d:
# at d = 1e-3 it loses 11 bits).  sinh(a/2) with a/2 exact, its low part corrected by
# the derivative cosh(a/2) al/2 ~ al/2; the square by TwoProd; log1p's relative
# condition number v / ((1 + v) log1p(v)) is <= 1, so sinh's rounding comes through at
# most doubled.
# Large |d|: cosh d = e^a (1 + e^-2a) / 2, so log cosh d = (a - ln 2) + log1p(e^-2a):
# a - ln 2 >= 1.3 is a double word (TwoSum with ln 2 = hi + lo) and the correction
# log1p(e^-2a) <= 0.018 carries its ~1 ulp at 1/70 of the result; e^-2a <= 1 never
# overflows, so a = inf gives inf.
cdef inline floating _log_cosh(floating ah, floating al, floating *lo) noexcept nogil:
    cdef floating s, sl, v, vl, w, e
    if ah < LOGCOSH_CUT:
        s = f_sinh(ah * <floating>0.5)
        sl = al * <floating>0.5
        v = 2 * s * s
        vl = f_fma(2 * s, s, -v) + 4 * s * sl
        w = f_log1p(v)
        lo[0] = vl / (1 + v)
        return w
    if floating is float:
        w = two_sum(ah, -LN2_HI_F, &e)
        e = e + (al - LN2_LO_F)
    else:
        w = two_sum(ah, -LN2_HI_D, &e)
        e = e + (al - LN2_LO_D)
    v = f_log1p(f_exp(-2 * ah))
    s = two_sum(w, v, &sl)
    lo[0] = sl + e
    return s


cdef inline floating _term(int code, floating p, floating t, floating c,
                           floating *lo) noexcept nogil:
    cdef floating ah, al, h, l, q
    if code == HINGE:
        # 1 - p t: TwoProd p t = ph + pl, then 1 - ph by TwoSum; renormalised so the
        # sign of h is the sign of the exact value (max(0, .) is then exact).
        ah = p * t
        if not isfinite(ah):               # the TwoProd/TwoSum residuals would be NaN
            lo[0] = 0
            h = 1 - ah
            return h if h > 0 else (0 if h <= 0 else h)
        al = f_fma(p, t, -ah)
        h = two_sum(1, -ah, &l)
        h = two_sum(h, l - al, &l)
        if h > 0:
            lo[0] = l
            return h
        lo[0] = 0
        return 0 if h <= 0 else h          # NaN stays NaN
    if code == POISSON:
        # exp(p) - t p (log input): TwoProd t p and a TwoSum; exp's rounding remains
        ah = t * p
        al = f_fma(t, p, -ah)
        h = two_sum(f_exp(p), -ah, &l)
        lo[0] = l - al
        return h
    ah = _absdiff(p, t, &al)
    if code == L1:
        lo[0] = al
        return ah
    if code == HUBER:
        # a < delta ? d^2 / 2 : delta (a - delta / 2)   (delta / 2 exact)
        if ah < c:
            h = _sq(ah, al, &l)
            lo[0] = l * <floating>0.5
            return h * <floating>0.5
        h = _sub_dw(ah, al, c * <floating>0.5, &l)
        return _scale_dw(c, h, l, lo)
    if code == SMOOTH_L1:
        # a < beta ? d^2 / (2 beta) : a - beta / 2   (beta = 0: a, the L1 term)
        if ah < c:
            h = _sq(ah, al, &l) * <floating>0.5
            l = l * <floating>0.5
            q = h / c
            lo[0] = (f_fma(-q, c, h) + l) / c
            return q
        return _sub_dw(ah, al, c * <floating>0.5, lo)
    return _log_cosh(ah, al, lo)


cdef inline void _acc(floating x, floating *s, floating *c) noexcept nogil:
    cdef floating e
    s[0] = two_sum(s[0], x, &e)
    c[0] += e


# Design f: exact rescue of a non-finite total from finite inputs.
cdef inline void _wide_dw(int64_t *d, floating h, floating l, int e) noexcept nogil:
    refrt_sa_wide_add(d, <double>h, e)
    refrt_sa_wide_add(d, <double>l, e)


# x y as exact pieces: x = fx 2^ex, y = fy 2^ey (frexp), fx fy = pp + qq (fma, no under- or
# overflow on mantissas in [0.5, 1)); sign s = +-1.
cdef inline void _wide_prod(int64_t *d, floating x, floating y, floating s) noexcept nogil:
    cdef int ex, ey
    cdef floating fx = f_frexp(x, &ex), fy = f_frexp(y, &ey), pp, qq
    pp = fx * fy
    qq = f_fma(fx, fy, -pp)
    refrt_sa_wide_add(d, <double>(s * pp), ex + ey)
    refrt_sa_wide_add(d, <double>(s * qq), ex + ey)


cdef floating _rescue(int code, const floating[::1] p, const floating[::1] t, floating c,
                      floating fast) noexcept nogil:
    cdef int64_t d[REFRT_SA_WCHUNKS]
    cdef Py_ssize_t i, n = p.shape[0]
    cdef int K = 64 if floating is float else 512, since = 0
    cdef floating h, l, v, pi, ti
    if not isfinite(c):
        return fast
    for i in range(n):
        if not (isfinite(p[i]) and isfinite(t[i])):
            return fast                            # IEEE: the inf/NaN inputs decide
    for i in range(REFRT_SA_WCHUNKS):
        d[i] = 0
    for i in range(n):
        pi = p[i]
        ti = t[i]
        if code == POISSON:
            v = f_exp(pi)
            if isfinite(v):
                refrt_sa_wide_add(d, <double>v, 0)
            else:
                v = f_exp(pi * <floating>0.5)
                if not isfinite(v):
                    return <floating>INFINITY
                _wide_prod(d, v, v, 1)
            if pi != 0 and ti != 0:
                _wide_prod(d, ti, pi, -1)
        else:
            h = _term(code, pi, ti, c, &l)
            if isfinite(h) and isfinite(l):
                _wide_dw(d, h, l, 0)
            elif code == HINGE:
                # only 1 - p t with p t -> -inf overflows: the term is -p t (+ 1, below
                # its ulp)
                _wide_prod(d, pi, ti, -1)
            else:
                h = _term(code, f_ldexp(pi, -K), f_ldexp(ti, -K), f_ldexp(c, -K), &l)
                _wide_dw(d, h, l, 2 * K if code == HUBER else K)
        since += 1
        if since == 128:
            refrt_sa_carry(d, REFRT_SA_WCHUNKS)
            since = 0
    return <floating>refrt_wide_mean(d, <double>(n if n > 0 else 1))


def loss_fwd(int code,
             const floating[::1] p,           # IN  pred, flat
             const floating[::1] t,           # IN  target, flat
             floating[::1] part_h,            # scratch: one partial per block, high
             floating[::1] part_l,            # scratch: low
             double param=0, int threads=1):
    cdef Py_ssize_t b, i, lo_i, hi_i, n = p.shape[0], nb = part_h.shape[0]
    cdef floating c = <floating>param, s, e, h, l, q, nn, res
    with nogil:
        for b in prange(nb, num_threads=threads, schedule="static"):
            s = 0
            e = 0
            lo_i = b * BLOCK
            hi_i = min(lo_i + BLOCK, n)
            for i in range(lo_i, hi_i):
                h = _term(code, p[i], t[i], c, &l)
                _acc(h, &s, &e)
                e = e + l
            part_h[b] = s
            part_l[b] = e
        s = 0
        e = 0
        for b in range(nb):
            _acc(part_h[b], &s, &e)
            e = e + part_l[b]
        nn = <floating>(n if n > 0 else 1)
        if not isfinite(s):
            res = _rescue(code, p, t, c, s / nn)
        else:
            q = s / nn
            res = q + (f_fma(-q, nn, s) + e) / nn
    return res


cdef inline floating _sign(floating d) noexcept nogil:
    if d > 0:
        return 1
    if d < 0:
        return -1
    return d * 0                      # 0 at a tie (TorchLean, PyTorch); NaN stays NaN


def loss_vjp(int code,
             const floating[::1] p,           # IN  pred
             const floating[::1] t,           # IN  target
             floating k,                      # IN  g / n
             floating[::1] gp,                # OUT d pred
             floating[::1] gt,                # OUT d target
             double param=0, int threads=1):
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating c = <floating>param, d, v, l
    cdef floating tiny = FLT_MIN if floating is float else DBL_MIN
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            if code == HINGE:
                v = _term(HINGE, p[i], t[i], c, &l)
                gp[i] = -k * t[i] if v > 0 else 0 * k
                gt[i] = -k * p[i] if v > 0 else 0 * k
                continue
            if code == POISSON:
                # exp(p) - t = expm1(p) + (1 - t) for |p| <= 1/2, t in [1/2, 2]: 1 - t is
                # exact there (Sterbenz) and expm1(p) in [-0.4, 0.65] keeps its relative
                # accuracy where exp(p) rounds to ~1 and the difference would cancel to 0
                # (p -> 0, t = 1).  Elsewhere exp(p) - t as is: with t outside [1/2, 2]
                # or |p| > 1/2 the 1 in expm1(p) + (1 - t) would cancel instead.
                if f_abs(p[i]) <= <floating>0.5 and t[i] >= <floating>0.5 and t[i] <= 2:
                    gp[i] = k * (f_expm1(p[i]) + (1 - t[i]))
                else:
                    v = f_exp(p[i])
                    if v < tiny and t[i] == 0:
                        # a subnormal exp(p) has lost bits that k > 1 would scale up:
                        # exp(p) = v^2, v = exp(p / 2) normal (p / 2 exact)
                        v = f_exp(p[i] * <floating>0.5)
                        gp[i] = (k * v) * v
                    else:
                        gp[i] = k * (v - t[i])
                gt[i] = -k * p[i]
                continue
            d = p[i] - t[i]
            if code == L1:
                v = k * _sign(d)
            elif code == HUBER:
                # clamp(d, -delta, delta)
                v = k * (d if f_abs(d) < c else c * _sign(d))
            elif code == SMOOTH_L1:
                v = k * (d / c if f_abs(d) < c else _sign(d))
            else:
                v = k * f_tanh(d)
            gp[i] = v
            gt[i] = -v


# ---- cross entropy with ignore_index and label smoothing -------------------------------
# Per row of C logits x (max m at the first argmax a, S = sum_{k != a} e^(x_k - m)):
#   L_c = -log softmax(x)_c = (m - x_c) + log1p(S)
# (the log-sum-exp m + log(1 + S): log1p keeps S's digits when one logit dominates, and
# m - x_c >= 0 is a TwoSum, so L_c is a double word with log1p's rounding as its only
# error; exp_diff compensates the rounding of x_k - m).  The row loss is
#   ids:    (1 - ls) L_y + (ls / C) sum_c L_c               (skipped when y == ignore_index)
#   probs:  (1 - ls) sum_c t_c L_c + (ls / C) sum_c L_c
# (PyTorch's label smoothing: the target mixed with the uniform distribution), all terms
# >= 0, summed with TwoProd/TwoSum; the mean divides by the number of active rows, or 1
# when there is none (refrt's answer to PyTorch's 0 / 0 = NaN: 0, TorchLean's meanDenom).
# Non-finite logits give NaN (the row's log-sum-exp has no finite meaning there).

cdef inline floating _row_lse_parts(const floating *x, Py_ssize_t C, Py_ssize_t *amax,
                                    floating *l1, floating *sum_rest) noexcept nogil:
    cdef floating m = x[0], S = 0
    cdef Py_ssize_t j, a = 0
    for j in range(1, C):
        if x[j] > m:
            m = x[j]
            a = j
    for j in range(C):
        if j != a:
            S = S + exp_diff(x[j], m)
    amax[0] = a
    sum_rest[0] = S
    l1[0] = f_log1p(S)
    return m


cdef inline void _add_dw(floating h, floating l, floating *s, floating *c) noexcept nogil:
    cdef floating e
    s[0] = two_sum(s[0], h, &e)
    c[0] = c[0] + (e + l)


cdef inline void _add_scaled(floating k, floating h, floating l, floating *s,
                             floating *c) noexcept nogil:
    cdef floating p = k * h
    _add_dw(p, f_fma(k, h, -p) + k * l, s, c)


def ce_fwd(const floating[:, ::1] x,          # IN  logits (rows, C)
           const long[::1] ids,               # IN  class ids (rows,) (ids mode)
           const floating[:, ::1] t,          # IN  probabilities (rows, C) (probs mode)
           bint use_ids, long ignore_index, double smoothing):
    cdef Py_ssize_t r, j, a, R = x.shape[0], C = x.shape[1], active = 0
    cdef floating ls = <floating>smoothing, keep = 1 - <floating>smoothing
    cdef floating u, m, l1, dh, dl, s = 0, c = 0, rs, rc, ts, tc, q, nn, res
    cdef bint bad = 0
    u = ls / <floating>(C if C else 1)
    with nogil:
        for r in range(R):
            if use_ids and ids[r] == ignore_index:
                continue
            active += 1
            if C == 0:
                continue
            for j in range(C):
                if not isfinite(x[r, j]):
                    bad = 1
            if bad:
                break
            m = _row_lse_parts(&x[r, 0], C, &a, &l1, &q)
            rs = 0
            rc = 0
            ts = 0
            tc = 0
            for j in range(C):
                dh = two_sum(m, -x[r, j], &dl)
                dh = two_sum(dh, l1, &q)
                dl = dl + q
                if ls != 0:
                    _add_dw(dh, dl, &rs, &rc)
                if use_ids:
                    if j == ids[r]:
                        _add_scaled(keep, dh, dl, &ts, &tc)
                elif t[r, j] != 0:
                    _add_scaled(t[r, j], dh, dl, &ts, &tc)
            if not use_ids and keep != 1:
                q = ts
                ts = keep * q
                tc = f_fma(keep, q, -ts) + keep * tc
            _add_dw(ts, tc, &s, &c)
            if ls != 0:
                _add_scaled(u, rs, rc, &s, &c)
        if bad:
            res = NAN
        else:
            nn = <floating>(active if active else 1)
            if not isfinite(s):
                res = s / nn
            else:
                q = s / nn
                res = q + (f_fma(-q, nn, s) + c) / nn
    return res


# d/dx_j = k (p_j sum(t') - t'_j), t' = (1 - ls) t + ls / C (ids: t = one-hot of y,
# sum(t') = 1); p_j = e^(x_j - m) / (1 + S).  d/dt_c = k (1 - ls) L_c (probs mode).
def ce_vjp(const floating[:, ::1] x, const long[::1] ids, const floating[:, ::1] t,
           bint use_ids, long ignore_index, double smoothing, floating k,
           floating[:, ::1] gx,               # OUT (rows, C)
           floating[:, ::1] gt):              # OUT (rows, C) (probs mode)
    cdef Py_ssize_t r, j, a, R = x.shape[0], C = x.shape[1]
    cdef floating ls = <floating>smoothing, keep = 1 - <floating>smoothing
    cdef floating u, m, l1, den, tsum, tj, p, dh, dl
    u = ls / <floating>(C if C else 1)
    with nogil:
        for r in range(R):
            if use_ids and ids[r] == ignore_index:
                for j in range(C):
                    gx[r, j] = 0
                continue
            if C == 0:
                continue
            m = _row_lse_parts(&x[r, 0], C, &a, &l1, &den)
            den = 1 + den
            tsum = 1
            if not use_ids:
                tsum = 0
                for j in range(C):
                    tsum = tsum + t[r, j]
                tsum = keep * tsum + ls
            for j in range(C):
                p = exp_diff(x[r, j], m) / den
                if use_ids:
                    tj = (keep if j == ids[r] else 0) + u
                else:
                    tj = f_fma(keep, t[r, j], u)
                    dh = two_sum(m, -x[r, j], &dl)
                    gt[r, j] = k * keep * (dh + (dl + l1))
                gx[r, j] = k * f_fma(p, tsum, -tj)
