# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Forward-mode (JVP) kernels and their VJPs, float32 and float64.

    lsm_jvp:      out_i = dx_i - sum_j exp(y_j) dx_j            (per row)
    rownorm_jvp:  out_i = gamma_i dxhat_i + xhat_i dgamma_i + dbeta_i,
                  dxhat_i = s (dx_i - mean(dx) - xhat_i mean(dx xhat)), s = 1/sqrt(var + eps)
    pool_max_jvp: out = dx at the window's first argmax of x
    pool_smooth_max_jvp: out = sum_k softmax(beta x_window)_k dx_k (padded cells: 0, 0)
    sdpa_jvp:     out_i = sum_j A_ij (dS_ij - <A_i, dS_i>) v_j + sum_j A_ij dv_j,
                  dS_ij = scale (<dq_i, k_j> + <q_i, dk_j>), A = SDPA's weights

Design:
a) One fused type; float32 kernels run float32 arithmetic and float32 double-words:
   nothing widens.  As in norm.pyx (Design b there), a result that is a sum of terms which
   may cancel is formed from double-word terms (TwoSum, TwoProd by fma) and rounded once.
b) Row statistics are layer_norm's own C passes (norm_rows.h refrt_ln_stats_*, reused
   here, not copied): the shifted two-pass mean and variance of a row scaled by 2^-k, as
   the double-words mean (mh, ml) and 1/std (rh, rl) in the scaled units; the row's x_hat
   is formed from them as a double-word per element, (x 2^-k - mh - ml)(rh + rl).
c) log_softmax_jvp shifts by m = max(y) where m > 0 or m < -32 (logits, or rows whose
   exp(y) would be subnormal), so exp never overflows: sum_j exp(y_j) dx_j = exp(m)
   sum_j exp(y_j - m) dx_j with the shift's rounding compensated (_scalar.pxd exp_diff);
   log-probability rows (-32 <= m <= 0, the op's purpose) take no shift and no rounding of
   exp(m).  The dot is Dot2 (TwoProd + TwoSum), dx_i - s one TwoSum, rounded once.
d) rownorm_jvp: mean(dx) and mean(dx xhat) are double-word sums; dx_i - m1 - xhat_i m2,
   its product with (rh + rl) 2^-k, and the three terms of the output are double-words,
   rounded once.  Where that fast path is not finite while every input is (a product
   overflowing although the real result may be finite), the element is recomputed with
   _scalar.pxd mul_add_scaled (exponents split off, added back once; three roundings).
e) The second-order VJP (rownorm_jvp_vjp) runs in working precision with double-word row
   sums: gx_i = s^2 [(3 mu ma - cov) xhat_i - ma Pu_i - mu Pa_i] + s (Pb_i - xhat_i mb),
   a = g gamma, b = g dgamma, u = dx (derivation in backends/mp_jvp.py).  a, b and u are
   formed from row-scaled copies (a / 2^ka, ..., ka the exponent of the row's largest
   |a|), and the powers of two (ka + ku - 2k, kb - k) are put back by one ldexp, so
   products of a wide row's huge and tiny factors do not overflow or underflow on the way.
   The registry declares the condition-number budget of these differences (vjp_terms).
f) Non-finite inputs in a row take the plain formula (IEEE propagation: NaN in, NaN out).
g) Threads split rows (prange); sums run in index order within a row, so results do not
   depend on the thread count.  ``cdivision=True``: IEEE division.
h) sdpa_jvp (TorchLean scaledDotProductAttentionJvp): the weights A are SDPA's own
   row pass (_sdpa_rows.pxd row_weights: range-scaled q and k, Dot2 scores, double-word
   exp, the exact score-difference path; attention.pyx Design (b)-(e)), divided once
   (double-word).  The tangents are range-scaled like q and k (frexp of each array's
   largest magnitude; dv, like v, only as far as v_shift needs), so <dq_i, k_j> is in
   units 2^(edq + ek) and <q_i, dk_j> in 2^(eq + edk): both are Dot2 double-words, the
   one in the smaller unit ldexp'd into the larger (per query row; a part that is 0 for
   every key of the row does not set the unit).  softmaxBackwardFromWeights A (dS -
   <A, dS>), its product with v and A dv are double-word sums in their own units, added
   in the larger unit and rounded once.  The product with v is centred: sum_j A_j (dS_j
   - x) = 0, so it equals sum_j A_j (dS_j - x)(v_j - v_m), m the row's largest weight,
   v_j - v_m a TwoSum double-word: rows of v equal to v_m add exactly 0 (uncentred, the
   rounding of A (dS - x) times |v| is left where the real result is 0: 64 ulp at the
   float32 underflow threshold in the hunt).  A
   blocked key (A = 0) is not read (its dk, dv may be anything), a row with no allowed
   key gives 0.
i) smooth_max_pool2d_jvp: a tail weight below the normal range multiplies its tangent
   through the tangent's exponent (_tiny_weight_times), so w d is not lost to exp's
   underflow where d is large (hunt: e^-1016 * 1.8e134 = 1e-307 gave 0).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, isnan, NAN
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from ._dw cimport fast_two_sum, dw_add, dw_mul, ln2_hi, ln2_lo
from ._scalar cimport (f_exp, f_expm1, f_fma, f_ldexp, f_frexp, f_abs, f_sqrt, two_sum, exp_diff,
                       mul_add_scaled)
# SDPA's row pass and double-word division / products (shared with attention.pyx)
from ._sdpa_rows cimport max_exp, v_shift, scaled_copy, row_weights, needs_exact
from ._dw cimport (dw_div as dwq_div, acc_prod as dwq_acc_prod,
                   acc_dw_prod as dwq_acc_dw_prod, acc_dw_dw as dwq_acc_dw_dw)


cdef extern from "norm_rows.h" nogil:
    int refrt_ln_stats_f64(const double *x, Py_ssize_t D, double eps, int *k, double *st)
    int refrt_ln_stats_f32(const float *x, Py_ssize_t D, float eps, int *k, float *st)


# ---------------------------------------------------------------- scalar helpers

# fast_two_sum, dw_add, dw_mul: the double-word helpers of _dw.pxd (shared with SDPA
# and multi-head attention)

cdef inline void dw_div_n(floating ah, floating al, floating n, floating *qh,
                          floating *ql) noexcept nogil:
    # (ah + al) / n for an exact integer n: q = ah / n, a - q n = fma(-q, n, ah) + al
    cdef floating q = ah / n
    qh[0] = fast_two_sum(q, (f_fma(-q, n, ah) + al) / n, ql)


cdef inline void acc(floating v, floating *s, floating *c) noexcept nogil:
    # Sum2 (Ogita-Rump-Oishi): s + c carries the sum to about twice the working precision
    cdef floating e
    s[0] = two_sum(s[0], v, &e)
    c[0] = c[0] + e


cdef inline void acc_prod(floating a, floating b, floating bl, floating *s,
                          floating *c) noexcept nogil:
    # Dot2 step: a (b + bl) = p + pe exactly up to a bl's rounding (TwoProd by fma)
    cdef floating e
    cdef floating p = a * b
    cdef floating pe = f_fma(a, b, -p) + a * bl
    s[0] = two_sum(s[0], p, &e)
    c[0] = c[0] + (e + pe)


cdef inline bint ln_stats(const floating *x, Py_ssize_t D, floating eps, int *k,
                          floating *st) noexcept nogil:
    if floating is float:
        return refrt_ln_stats_f32(x, D, eps, k, st)
    else:
        return refrt_ln_stats_f64(x, D, eps, k, st)


cdef inline void xhat_dw(floating xi, floating sc, const floating *st, floating *qh,
                         floating *ql) noexcept nogil:
    # Design b: dev = x 2^-k - mh - ml as dh + dl (two TwoSums), times (rh + rl)
    cdef floating e, dl
    cdef floating dh = two_sum(xi * sc, -st[0], &e)
    dh = two_sum(dh, e - st[1], &dl)
    dw_mul(dh, dl, st[2], st[3], qh, ql)


cdef inline int row_exponent(const floating *a, Py_ssize_t n) noexcept nogil:
    # frexp exponent of max |a_i| over a finite row (0 for a zero row)
    cdef floating m = 0
    cdef Py_ssize_t i
    cdef int e = 0
    for i in range(n):
        if f_abs(a[i]) > m:
            m = f_abs(a[i])
    if m > 0:
        f_frexp(m, &e)
    return e


cdef inline bint all_finite(const floating *a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(a[i]):
            return False
    return True


# ---------------------------------------------------------------- log_softmax_jvp

cdef inline void mul_dw1(floating th, floating tl, floating h, floating *rh,
                         floating *rl) noexcept nogil:
    # (th + tl) h as a double-word; +-inf (low word 0) where the product overflows
    cdef floating p = th * h
    if not isfinite(p):
        rh[0] = p
        rl[0] = 0
        return
    dw_mul(th, tl, h, 0, rh, rl)


cdef inline void mul_exp(floating th, floating tl, floating m, floating em, floating *rh,
                         floating *rl) noexcept nogil:
    # (th + tl) exp(m), em = fl(exp(m)): 0 for a zero factor (the real e^m is finite, the
    # rounded one may be inf); where em overflows, two factors exp(m / 2) (m / 2 exact),
    # so a finite product of a small T and a huge e^m stays finite (one more rounding)
    cdef floating h
    if th == 0:
        rh[0] = 0
        rl[0] = 0
    elif m == 0:
        rh[0] = th
        rl[0] = tl
    elif isfinite(em):
        mul_dw1(th, tl, em, rh, rl)
    else:
        h = f_exp(m / 2)
        if not isfinite(h):
            rh[0] = th * h
            rl[0] = 0
            return
        mul_dw1(th, tl, h, rh, rl)
        mul_dw1(rh[0], rl[0], h, rh, rl)


cdef void lsm_jvp_row(const floating *y, const floating *dx, floating *out,
                      Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating m, sh = 0, sl = 0, e, em, th, tl, d, t
    cdef bint first
    cdef bint finite = all_finite(y, n) and all_finite(dx, n)
    if n == 0:
        return
    if not finite:
        # Design f: the formula as written, IEEE propagation
        sh = 0
        for j in range(n):
            sh = sh + f_exp(y[j]) * dx[j]
        for i in range(n):
            out[i] = dx[i] - sh
        return
    # m = the largest y_j whose dx_j is not zero: the terms with dx_j = 0 are exactly 0,
    # and shifting by a larger y would flush the nonzero terms to 0 (y = (1378, 379),
    # dx = (0, 80): exp(379 - 1378) underflows, the real sum is e^379 80, +inf in float32)
    m = 0
    first = True
    for j in range(n):
        if dx[j] != 0 and (first or y[j] > m):
            m = y[j]
            first = False
    if -32 <= m <= 0:
        m = 0
    for j in range(n):
        if dx[j] != 0:          # exactly 0 (exp(y_j - m) may overflow there: inf * 0)
            acc_prod(exp_diff(y[j], m), dx[j], 0, &sh, &sl)
    em = f_exp(m)
    for i in range(n):
        # Design c: for y_i <= 1, out_i = -dx_i expm1(y_i) - sum_{j != i} exp(y_j) dx_j;
        # the rest is (T - e_i dx_i) exp(m), T - e_i dx_i exact in double-words (the
        # same rounded e_i, TwoProd), so the rounding of exp(y_i) does not meet the 1 it
        # cancels.  For y_i > 1 (no such 1 to cancel; expm1 could overflow) the plain
        # dx_i - exp(m) T.
        th = sh
        tl = sl
        if dx[i] != 0 and y[i] <= 1:
            e = exp_diff(y[i], m)
            th = e * dx[i]
            dw_add(sh, sl, -th, -f_fma(e, dx[i], -th), &th, &tl)
        mul_exp(th, tl, m, em, &th, &tl)
        d = dx[i]
        t = 0
        if dx[i] != 0 and y[i] <= 1:
            e = f_expm1(y[i])
            d = -(e * dx[i])
            t = -f_fma(e, dx[i], d)
        dw_add(d, t, -th, -tl, &d, &t)
        out[i] = d + t
        if isnan(out[i]):
            # overflow: +-inf from the dominant term, as the real value's rounding
            mul_exp(sh, sl, m, em, &th, &tl)
            out[i] = dx[i] - th


def lsm_jvp(const floating[:, ::1] y,    # IN  log_softmax output, (rows, n)
            const floating[:, ::1] dx,   # IN  tangent, (rows, n)
            floating[:, ::1] out,        # OUT (rows, n)
            int threads=1):
    cdef Py_ssize_t R = y.shape[0], n = y.shape[1], r
    if R == 0 or n == 0:
        return
    with nogil:
        for r in prange(R, num_threads=threads, schedule="static"):
            lsm_jvp_row(&y[r, 0], &dx[r, 0], &out[r, 0], n)


cdef void lsm_jvp_vjp_row(const floating *y, const floating *dx, const floating *g,
                          floating *gy, floating *gdx, Py_ssize_t n) noexcept nogil:
    # gdx_j = g_j - exp(y_j) G, gy_j = -exp(y_j) dx_j G, G = sum(g) as a double-word
    cdef floating s = 0, c = 0, G, Gl, e, p, t
    cdef Py_ssize_t j
    for j in range(n):
        acc(g[j], &s, &c)
    G = fast_two_sum(s, c, &Gl) if isfinite(s) else s
    if not isfinite(G):
        Gl = 0
    for j in range(n):
        e = f_exp(y[j])
        # g_j - e (G + Gl): TwoProd of e G, one rounding of the difference
        p = e * G
        if isfinite(p):
            gdx[j] = (g[j] - p) - (f_fma(e, G, -p) + e * Gl)
            t = p * dx[j]
            # the residual's product only where p dx did not overflow (else inf - inf)
            gy[j] = -(t + (f_fma(e, G, -p) + e * Gl) * dx[j]) if isfinite(t) else -t
        else:
            gdx[j] = g[j] - p
            gy[j] = -(p * dx[j]) if dx[j] != 0 else 0


def lsm_jvp_vjp(const floating[:, ::1] y, const floating[:, ::1] dx,   # IN  (rows, n)
                const floating[:, ::1] g,                             # IN  upstream
                floating[:, ::1] gy, floating[:, ::1] gdx,            # OUT (rows, n)
                int threads=1):
    cdef Py_ssize_t R = y.shape[0], n = y.shape[1], r
    if R == 0 or n == 0:
        return
    with nogil:
        for r in prange(R, num_threads=threads, schedule="static"):
            lsm_jvp_vjp_row(&y[r, 0], &dx[r, 0], &g[r, 0], &gy[r, 0], &gdx[r, 0], n)


# ---------------------------------------------------------------- row-normalisation JVP

cdef void plain_jvp_row(const floating *x, const floating *gam, const floating *dx,
                        const floating *dg, const floating *db, Py_ssize_t D, floating eps,
                        floating *out) noexcept nogil:
    # Design f: the closed form in working precision (IEEE propagation of inf / NaN)
    cdef floating m = 0, v = 0, m1 = 0, m2 = 0, s, xh
    cdef Py_ssize_t i
    for i in range(D):
        m = m + x[i]
    m = m / D
    for i in range(D):
        v = v + (x[i] - m) * (x[i] - m)
    s = 1 / f_sqrt(v / D + eps)
    for i in range(D):
        m1 = m1 + dx[i]
        m2 = m2 + dx[i] * (x[i] - m) * s
    m1 = m1 / D
    m2 = m2 / D
    for i in range(D):
        xh = (x[i] - m) * s
        out[i] = gam[i] * (s * (dx[i] - m1 - xh * m2)) + xh * dg[i] + db[i]


cdef void rownorm_jvp_row(const floating *x, const floating *gam, const floating *dx,
                          const floating *dg, const floating *db, Py_ssize_t D,
                          floating eps, floating *out, floating *wh,
                          floating *wl) noexcept nogil:
    cdef int k, ku
    cdef floating st[4]
    cdef floating sc, s1 = 0, c1 = 0, s2 = 0, c2 = 0, m1h, m1l, m2h, m2l
    cdef floating ah, al, ph, pl, th, tl, qh, ql, uh, ul, vh, vl, dxh
    cdef Py_ssize_t i
    if D == 0:
        return
    if not all_finite(dx, D) or not ln_stats(x, D, eps, &k, st):
        plain_jvp_row(x, gam, dx, dg, db, D, eps, out)
        return
    sc = f_ldexp(<floating>1, -k)
    # dx in units of 2^ku (ku its row exponent): (dx - m1) xhat and its sums cannot
    # overflow for +-max tangents, and a subnormal tangent row is formed in the normal
    # range; the power of two goes back on dxhat (fast path) or into mul_add_scaled
    ku = row_exponent(dx, D)
    for i in range(D):
        xhat_dw(x[i], sc, st, &wh[i], &wl[i])
        acc(f_ldexp(dx[i], -ku), &s1, &c1)
    dw_div_n(s1, c1, <floating>D, &m1h, &m1l)
    # mean(dx xhat) = mean((dx - m1) xhat), as sum(xhat) = 0 in the reals: the centred
    # form drops dx's common part c, whose c sum(xhat) is only 0 to xhat's rounding
    # (u^2 |mean(x)| / std per element, times |c|: 1e-5 relative under large_mean rows
    # of float32 x and dx, measured 2063 ulp before)
    for i in range(D):
        dw_add(f_ldexp(dx[i], -ku), 0, -m1h, -m1l, &ah, &al)
        dw_mul(ah, al, wh[i], wl[i], &ph, &pl)
        acc(ph, &s2, &c2)
        c2 = c2 + pl
    dw_div_n(s2, c2, <floating>D, &m2h, &m2l)
    for i in range(D):
        # t = (dx_i - m1) - xhat_i m2, dxhat = t (rh + rl) 2^(ku - k)
        dw_add(f_ldexp(dx[i], -ku), 0, -m1h, -m1l, &ah, &al)
        dw_mul(wh[i], wl[i], m2h, m2l, &ph, &pl)
        dw_add(ah, al, -ph, -pl, &th, &tl)
        dw_mul(th, tl, st[2], st[3], &th, &tl)
        qh = f_ldexp(th, ku - k)
        ql = f_ldexp(tl, ku - k)
        dw_mul(qh, ql, gam[i], 0, &uh, &ul)
        dw_mul(wh[i], wl[i], dg[i], 0, &vh, &vl)
        dw_add(uh, ul, vh, vl, &uh, &ul)
        dw_add(uh, ul, db[i], 0, &uh, &ul)
        out[i] = uh + ul
        if (not isfinite(out[i]) or not isfinite(qh)) and isfinite(gam[i]) \
                and isfinite(dg[i]) and isfinite(db[i]):
            # Design d: the scaled path
            out[i] = mul_add_scaled(th, tl, gam[i], 0, ku - k,
                                    mul_add_scaled(wh[i], wl[i], dg[i], 0, 0, db[i]))


def rownorm_jvp(const floating[::1] x,       # IN  (R, D) flat
                const floating[::1] gamma,   # IN  (R, D) flat (broadcast)
                const floating[::1] dx,      # IN  (R, D) flat
                const floating[::1] dgamma,  # IN  (R, D) flat (broadcast)
                const floating[::1] dbeta,   # IN  (R, D) flat (broadcast)
                floating eps, Py_ssize_t D,
                floating[::1] out,           # OUT (R, D) flat
                floating[::1] wh,            # SCRATCH (R, D): x_hat high words
                floating[::1] wl,            # SCRATCH (R, D): x_hat low words
                int threads=1):
    cdef Py_ssize_t R = x.shape[0] // D if D > 0 else 0, r
    if R == 0:
        return
    with nogil:
        for r in prange(R, num_threads=threads, schedule="static"):
            rownorm_jvp_row(&x[r * D], &gamma[r * D], &dx[r * D], &dgamma[r * D],
                            &dbeta[r * D], D, eps, &out[r * D], &wh[r * D], &wl[r * D])


cdef inline floating dw_mean(floating s, floating c, Py_ssize_t D) noexcept nogil:
    cdef floating h, l
    dw_div_n(s, c, <floating>D, &h, &l)
    return h + l


cdef void rownorm_jvp_vjp_row(const floating *x, const floating *gam, const floating *dx,
                              const floating *dg, const floating *g, Py_ssize_t D,
                              floating eps, floating *gx, floating *gdx, floating *ph,
                              floating *pl, floating *wh, floating *wl, floating *au,
                              floating *bu) noexcept nogil:
    cdef int k, ka, ku, kb, kg
    cdef floating st[4]
    cdef floating sc, s, s2, xh, uu, aa, bb, z, yv, p
    cdef floating su = 0, cu = 0, sa = 0, ca = 0, sb = 0, cb = 0
    cdef floating sxu = 0, cxu = 0, sxa = 0, cxa = 0, sxb = 0, cxb = 0, sau = 0, cau = 0
    cdef floating mu_, ma, mb, m_u, m_a, m_b, l_u, l_a, l_b, cov, dxh
    cdef Py_ssize_t i
    if D == 0:
        return
    if not (all_finite(dx, D) and all_finite(g, D) and all_finite(gam, D)
            and all_finite(dg, D)) or not ln_stats(x, D, eps, &k, st):
        for i in range(D):
            gx[i] = NAN
            gdx[i] = NAN
            ph[i] = NAN
            pl[i] = 0
        return
    sc = f_ldexp(<floating>1, -k)
    # Design e: scaled copies a / 2^ka = (g / 2^kg)(gamma / 2^kgam), u / 2^ku, b / 2^kb
    # (each factor scaled by its own row exponent, exact but for underflow of entries
    # 2^(emax - emin) below the row's largest, which do not count; scaling the product
    # instead would lose a subnormal product's bits, scaling g alone would overflow)
    kg = row_exponent(g, D)
    ka = row_exponent(gam, D)
    kb = row_exponent(dg, D)
    ku = row_exponent(dx, D)
    for i in range(D):
        xhat_dw(x[i], sc, st, &wh[i], &wl[i])
        au[i] = f_ldexp(g[i], -kg) * f_ldexp(gam[i], -ka)
        bu[i] = f_ldexp(g[i], -kg) * f_ldexp(dg[i], -kb)
        acc(f_ldexp(dx[i], -ku), &su, &cu)
        acc(au[i], &sa, &ca)
        acc(bu[i], &sb, &cb)
    ka = ka + kg
    kb = kb + kg
    # the means as double-words: P u = (u - m_uh) - m_ul is exact-ish where u has a large
    # common part (tangents at 1e12 +- O(1): rounding m_u cost 1e-4 relative, 3e13 ulp)
    dw_div_n(su, cu, <floating>D, &m_u, &l_u)
    dw_div_n(sa, ca, <floating>D, &m_a, &l_a)
    dw_div_n(sb, cb, <floating>D, &m_b, &l_b)
    # the means of products with xhat in the centred form (sum(xhat) = 0 in the reals,
    # as in rownorm_jvp_row), cov(a, u) = mean(P a P u)
    for i in range(D):
        xh = wh[i]
        au[i] = (au[i] - m_a) - l_a
        bu[i] = (bu[i] - m_b) - l_b
        uu = (f_ldexp(dx[i], -ku) - m_u) - l_u
        acc(xh * uu, &sxu, &cxu)
        acc(xh * au[i], &sxa, &cxa)
        acc(xh * bu[i], &sxb, &cxb)
        acc(au[i] * uu, &sau, &cau)
    mu_ = dw_mean(sxu, cxu, D)
    ma = dw_mean(sxa, cxa, D)
    mb = dw_mean(sxb, cxb, D)
    cov = dw_mean(sau, cau, D)
    s = st[2] + st[3]                  # 1/std in the scaled units (2^k of the input's)
    s2 = s * s
    for i in range(D):
        xh = wh[i]
        uu = (f_ldexp(dx[i], -ku) - m_u) - l_u
        z = (3 * mu_ * ma - cov) * xh - ma * uu - mu_ * au[i]
        yv = bu[i] - xh * mb
        gx[i] = f_ldexp(s2 * z, ka + ku - 2 * k) + f_ldexp(s * yv, kb - k)
        # dx's gradient (the primal's, the Jacobian being symmetric): s (P a - xhat ma)
        gdx[i] = f_ldexp(s * (au[i] - xh * ma), ka - k)
        # dxhat / 2^(ku - k) = s (P u - xhat mu) in u's scaled units; g dxhat as a TwoProd
        # there, scaled back word by word (the bindings sum hi and lo words): a subnormal
        # dx is not rounded at its own scale before the product with s ~ 1/sqrt(eps)
        dxh = s * (uu - xh * mu_)
        p = g[i] * dxh
        ph[i] = f_ldexp(p, ku - k)
        pl[i] = f_ldexp(f_fma(g[i], dxh, -p), ku - k)


def rownorm_jvp_vjp(const floating[::1] x,       # IN  (R, D) flat
                    const floating[::1] gamma,   # IN  (R, D) flat (broadcast)
                    const floating[::1] dx,      # IN  (R, D) flat
                    const floating[::1] dgamma,  # IN  (R, D) flat (broadcast)
                    const floating[::1] g,       # IN  upstream (R, D) flat
                    floating eps, Py_ssize_t D,
                    floating[::1] gx,            # OUT x's gradient (R, D)
                    floating[::1] gdx,           # OUT dx's gradient (R, D)
                    floating[::1] ph,            # OUT g dxhat, high words (R, D)
                    floating[::1] pl,            # OUT g dxhat, low words (R, D)
                    int threads=1):
    cdef Py_ssize_t R = x.shape[0] // D if D > 0 else 0, r
    cdef floating *work
    if R == 0:
        return
    with nogil:
        for r in prange(R, num_threads=threads, schedule="static"):
            work = <floating *> malloc(4 * D * sizeof(floating))
            if work != NULL:
                rownorm_jvp_vjp_row(&x[r * D], &gamma[r * D], &dx[r * D], &dgamma[r * D],
                                    &g[r * D], D, eps, &gx[r * D], &gdx[r * D], &ph[r * D],
                                    &pl[r * D],
                                    work, work + D, work + 2 * D, work + 3 * D)
                free(work)


# ---------------------------------------------------------------- max_pool2d_jvp

def pool_max_jvp(const floating[:, :, ::1] x,     # IN  (M, H, W)
                 const floating[:, :, ::1] dx,    # IN  tangent (M, H, W)
                 const int64_t[::1] hs, const int64_t[::1] he,   # IN  window rows [hs, he)
                 const int64_t[::1] ws, const int64_t[::1] we,   # IN  window cols [ws, we)
                 floating[:, :, ::1] out,         # OUT (M, Ho, Wo)
                 int threads=1):
    # the winner as conv.pyx pool_max: strict > keeps the first maximum, a NaN beats
    # every number (the first NaN wins); its tangent is copied (exact)
    cdef Py_ssize_t M = x.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t r, b, oh, ow, h, v
    cdef floating m, t, dm
    cdef bint first
    with nogil:
        for r in prange(M * Ho, num_threads=threads, schedule="static"):
            b = r // Ho
            oh = r % Ho
            for ow in range(Wo):
                first = True
                m = 0
                dm = 0
                for h in range(hs[oh], he[oh]):
                    for v in range(ws[ow], we[ow]):
                        t = x[b, h, v]
                        if first or t > m or (isnan(t) and not isnan(m)):
                            m = t
                            dm = dx[b, h, v]
                            first = False
                out[b, oh, ow] = dm


# ---------------------------------------------------------------- smooth_max_pool2d_jvp

cdef inline floating _cell0(const floating[:, :, ::1] a, Py_ssize_t b, Py_ssize_t h,
                            Py_ssize_t v) noexcept nogil:
    # TorchLean's smooth pool: a padded cell is the value 0 (and its tangent 0)
    if h < 0 or v < 0 or h >= a.shape[1] or v >= a.shape[2]:
        return 0
    return a[b, h, v]


cdef inline floating _weight(floating xv, floating p, floating beta) noexcept nogil:
    # exp(beta (x - p)) with the roundings of x - p (TwoSum) and of beta (x - p)
    # (TwoProd) compensated: exp(zh + zl) = exp(zh) (1 + zl + O(zl^2))
    cdef floating dl, zl
    cdef floating dh = two_sum(xv, -p, &dl)
    cdef floating zh = beta * dh
    zl = f_fma(beta, dh, -zh) + beta * dl
    cdef floating e = f_exp(zh)
    if not isfinite(zl):
        return e
    return f_fma(e, zl, e)


cdef inline floating _tiny_weight_times(floating xv, floating p, floating beta,
                                       floating d) noexcept nogil:
    # w d for a weight w = exp(beta (x - p)) below the normal range (Design i): with
    # d = m 2^k (frexp), w d = m exp(beta (x - p) + k ln 2), the exponent a double-word
    # (TwoSum of beta (x - p) and the TwoProd k ln2_hi, plus k ln2_lo), so a tail weight
    # e^-1016 times a tangent 1.8e134 (a real 1e-307) is not the 0 that exp(-1016) * d
    # gives.  Cutoff: only for e < the smallest normal (callers), where e itself has lost
    # bits; above it the plain product is exact to the weight's own rounding.
    cdef floating dl, zl, zh, dh, m, a, al, t, te, e
    cdef int k
    dh = two_sum(xv, -p, &dl)
    zh = beta * dh
    zl = f_fma(beta, dh, -zh) + beta * dl
    if not isfinite(zh) or not isfinite(zl):
        return f_exp(zh) * d
    m = f_frexp(d, &k)
    a = k * ln2_hi(d)
    al = f_fma(<floating>k, ln2_hi(d), -a) + k * ln2_lo(d)
    t = two_sum(zh, a, &te)
    te = te + (zl + al)
    e = f_exp(t)
    return f_fma(e, te, e) * m


cdef inline floating _tiny(floating x) noexcept nogil:
    if floating is float:
        return 1.1754943508222875e-38
    else:
        return 2.2250738585072014e-308


cdef floating _smooth_window(const floating[:, :, ::1] x, const floating[:, :, ::1] dx,
                             Py_ssize_t b, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t v0,
                             Py_ssize_t v1, floating beta, floating *pout) noexcept nogil:
    # returns the pivot; *pout = sum_k w_k dx_k (w the window softmax of beta x), as
    # (T_h + T_l) / (S_h + S_l) from Dot2 / Sum2 and one double-word division
    cdef Py_ssize_t h, v
    cdef floating p = 0, t, sh = 0, sl = 0, th = 0, tl = 0, e, q, dp = 0
    cdef bint first = True
    for h in range(h0, h1):
        for v in range(v0, v1):
            t = _cell0(x, b, h, v)
            if first or (isnan(t) and not isnan(p)) or (not isnan(p) and
                                                        (t > p if beta > 0 else t < p)):
                p = t
                dp = _cell0(dx, b, h, v)
                first = False
    if isnan(p):
        pout[0] = p
        return p
    if not isfinite(p):
        # an infinite pivot: the weights are one-hot in the limit (the winner's tangent)
        pout[0] = dp
        return p
    for h in range(h0, h1):
        for v in range(v0, v1):
            t = _cell0(x, b, h, v)
            e = _weight(t, p, beta)
            acc(e, &sh, &sl)
            q = _cell0(dx, b, h, v)
            if e < _tiny(e) and q != 0 and isfinite(q):
                acc(_tiny_weight_times(t, p, beta, q), &th, &tl)
            else:
                acc_prod(e, q, 0, &th, &tl)
    q = th / sh
    pout[0] = q + (f_fma(-q, sh, th) + (tl - q * sl)) / sh
    return p


def pool_smooth_max_jvp(const floating[:, :, ::1] x,    # IN  (M, H, W)
                        const floating[:, :, ::1] dx,   # IN  tangent (M, H, W)
                        const int64_t[::1] hs, const int64_t[::1] he,   # unclipped windows
                        const int64_t[::1] ws, const int64_t[::1] we,
                        floating[:, :, ::1] out,        # OUT (M, Ho, Wo)
                        double beta_, int threads=1):
    cdef Py_ssize_t M = x.shape[0], Ho = out.shape[1], Wo = out.shape[2], r, b, oh, ow
    cdef floating beta = <floating>beta_
    with nogil:
        for r in prange(M * Ho, num_threads=threads, schedule="static"):
            b = r // Ho
            oh = r % Ho
            for ow in range(Wo):
                _smooth_window(x, dx, b, hs[oh], he[oh], ws[ow], we[ow], beta,
                               &out[b, oh, ow])


def pool_smooth_max_jvp_vjp(const floating[:, :, ::1] x,    # IN  (M, H, W)
                            const floating[:, :, ::1] dx,   # IN  (M, H, W)
                            const floating[:, :, ::1] g,    # IN  (M, Ho, Wo)
                            const int64_t[::1] hs, const int64_t[::1] he,
                            const int64_t[::1] ws, const int64_t[::1] we,
                            floating[:, :, ::1] gx,         # OUT (M, H, W), zeros
                            floating[:, :, ::1] comp,       # SCRATCH (M, H, W), zeros
                            double beta_, int threads=1):
    # gx_k = sum over windows w holding k of g_w beta w_k (dx_k - out_w) (d w_k / d x_j =
    # beta w_k (delta_kj - w_j)); windows in order per plane, Sum2 into (gx, comp)
    cdef Py_ssize_t M = x.shape[0], Ho = g.shape[1], Wo = g.shape[2]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], b, oh, ow, h, v
    cdef floating beta = <floating>beta_, p, o, s, sl, w, c, err
    with nogil:
        for b in prange(M, num_threads=threads, schedule="static"):
            for oh in range(Ho):
                for ow in range(Wo):
                    p = _smooth_window(x, dx, b, hs[oh], he[oh], ws[ow], we[ow], beta, &o)
                    if not isfinite(p):
                        continue
                    s = 0
                    sl = 0
                    for h in range(hs[oh], he[oh]):
                        for v in range(ws[ow], we[ow]):
                            acc(_weight(_cell0(x, b, h, v), p, beta), &s, &sl)
                    s = s + sl
                    for h in range(max(hs[oh], 0), min(he[oh], H)):
                        for v in range(max(ws[ow], 0), min(we[ow], W)):
                            w = _weight(x[b, h, v], p, beta)
                            if w < _tiny(w) and isfinite(dx[b, h, v] - o):
                                c = g[b, oh, ow] * beta * (_tiny_weight_times(
                                    x[b, h, v], p, beta, dx[b, h, v] - o) / s)
                            else:
                                c = g[b, oh, ow] * beta * (w / s) * (dx[b, h, v] - o)
                            gx[b, h, v] = two_sum(gx[b, h, v], c, &err)
                            comp[b, h, v] = comp[b, h, v] + err
            for h in range(H):
                for v in range(W):
                    gx[b, h, v] = gx[b, h, v] + comp[b, h, v]


# ---------------------------------------------------------------- scaled dot-product attention

cdef inline void dw_unit(floating *h, floating *l, int d) noexcept nogil:
    # (h + l) 2^-d, d >= 0 (into a larger unit)
    h[0] = f_ldexp(h[0], -d)
    l[0] = f_ldexp(l[0], -d)


cdef void sdpa_jvp_batch(const floating *q, const floating *k, const floating *v,
                         const floating *dq, const floating *dk, const floating *dv,
                         const unsigned char *mask, bint has_mask, floating sch,
                         floating scl, Py_ssize_t L, Py_ssize_t S, Py_ssize_t E,
                         Py_ssize_t Ev, floating *out) noexcept nogil:
    cdef Py_ssize_t i, j, c, t
    cdef bint fin = True
    cdef int eq = max_exp(q, L * E, &fin), ek = max_exp(k, S * E, &fin)
    cdef int ev = max_exp(v, S * Ev, &fin), edq = max_exp(dq, L * E, &fin)
    cdef int edk = max_exp(dk, S * E, &fin), edv = max_exp(dv, S * Ev, &fin)
    cdef int u1, u2, e1, f1, F
    cdef bint exact, any1, any2
    cdef Py_ssize_t jm
    cdef floating dh, dl, ah, al, s, cc, s2, c2, xh, xl, rh, rl, th, tl
    cdef Py_ssize_t nbuf = 2 * (L * E + S * E + S * Ev) + 10 * S + 4 * Ev + 1
    cdef floating *buf = <floating *>malloc(nbuf * sizeof(floating))
    cdef floating *qs = buf
    cdef floating *ks = qs + L * E
    cdef floating *vs = ks + S * E
    cdef floating *dqs = vs + S * Ev
    cdef floating *dks = dqs + L * E
    cdef floating *dvs = dks + S * E
    cdef floating *wh = dvs + S * Ev
    cdef floating *wl = wh + S
    cdef floating *Ah = wl + S
    cdef floating *Al = Ah + S
    cdef floating *Dh = Al + S                  # dS_j = scale (<dq_i, k_j> + <q_i, dk_j>)
    cdef floating *Dl = Dh + S
    cdef floating *P1h = Dl + S                 # <dq_i, k_j> (units 2^u1), <q_i, dk_j> (2^u2)
    cdef floating *P1l = P1h + S
    cdef floating *P2h = P1l + S
    cdef floating *P2l = P2h + S
    cdef floating *na = P2l + S                 # sum_j A_j (dS_j - x) v_j, units 2^(e1 + ev)
    cdef floating *nc = na + Ev
    cdef floating *ma = nc + Ev                 # sum_j A_j dv_j, units 2^edv
    cdef floating *mc = ma + Ev
    if buf == NULL:
        return
    if not fin:
        eq = ek = ev = edq = edk = edv = 0
    ev = v_shift(sch, ev, S)
    edv = v_shift(sch, edv, S)
    exact = needs_exact(E, sch, eq + ek, fin)
    scaled_copy(q, qs, L * E, eq)
    scaled_copy(k, ks, S * E, ek)
    scaled_copy(v, vs, S * Ev, ev)
    scaled_copy(dq, dqs, L * E, edq)
    scaled_copy(dk, dks, S * E, edk)
    scaled_copy(dv, dvs, S * Ev, edv)
    u1 = edq + ek
    u2 = eq + edk
    for i in range(L):
        if row_weights(qs + i * E, ks, q + i * E, k, mask + i * S, has_mask, S, E, sch, scl,
                       eq + ek, exact, wh, wl, &dh, &dl) == 0:
            for c in range(Ev):
                out[i * Ev + c] = 0
            continue
        any1 = False
        any2 = False
        jm = 0
        for j in range(S):
            dwq_div(wh[j], wl[j], dh, dl, &ah, &al)
            Ah[j] = ah
            Al[j] = al
            if ah > Ah[jm]:
                jm = j
            s = 0
            cc = 0
            s2 = 0
            c2 = 0
            if ah != 0:
                for t in range(E):
                    dwq_acc_prod(dqs[i * E + t], ks[j * E + t], &s, &cc)
                    dwq_acc_prod(qs[i * E + t], dks[j * E + t], &s2, &c2)
            P1h[j] = fast_two_sum(s, cc, &P1l[j])
            P2h[j] = fast_two_sum(s2, c2, &P2l[j])
            any1 = any1 or P1h[j] != 0
            any2 = any2 or P2h[j] != 0
        # Design (h): the row's score-tangent unit (a part that is 0 does not set it)
        e1 = u2 if not any1 else (u1 if not any2 else (u1 if u1 > u2 else u2))
        f1 = e1 + ev
        xh = 0
        xl = 0
        for j in range(S):
            Dh[j] = 0
            Dl[j] = 0
            if Ah[j] == 0:
                continue
            s, cc, s2, c2 = P1h[j], P1l[j], P2h[j], P2l[j]
            dw_unit(&s, &cc, e1 - u1)
            dw_unit(&s2, &c2, e1 - u2)
            dw_add(s, cc, s2, c2, &rh, &rl)
            dw_mul(rh, rl, sch, scl, &rh, &rl)
            Dh[j] = rh
            Dl[j] = rl
            dw_mul(Ah[j], Al[j], rh, rl, &th, &tl)
            dw_add(xh, xl, th, tl, &xh, &xl)
        for c in range(Ev):
            na[c] = 0
            nc[c] = 0
            ma[c] = 0
            mc[c] = 0
        for j in range(S):
            if Ah[j] == 0:
                continue
            # softmaxBackwardFromWeights: A_j (dS_j - <A, dS>)
            dw_add(Dh[j], Dl[j], -xh, -xl, &rh, &rl)
            dw_mul(Ah[j], Al[j], rh, rl, &rh, &rl)
            for c in range(Ev):
                # Design (h): centred on the largest weight's row of v
                th = two_sum(vs[j * Ev + c], -vs[jm * Ev + c], &tl)
                dwq_acc_dw_dw(rh, rl, th, tl, &na[c], &nc[c])
                dwq_acc_dw_prod(Ah[j], Al[j], dvs[j * Ev + c], &ma[c], &mc[c])
        for c in range(Ev):
            rh = fast_two_sum(na[c], nc[c], &rl)
            th = fast_two_sum(ma[c], mc[c], &tl)
            # Design (h): both parts in the larger unit (a zero part does not set it)
            if th == 0:
                F = f1
            elif rh == 0:
                F = edv
            else:
                F = f1 if f1 > edv else edv
            if rh != 0:
                dw_unit(&rh, &rl, F - f1)
            if th != 0:
                dw_unit(&th, &tl, F - edv)
            dw_add(rh, rl, th, tl, &rh, &rl)
            out[i * Ev + c] = f_ldexp(rh + rl, F)
    free(buf)


def sdpa_jvp(const floating[::1] q,              # IN  (B, L, E) flat
             const floating[::1] k,              # IN  (B, S, E) flat
             const floating[::1] v,              # IN  (B, S, Ev) flat
             const floating[::1] dq,             # IN  tangent of q
             const floating[::1] dk,             # IN  tangent of k
             const floating[::1] dv,             # IN  tangent of v
             const unsigned char[::1] mask,      # IN  (B, L, S) flat, 1 = may attend
             bint has_mask, floating sch, floating scl,  # IN  scale = sch + scl
             Py_ssize_t B, Py_ssize_t L, Py_ssize_t S, Py_ssize_t E, Py_ssize_t Ev,
             floating[::1] out,                  # OUT (B, L, Ev) flat
             int threads=1):
    cdef Py_ssize_t b
    for b in prange(B, nogil=True, num_threads=threads, schedule="static"):
        sdpa_jvp_batch(&q[b * L * E], &k[b * S * E], &v[b * S * Ev], &dq[b * L * E],
                       &dk[b * S * E], &dv[b * S * Ev],
                       &mask[b * L * S] if has_mask else &mask[0], has_mask, sch, scl,
                       L, S, E, Ev, &out[b * L * Ev])
