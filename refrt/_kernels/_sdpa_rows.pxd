# cython: language_level=3
# Scaled dot-product attention row passes shared by the attention kernels
# (refrt/_kernels/attention.pyx: SDPA forward and VJP, Design (d), (d'), (e) there;
# refrt/_kernels/jvp.pyx: SDPA's JVP): range exponents and scaled copies, the exact
# score differences, and one query row's unnormalised double-word weights.
# Moved here from attention.pyx unchanged (inline), so both modules use one copy.
# Divisions are IEEE (@cython.cdivision: a .pxd does not inherit the module's directives).
cimport cython
from cython cimport floating
from libc.math cimport isfinite
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t
from ._scalar cimport f_fma, two_sum, f_frexp, f_ldexp
from ._dw cimport fast_two_sum, dw_mul, dw_add, acc_prod, exp_dw


cdef extern from "superacc.h" nogil:
    enum: REFRT_SA_WCHUNKS
    enum: REFRT_SA_WOFF
    void refrt_sa_wide_add(int64_t *d, double x, int e)
    void refrt_sa_carry(int64_t *c, int nc)
    double refrt_sa_wide_value(int64_t *d, int p, int minpos, int *is_zero)


# ---------------------------------------------------------------- exact score differences

cdef inline void wide_add_prod(int64_t *d, floating a, floating b, bint neg) noexcept nogil:
    # the exact product a b (negated when neg) into the wide accumulator: a float32
    # product is exact in double; a float64 one is (p + q) 2^(ea + eb) by frexp + TwoProd
    cdef int ea, eb
    cdef double fa, fb, pp, qq
    if a == 0 or b == 0:
        return
    if floating is float:
        pp = <double>a * <double>b
        refrt_sa_wide_add(d, -pp if neg else pp, 0)
    else:
        fa = f_frexp(<double>a, &ea)
        fb = f_frexp(<double>b, &eb)
        pp = fa * fb
        qq = f_fma(fa, fb, -pp)
        refrt_sa_wide_add(d, -pp if neg else pp, ea + eb)
        refrt_sa_wide_add(d, -qq if neg else qq, ea + eb)


# Design (d'): <q, k_j> - <q, k_m> exactly (superacc.h's wide accumulator: every product
# exact, no overflow or underflow), rounded to a double-word hi + lo (hi correctly
# rounded, lo the correctly rounded remainder).  Used where the shifted scores are so
# large that Dot2's 2^-2p relative error would be >= 1/16 ulp of a weight after the
# shift (Design d): the real softmax there is decided by exact comparisons (ties of
# +-max products, large means that cancel), which only an exact difference gets right.
@cython.cdivision(True)
cdef inline void exact_diff(const floating *qi, const floating *kj, const floating *km,
                     Py_ssize_t E, floating *hi, floating *lo) noexcept nogil:
    cdef int64_t d[REFRT_SA_WCHUNKS]
    cdef int64_t d2[REFRT_SA_WCHUNKS]
    cdef Py_ssize_t t
    cdef int zero = 0, p, minpos
    cdef double h
    memset(d, 0, sizeof(d))
    for t in range(E):
        wide_add_prod(d, qi[t], kj[t], False)
        wide_add_prod(d, qi[t], km[t], True)
        if t % 256 == 255:
            refrt_sa_carry(d, REFRT_SA_WCHUNKS)   # carry room: one pass per 512 products
    memcpy(d2, d, sizeof(d))
    if floating is float:
        p = 24
        minpos = 925 + REFRT_SA_WOFF
    else:
        p = 53
        minpos = REFRT_SA_WOFF
    h = refrt_sa_wide_value(d, p, minpos, &zero)
    hi[0] = <floating>h
    if zero or not isfinite(h):
        lo[0] = 0
        return
    refrt_sa_wide_add(d2, -h, 0)
    lo[0] = <floating>refrt_sa_wide_value(d2, p, minpos, &zero)


# ---------------------------------------------------------------- per-batch passes

@cython.cdivision(True)
cdef inline int max_exp(const floating *x, Py_ssize_t n, bint *finite) noexcept nogil:
    # frexp exponent of max |x| (0 for an all-zero block); finite[0] &= all finite
    cdef Py_ssize_t i
    cdef floating a, m = 0
    cdef int e = 0
    for i in range(n):
        a = x[i] if x[i] >= 0 else -x[i]
        if not isfinite(a):
            finite[0] = False
        elif a > m:
            m = a
    if m == 0:
        return 0
    f_frexp(m, &e)
    return e


@cython.cdivision(True)
cdef inline int v_shift(floating like, int ev, Py_ssize_t S) noexcept nogil:
    # Design (d): v is scaled only as far as needed: down so that a sum of S weighted
    # rows (weights <= 1) cannot overflow, up (to [1/2, 1)) when every entry is below
    # 2^(emin + 2p), where TwoProd errors would underflow; else not at all, so small
    # entries beside +-max ones keep their bits
    cdef int emax, lo, bits = 0
    cdef Py_ssize_t n = S + 1
    if floating is float:
        emax = 128
        lo = -125 + 48
    else:
        emax = 1024
        lo = -1021 + 106
    while n:
        bits += 1
        n >>= 1
    if ev > emax - bits - 2:
        return ev - (emax - bits - 2)
    if ev < lo:
        return ev
    return 0


@cython.cdivision(True)
cdef inline void scaled_copy(const floating *x, floating *y, Py_ssize_t n, int e) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = f_ldexp(x[i], -e)


@cython.cdivision(True)
cdef inline Py_ssize_t row_weights(const floating *qi, const floating *ks, const floating *q0,
                            const floating *k0, const unsigned char *mrow, bint has_mask,
                            Py_ssize_t S, Py_ssize_t E, floating sch, floating scl,
                            int shift, bint exact, floating *wh, floating *wl,
                            floating *dh, floating *dl) noexcept nogil:
    """Unnormalised weights exp(u_j - m) (double-words; 0 where masked) and their sum.
    qi, ks: the scaled query row and keys; q0, k0: the unscaled ones (exact path).
    Returns the number of unmasked keys."""
    cdef Py_ssize_t j, t, jm = -1, nfree = 0
    cdef floating s, c, uh, ul, mh = 0, ml = 0, th, tl, eh, el, sh = 0, sl = 0
    for j in range(S):
        if has_mask and not mrow[j]:
            continue
        s = 0
        c = 0
        for t in range(E):
            acc_prod(qi[t], ks[j * E + t], &s, &c)
        s = fast_two_sum(s, c, &c)
        dw_mul(s, c, sch, scl, &uh, &ul)
        wh[j] = uh
        wl[j] = ul
        nfree += 1
        if jm < 0 or uh > mh or (uh == mh and ul > ml) or uh != uh:
            jm = j
            mh = uh
            ml = ul
    if nfree and exact:
        # Design (d'): exact differences against the approximate argmax, the argmax of
        # those (correctly rounded, so monotone), then again against the true argmax
        for j in range(S):
            if not (has_mask and not mrow[j]):
                exact_diff(q0, k0 + j * E, k0 + jm * E, E, &wh[j], &wl[j])
        t = jm
        mh = 0
        ml = 0
        for j in range(S):
            if not (has_mask and not mrow[j]) and (wh[j] > mh or (wh[j] == mh and wl[j] > ml)):
                t = j
                mh = wh[j]
                ml = wl[j]
        if t != jm:
            jm = t
            for j in range(S):
                if not (has_mask and not mrow[j]):
                    exact_diff(q0, k0 + j * E, k0 + jm * E, E, &wh[j], &wl[j])
    for j in range(S):
        if has_mask and not mrow[j]:
            wh[j] = 0
            wl[j] = 0
            continue
        if exact:
            dw_mul(wh[j], wl[j], sch, scl, &th, &tl)
        else:
            th = two_sum(wh[j], -mh, &tl)
            tl = tl + (wl[j] - ml)
            th = fast_two_sum(th, tl, &tl)
            th = f_ldexp(th, shift)
            tl = f_ldexp(tl, shift)
        if j == jm and mh - mh == 0:
            # the argmax weight is exp(0) = 1 exactly (Design e); a NaN or +inf max
            # is not skipped: its inf - inf = NaN propagates (IEEE)
            th = 0
            tl = 0
        exp_dw(th, tl, &eh, &el)
        wh[j] = eh
        wl[j] = el
        dw_add(sh, sl, eh, el, &sh, &sl)
    dh[0] = sh
    dl[0] = sl
    return nfree


@cython.cdivision(True)
cdef inline bint needs_exact(Py_ssize_t E, floating sch, int shift, bint fin) noexcept nogil:
    # Design (d'): Dot2's error E eps^2 2^shift |scale| (absolute, in a shifted score) is
    # a relative error of the weights; the exact path takes over above eps / 16
    cdef floating eps, bound
    if not fin or E == 0:
        return False
    if floating is float:
        eps = 5.960464477539063e-08
    else:
        eps = 1.1102230246251565e-16
    bound = f_ldexp(<floating>E * (sch if sch >= 0 else -sch), shift)
    return not (bound * eps * 16 < 1)
