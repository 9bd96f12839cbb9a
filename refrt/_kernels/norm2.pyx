# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Row normalisation with a per-element affine: forward and VJP, float32 and float64.

One kernel serves batch_norm (batch statistics), group_norm, instance_norm, rms_norm,
weight_norm and normalize_along_dim: the bindings lay x out as rows (R, D) whose
statistics are taken together (data movement only) and broadcast gamma / beta to the
same (R, D) layout.  Per row, with mode flags:

    centred:  c_i = x_i - mean(x)        else c_i = x_i
    mean:     v = sum(c^2) / D           else v = sum(c^2)        (weight_norm)
    y_i = c_i / sqrt(v + eps) * gamma_i + beta_i

Design:
a) One fused type; float32 kernels run float32 arithmetic, float32 double-words:
   nothing widens.  As in norm.pyx (its Design b, measured there: tens of ulp for a
   working-precision formula where c gamma / std and beta nearly cancel, 0 ulp for the
   double-word form), every intermediate is a double-word and y is rounded once.
b) Scaling.  k = frexp exponent of the row's largest magnitude.  The variance is formed
   from c / 2^(k - j) (squares cannot overflow; entries that become subnormal there are
   2^-(emax - emin) below the largest, their squares do not count), with eps scaled by
   2^-2k: c / sqrt(v + eps) = c_s / sqrt(v_s + eps 2^-2k).  Where eps 2^-2k is not finite
   or exceeds 2^(2p + 4) (the scaled variance is <= 4, so it is then below the
   double-word's resolution next to eps), 1 / std = 1/sqrt(eps) unscaled.  1 / std is
   carried as (hi + lo) 2^e, so nothing overflows.  c itself is formed in units 2^j:
   j = k < 0 for rows below 1 (scaling up is exact: a subnormal row's mean and deviations
   are formed in the normal range; its rounded subnormal mean was the layer_norm KNOWN
   failure, 83/250 ulp), j = 1 for rows in the top binade (x - mean could overflow),
   else 0 (no scaling, so O(1) entries beside +-max keep their bits).
c) Statistics: two passes in double-words: mean = the exact row sum (superacc.h,
   correctly rounded to hi + lo; a +-max row cancels exactly) / D;
   c_i = (x_i - mean_hi) - mean_lo by TwoSum (a constant row gives c = 0 exactly, D = 1
   gives c = 0: output beta); v = Dot2(c, c) / D, then 1/sqrt(v + eps_s) by one Newton-style correction (norm.pyx rsqrt_dw).
   v >= 0, so TorchLean's clamp max(var, 0) is a no-op.
d) Output: y = c (R gamma) 2^(e + j) + beta.  Fast path (R 2^(e + j) in range): R gamma
   as a double-word,
   then mul_add_dw (TwoProd + TwoSum, one rounding).  Where that product is not finite
   or so small that its low word is cut by underflow, the scaled path splits
   exponents with frexp and adds them back once with ldexp (_scalar.pxd mul_add_scaled).
e) Non-finite x in a row: the row is NaN (as the spec's formula: mean = +-inf or NaN,
   inf - inf = NaN); non-finite gamma/beta follow IEEE through the same formula.
f) VJP (in the extended-exponent words of f'): gg = g gamma (TwoProd), xhat = c R 2^e, m1 = sum(gg) / n (centred only),
   m2 = sum(gg xhat) / n, n = D (mean) or 1 (sum);
   gx = inv_std (gg - m1 - xhat m2) (TorchLean layerNormBackward), every sum a
   double-word, rounded once.  The kernel also returns g * xhat as hi + lo per element:
   the bindings reduce both over gamma's broadcast axes with the correctly rounded sum
   (reductions.pyx), so dgamma is the exact sum of near-exact products.
g) Threads split rows (prange); every sum runs in index order within a row, so
   results do not depend on the thread count.  ``cdivision=True``: IEEE division.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, NAN
from ._scalar cimport f_sqrt, f_abs, f_fma, two_sum, f_frexp, f_ldexp, mul_add_scaled


# ---------------------------------------------------------------- scalar helpers

cdef inline floating fast_two_sum(floating a, floating b, floating *err) noexcept nogil:
    # |a| >= |b| (or a == 0): s + err == a + b exactly (Dekker)
    cdef floating s = a + b
    err[0] = b - (s - a)
    return s


cdef inline void dw_mul(floating ah, floating al, floating bh, floating bl,
                        floating *ph, floating *pl) noexcept nogil:
    cdef floating p = ah * bh
    cdef floating e = f_fma(ah, bh, -p) + (ah * bl + al * bh)
    ph[0] = fast_two_sum(p, e, pl)


cdef inline void dw_add(floating ah, floating al, floating bh, floating bl,
                        floating *sh, floating *sl) noexcept nogil:
    cdef floating e
    cdef floating s = two_sum(ah, bh, &e)
    e = e + (al + bl)
    sh[0] = fast_two_sum(s, e, sl)


cdef inline void dw_div_n(floating ah, floating al, floating n, floating *qh,
                          floating *ql) noexcept nogil:
    # (ah + al) / n for an exact integer n: q = ah / n, a - q n = fma(-q, n, ah) + al
    cdef floating q = ah / n
    qh[0] = fast_two_sum(q, (f_fma(-q, n, ah) + al) / n, ql)


# 1 / sqrt(vh + vl) as a double-word (norm.pyx rsqrt_dw): s = sqrt(vh) rounded,
# v - s^2 = fma(-s, s, vh) + vl exactly, one Newton step for sqrt, then 1/s with the
# fma residual.
cdef inline void rsqrt_dw(floating vh, floating vl, floating *rh, floating *rl) noexcept nogil:
    cdef floating sh = f_sqrt(vh)
    cdef floating sl = (f_fma(-sh, sh, vh) + vl) / (2 * sh)
    rh[0] = 1 / sh
    rl[0] = (f_fma(-rh[0], sh, 1) - rh[0] * sl) * rh[0]


cdef inline floating small_scale(floating x) noexcept nogil:
    # 2**(emin + p): below it the low word of a double-word product is subnormal
    if floating is float:
        return 1.9721522630525295e-31     # 2**-102
    else:
        return 2.004168360008973e-292     # 2**-969


cdef inline floating big_ratio(floating x) noexcept nogil:
    # 2**(2p + 4): eps_s above it hides a scaled variance <= 1 (Design b)
    if floating is float:
        return 1.8014398509481984e16      # 2**52
    else:
        return 1.3164036458569648e33      # 2**110


# ---------------------------------------------------------------- row statistics

cdef extern from "superacc.h" nogil:
    void refrt_sa_sum_f64(const double *x, Py_ssize_t n, int k, double *hi, double *lo)
    void refrt_sa_sum_f32(const float *x, Py_ssize_t n, int k, float *hi, float *lo)


cdef inline int emax_of(floating x) noexcept nogil:
    if floating is float:
        return 128
    else:
        return 1024


cdef bint row_stats(const floating *x, Py_ssize_t D, floating eps, bint centred,
                    bint mean, int *k, int *j, floating *mh, floating *ml, floating *rh,
                    floating *rl, int *e) noexcept nogil:
    """Design b/c: k = frexp exponent of max|x|; j = 1 where x - mean could overflow;
    mean / 2^j as hi + lo (0 if not centred); 1 / std = (rh + rl) 2^e.
    False for a non-finite row."""
    cdef Py_ssize_t i
    cdef floating a, m = 0, s = 0, c = 0, dh, dl, p, q, t, vh, vl, epss
    cdef floating n = <floating>D
    cdef int kk = 0, kb = 0
    cdef Py_ssize_t nn = D
    for i in range(D):
        a = f_abs(x[i])
        if not isfinite(a):
            return False
        if a > m:
            m = a
    if m != 0:
        f_frexp(m, &kk)
    k[0] = kk
    # the unit of c = x - mean is 2^j: j = 1 for rows reaching the top binade (x - mean
    # could overflow; entries that become subnormal are 2^-(emax - emin) below the
    # largest), j = k < 0 for rows below 1 (scaling up is exact: a subnormal row's mean
    # and deviations are then formed in the normal range; its rounded subnormal mean was
    # the layer_norm KNOWN failure), else 0
    j[0] = 1 if kk >= emax_of(m) - 1 else (kk if kk < 0 else 0)
    mh[0] = 0
    ml[0] = 0
    if centred:
        # the exact row sum (superacc.h), / 2^kb so that it cannot overflow, / D
        while nn:
            kb += 1
            nn >>= 1
        if floating is float:
            refrt_sa_sum_f32(x, D, kb + j[0], &s, &c)
        else:
            refrt_sa_sum_f64(x, D, kb + j[0], &s, &c)
        dw_div_n(s, c, n, &s, &c)
        mh[0] = f_ldexp(s, kb)
        ml[0] = f_ldexp(c, kb)
    s = 0
    c = 0
    for i in range(D):
        centred_dw(x[i], j[0], mh[0], ml[0], &dh, &dl)
        # c / 2^(k - j) for the squares (|c| <= 2: no overflow; entries that become
        # subnormal are 2^-(emax - emin) below the largest: their squares do not count)
        dh = f_ldexp(dh, j[0] - kk)
        dl = f_ldexp(dl, j[0] - kk)
        p = dh * dh
        q = f_fma(dh, dh, -p) + 2 * dh * dl
        s = two_sum(s, p, &t)
        c = c + (t + q)
    s = fast_two_sum(s, c, &c)
    if mean:
        dw_div_n(s, c, n, &vh, &vl)
    else:
        vh = s
        vl = c
    epss = f_ldexp(eps, -2 * kk)
    if isfinite(epss) and not (epss > big_ratio(eps)):
        dw_add(vh, vl, epss, 0, &vh, &vl)
        rsqrt_dw(vh, vl, rh, rl)
        e[0] = -kk
    else:
        # Design b: v_s <= 4 is below the resolution next to eps_s: R = 1/sqrt(eps)
        rsqrt_dw(eps, 0, rh, rl)
        e[0] = 0
    return True


cdef inline void centred_dw(floating xi, int j, floating mh, floating ml, floating *dh,
                            floating *dl) noexcept nogil:
    # (x_i - mean) / 2^j as hi + lo (row_stats chooses j)
    cdef floating h, l
    h = two_sum(f_ldexp(xi, -j) if j else xi, -mh, &l)
    l = l - ml
    dh[0] = fast_two_sum(h, l, dl)


cdef inline floating mul_add_fast(floating ah, floating al, floating bh, floating bl,
                                  floating c) noexcept nogil:
    # (ah + al)(bh + bl) + c, one rounding (norm.pyx mul_add_dw)
    cdef floating e
    cdef floating ph = ah * bh
    cdef floating pl = f_fma(ah, bh, -ph) + (ah * bl + al * bh)
    cdef floating s = two_sum(ph, c, &e)
    return s + (e + pl)


cdef floating mul_add_scaled3(floating ah, floating al, floating rh, floating rl,
                              floating gamma, int e0, floating c) noexcept nogil:
    # 2^e0 (ah + al)(rh + rl) gamma + c: (r gamma) normalised by frexp first
    cdef int er, eg
    cdef floating mr, mg, ph, pl
    if gamma == 0 or rh == 0:
        return mul_add_scaled(ah, al, rh * gamma, 0, e0, c)
    mr = f_frexp(rh, &er)
    rl = f_ldexp(rl, -er)
    mg = f_frexp(gamma, &eg)
    dw_mul(mr, rl, mg, 0, &ph, &pl)
    return mul_add_scaled(ah, al, ph, pl, e0 + er + eg, c)


cdef inline bint inv_in_range(floating rh, int e, floating *ih, floating *il) noexcept nogil:
    # (rh + rl) 2^e as a plain double-word when that is exact enough (no overflow, low
    # word not cut by underflow)
    ih[0] = f_ldexp(rh, e)
    return isfinite(ih[0]) and f_abs(ih[0]) >= small_scale(rh) and \
        f_abs(ih[0]) < f_ldexp(<floating>1, emax_of(rh) - 4)


cdef void row_fwd(const floating *x, const floating *gamma, const floating *beta,
                  Py_ssize_t D, floating eps, bint centred, bint mean,
                  floating *y) noexcept nogil:
    cdef Py_ssize_t i
    cdef int k, j, e
    cdef floating mh, ml, rh, rl, dh, dl, ph, pl, r, ih, il
    cdef bint fast, inv_ok
    if not row_stats(x, D, eps, centred, mean, &k, &j, &mh, &ml, &rh, &rl, &e):
        for i in range(D):
            y[i] = NAN
        return
    inv_ok = isfinite(rh) and inv_in_range(rh, e + j, &ih, &il)
    if inv_ok:
        il = f_ldexp(rl, e + j)
    for i in range(D):
        centred_dw(x[i], j, mh, ml, &dh, &dl)
        r = NAN
        fast = False
        if inv_ok:
            dw_mul(ih, il, gamma[i], 0, &ph, &pl)
            if isfinite(ph) and f_abs(ph) >= small_scale(ph):
                r = mul_add_fast(dh, dl, ph, pl, beta[i])
                fast = isfinite(r)
        if not fast:
            if not (isfinite(gamma[i]) and isfinite(beta[i]) and isfinite(rh)):
                r = dh * f_ldexp(rh, e + j) * gamma[i] + beta[i]   # IEEE (e; 0 * inf = NaN)
            else:
                r = mul_add_scaled3(dh, dl, rh, rl, gamma[i], e + j, beta[i])
        y[i] = r


def rownorm_fwd(const floating[::1] x,       # IN  (R, D) flat
                const floating[::1] gamma,   # IN  (R, D) flat (broadcast by the binding)
                const floating[::1] beta,    # IN  (R, D) flat
                floating eps, bint centred, bint mean, Py_ssize_t R, Py_ssize_t D,
                floating[::1] out,           # OUT (R, D) flat
                int threads=1):
    cdef Py_ssize_t r
    for r in prange(R, nogil=True, num_threads=threads, schedule="static"):
        row_fwd(&x[r * D], &gamma[r * D], &beta[r * D], D, eps, centred, mean, &out[r * D])


# ---------------------------------------------------------------- extended-exponent words
# Design f': the VJP's gg_i - mean(gg) - xhat_i mean(gg xhat) mixes magnitudes of the
# whole exponent range (a row with entries from 1e-300 to 1e300 gives tiny components
# next to huge ones), so each element's terms are held as (hi + lo) 2^E with hi in
# [1/2, 1) (frexp-normalised double-words): no overflow, no underflow, one rounding at
# the end (ldexp of hi + lo).

cdef inline void xnorm(floating h, floating l, int e, floating *oh, floating *ol,
                       int *oe) noexcept nogil:
    cdef int k = 0
    cdef floating m
    if h == 0 or not isfinite(h):
        oh[0] = h
        ol[0] = 0
        oe[0] = 0 if h == 0 else e
        return
    m = f_frexp(h, &k)
    oh[0] = m
    ol[0] = f_ldexp(l, -k)
    oe[0] = e + k


cdef inline void xmul(floating ah, floating al, int ae, floating bh, floating bl, int be,
                      floating *oh, floating *ol, int *oe) noexcept nogil:
    cdef floating ph, pl
    dw_mul(ah, al, bh, bl, &ph, &pl)
    xnorm(ph, pl, ae + be, oh, ol, oe)


cdef inline void xadd(floating ah, floating al, int ae, floating bh, floating bl, int be,
                      floating *oh, floating *ol, int *oe) noexcept nogil:
    cdef int F
    cdef floating sh, sl
    if ah == 0:
        oh[0] = bh
        ol[0] = bl
        oe[0] = be
        return
    if bh == 0:
        oh[0] = ah
        ol[0] = al
        oe[0] = ae
        return
    F = ae if ae > be else be
    dw_add(f_ldexp(ah, ae - F), f_ldexp(al, ae - F), f_ldexp(bh, be - F),
           f_ldexp(bl, be - F), &sh, &sl)
    xnorm(sh, sl, F, oh, ol, oe)


cdef void row_vjp(const floating *x, const floating *gamma, const floating *g,
                  Py_ssize_t D, floating eps, bint centred, bint mean, floating *gx,
                  floating *pxh, floating *pxl) noexcept nogil:
    cdef Py_ssize_t i
    cdef int k, j, e, kg = -100000, k2, E1, E2, Eg, Ex, Et, Er, Eu
    cdef floating mh, ml, rh, rl, dh, dl, xh, xl, gh, gl, s1 = 0, c1 = 0, s2 = 0, c2 = 0
    cdef floating m1h = 0, m1l = 0, m2h, m2l, th, tl, n = <floating>D if mean else 1
    cdef floating Rh, Rl, uh, ul, mg, mc
    if not row_stats(x, D, eps, centred, mean, &k, &j, &mh, &ml, &rh, &rl, &e) \
            or not isfinite(rh):
        for i in range(D):
            gx[i] = NAN                    # non-finite row, or var + eps = 0 (0 / 0)
            pxh[i] = NAN
            pxl[i] = 0
        return
    # the row sums in units of 2^kg and 2^k2: the largest exponents of their terms g gamma
    # and g gamma xhat (each sum scaled by its own largest term, so a small sum's terms
    # are not flushed by the other's scale)
    xnorm(rh, rl, e, &Rh, &Rl, &Er)            # 1 / std = R 2^Er
    k2 = -100000
    for i in range(D):
        centred_dw(x[i], j, mh, ml, &dh, &dl)
        xnorm(dh, dl, j, &dh, &dl, &Ex)
        xmul(dh, dl, Ex, Rh, Rl, Er, &xh, &xl, &Ex)    # xhat = xh 2^Ex
        gg_x(g[i], gamma[i], &gh, &gl, &Eg)             # gg = gh 2^Eg, exact
        if gh != 0 and Eg > kg:
            kg = Eg
        xmul(gh, gl, Eg, xh, xl, Ex, &th, &tl, &Et)
        if th != 0 and Et > k2:
            k2 = Et
    if kg == -100000:
        kg = 0
    if k2 == -100000:
        k2 = 0
    for i in range(D):
        centred_dw(x[i], j, mh, ml, &dh, &dl)
        xnorm(dh, dl, j, &dh, &dl, &Ex)
        xmul(dh, dl, Ex, Rh, Rl, Er, &xh, &xl, &Ex)
        gg_x(g[i], gamma[i], &gh, &gl, &Eg)
        dw_add(s1, c1, f_ldexp(gh, Eg - kg), f_ldexp(gl, Eg - kg), &s1, &c1)
        xmul(gh, gl, Eg, xh, xl, Ex, &th, &tl, &Et)
        dw_add(s2, c2, f_ldexp(th, Et - k2), f_ldexp(tl, Et - k2), &s2, &c2)
        xmul(g[i], 0, 0, xh, xl, Ex, &th, &tl, &Et)
        pxh[i] = f_ldexp(th, Et)
        pxl[i] = f_ldexp(tl, Et)
    if centred:
        dw_div_n(s1, c1, n, &m1h, &m1l)
    dw_div_n(s2, c2, n, &m2h, &m2l)
    xnorm(m1h, m1l, kg, &m1h, &m1l, &E1)
    xnorm(m2h, m2l, k2, &m2h, &m2l, &E2)
    for i in range(D):
        centred_dw(x[i], j, mh, ml, &dh, &dl)
        xnorm(dh, dl, j, &dh, &dl, &Ex)
        xmul(dh, dl, Ex, Rh, Rl, Er, &xh, &xl, &Ex)
        gg_x(g[i], gamma[i], &gh, &gl, &Eg)
        # t = gg - m1 - xhat m2, then gx = t / std
        xmul(xh, xl, Ex, m2h, m2l, E2, &uh, &ul, &Eu)
        xadd(uh, ul, Eu, m1h, m1l, E1, &uh, &ul, &Eu)
        xadd(gh, gl, Eg, -uh, -ul, Eu, &th, &tl, &Et)
        xmul(th, tl, Et, Rh, Rl, Er, &th, &tl, &Et)
        gx[i] = f_ldexp(th + tl, Et)


cdef inline void gg_x(floating g, floating gamma, floating *h, floating *l,
                      int *E) noexcept nogil:
    # g gamma = (h + l) 2^E exactly: TwoProd of the frexp mantissas
    cdef int a, b
    cdef floating mg, mc, p
    if g == 0 or gamma == 0 or not (isfinite(g) and isfinite(gamma)):
        h[0] = g * gamma
        l[0] = 0
        E[0] = 0
        return
    mg = f_frexp(g, &a)
    mc = f_frexp(gamma, &b)
    p = mg * mc
    xnorm(p, f_fma(mg, mc, -p), a + b, h, l, E)


def rownorm_vjp(const floating[::1] x,       # IN  (R, D) flat
                const floating[::1] gamma,   # IN  (R, D) flat
                const floating[::1] g,       # IN  (R, D) flat upstream gradient
                floating eps, bint centred, bint mean, Py_ssize_t R, Py_ssize_t D,
                floating[::1] gx,            # OUT (R, D)
                floating[::1] pxh,           # OUT (R, D) g * xhat, hi
                floating[::1] pxl,           # OUT (R, D) g * xhat, lo
                int threads=1):
    cdef Py_ssize_t r
    for r in prange(R, nogil=True, num_threads=threads, schedule="static"):
        row_vjp(&x[r * D], &gamma[r * D], &g[r * D], D, eps, centred, mean, &gx[r * D],
                &pxh[r * D], &pxl[r * D])
