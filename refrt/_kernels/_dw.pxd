# cython: language_level=3
# Double-word (hi + lo, ~2p bits) helpers shared by the attention kernels
# (refrt/_kernels/attention.pyx: scaled dot-product attention, Design (a)-(c) there;
# refrt/_kernels/mha.pyx: multi-head attention on double-word projections).
# One fused type; float32 runs float32 arithmetic (fmaf, float32 double-words).
# Divisions are IEEE (@cython.cdivision: a .pxd does not inherit the including
# module's directives), so they never raise.
cimport cython
from cython cimport floating
from libc.math cimport rint
from ._scalar cimport f_fma, two_sum, f_ldexp


cdef inline floating fast_two_sum(floating a, floating b, floating *err) noexcept nogil:
    # |a| >= |b| (or a == 0): s + err == a + b exactly (Dekker)
    cdef floating s = a + b
    err[0] = b - (s - a)
    return s


cdef inline void dw_norm(floating *h, floating *l) noexcept nogil:
    cdef floating e
    cdef floating s = fast_two_sum(h[0], l[0], &e)
    h[0] = s
    l[0] = e


cdef inline void dw_mul(floating ah, floating al, floating bh, floating bl,
                        floating *ph, floating *pl) noexcept nogil:
    # ah bh = p + fma(ah, bh, -p) exactly; the cross terms are below ulp(p)
    cdef floating p = ah * bh
    cdef floating e = f_fma(ah, bh, -p) + (ah * bl + al * bh)
    ph[0] = fast_two_sum(p, e, pl)


cdef inline void dw_add(floating ah, floating al, floating bh, floating bl,
                        floating *sh, floating *sl) noexcept nogil:
    cdef floating e
    cdef floating s = two_sum(ah, bh, &e)
    e = e + (al + bl)
    sh[0] = fast_two_sum(s, e, sl)


@cython.cdivision(True)
cdef inline void dw_div(floating ah, floating al, floating bh, floating bl,
                        floating *qh, floating *ql) noexcept nogil:
    # q1 = a / b rounded; a - q1 b = (ah - q1 bh) + al - q1 bl with q1 bh = p + pe exact
    cdef floating q1 = ah / bh
    cdef floating p = q1 * bh
    cdef floating pe = f_fma(q1, bh, -p)
    cdef floating r = ((ah - p) - pe) + (al - q1 * bl)
    qh[0] = fast_two_sum(q1, r / bh, ql)


cdef inline void acc_prod(floating a, floating b, floating *s, floating *c) noexcept nogil:
    # Dot2 step: s + c += a b, TwoProd and TwoSum errors collected in c
    cdef floating t
    cdef floating p = a * b
    cdef floating e = f_fma(a, b, -p)
    s[0] = two_sum(s[0], p, &t)
    c[0] = c[0] + (t + e)


cdef inline void acc_dw_prod(floating ah, floating al, floating b, floating *s,
                             floating *c) noexcept nogil:
    # s + c += (ah + al) b
    cdef floating t
    cdef floating p = ah * b
    cdef floating e = f_fma(ah, b, -p)
    s[0] = two_sum(s[0], p, &t)
    c[0] = c[0] + (t + (e + al * b))


cdef inline floating ln2_hi(floating x) noexcept nogil:
    if floating is float:
        return 0.6931471824645996
    else:
        return 0.6931471805599453


cdef inline floating ln2_lo(floating x) noexcept nogil:
    if floating is float:
        return -1.9046542121259336e-09
    else:
        return 2.3190468138462996e-17


cdef inline floating exp_floor(floating x) noexcept nogil:
    # below -(emax + p) ln2 - 10, exp(t) is under half the smallest subnormal
    if floating is float:
        return -115.0
    else:
        return -760.0


# Design (c): exp of a double-word argument, double-word result.
@cython.cdivision(True)
cdef inline void exp_dw(floating th, floating tl, floating *eh, floating *el) noexcept nogil:
    cdef floating n, p1, e1, rh, rl, uh, ul, ph, pl, sh, sl
    cdef int k, deg, ni
    if not (th >= exp_floor(th)):
        eh[0] = 0
        el[0] = 0
        return
    n = <floating>rint(th / ln2_hi(th))
    p1 = n * ln2_hi(th)
    e1 = f_fma(n, ln2_hi(th), -p1)
    rh = two_sum(th, -p1, &rl)
    rl = rl + ((tl - e1) - n * ln2_lo(th))
    dw_norm(&rh, &rl)
    rh = rh * <floating>0.00390625              # / 2^8, exact
    rl = rl * <floating>0.00390625
    deg = 5 if floating is float else 10
    ph = 1
    pl = 0
    for k in range(deg, 1, -1):
        dw_mul(ph, pl, rh, rl, &ph, &pl)
        # (p r) / k
        sh = ph / k
        sl = (f_fma(-sh, <floating>k, ph) + pl) / k
        dw_add(1, 0, sh, sl, &ph, &pl)
    dw_mul(rh, rl, ph, pl, &uh, &ul)           # expm1(r / 2^8)
    for k in range(8):
        dw_add(2, 0, uh, ul, &sh, &sl)
        dw_mul(uh, ul, sh, sl, &uh, &ul)       # expm1(2 r) = u (2 + u)
    dw_add(1, 0, uh, ul, &sh, &sl)
    ni = <int>n
    eh[0] = f_ldexp(sh, ni)
    el[0] = f_ldexp(sl, ni)


cdef inline void acc_dw_dw(floating ah, floating al, floating bh, floating bl, floating *s,
                           floating *c) noexcept nogil:
    # s + c += (ah + al)(bh + bl): ah bh by TwoProd, the cross terms ah bl + al bh in c
    # (al bl < 2^-2p |ah bh|: dropped, below the double-word's own precision)
    cdef floating t
    cdef floating p = ah * bh
    cdef floating e = f_fma(ah, bh, -p)
    s[0] = two_sum(s[0], p, &t)
    c[0] = c[0] + (t + (e + (ah * bl + al * bh)))
