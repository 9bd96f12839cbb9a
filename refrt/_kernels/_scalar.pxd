# cython: language_level=3
# Scalar helpers shared by every kernel module: `cdef inline ... noexcept nogil`, one
# fused type, float32 math for float32 (the libm `f` variants), float64 math for float64.
#
# Design:
# a) Each helper dispatches on the fused type with `if floating is float:` so that a
#    float32 kernel really runs float32 arithmetic; `exp()` on a float would silently
#    widen to double and hide the float32 error the tester is meant to see.
# b) Stability helpers (softplus, sigmoid, exp_diff) carry their derivation above them.
from cython cimport floating
from libc.math cimport (exp, expf, log, logf, log1p, log1pf, expm1, expm1f, sqrt, sqrtf,
                        tanh, tanhf, sinh, sinhf, cosh, coshf, fabs, fabsf, fma, fmaf,
                        pow, powf, frexp, frexpf, ldexp, ldexpf, isnan, isinf, INFINITY, NAN)


cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating f_log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating f_log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating f_expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating f_sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating f_tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating f_sinh(floating x) noexcept nogil:
    if floating is float:
        return sinhf(x)
    else:
        return sinh(x)


cdef inline floating f_cosh(floating x) noexcept nogil:
    if floating is float:
        return coshf(x)
    else:
        return cosh(x)


cdef inline floating f_abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating f_fma(floating a, floating b, floating c) noexcept nogil:
    if floating is float:
        return fmaf(a, b, c)
    else:
        return fma(a, b, c)


cdef inline floating f_pow(floating x, floating y) noexcept nogil:
    if floating is float:
        return powf(x, y)
    else:
        return pow(x, y)


cdef inline floating f_ldexp(floating x, int e) noexcept nogil:
    if floating is float:
        return ldexpf(x, e)
    else:
        return ldexp(x, e)


cdef inline floating f_frexp(floating x, int *e) noexcept nogil:
    if floating is float:
        return frexpf(x, e)
    else:
        return frexp(x, e)


cdef inline int f_exponent(floating x) noexcept nogil:
    """e with |x| = f * 2^e, f in [0.5, 1) (0 for x = 0): frexp's exponent, the
    power-of-two scaling used by the overflow/underflow rescue paths."""
    cdef int e = 0
    if floating is float:
        frexpf(x, &e)
    else:
        frexp(x, &e)
    return e


# softplus(x) = log(1 + e^x), branch-stable.
# For x > 0: log(1 + e^x) = x + log(1 + e^-x) = x + log1p(e^-x); e^-x < 1 cannot overflow
# and log1p keeps the small correction exact to ~1 ulp.  For x <= 0: log1p(e^x) directly.
# No cutoffs are needed: for x > 0 the correction underflows gracefully to 0 and x + 0 = x,
# and exp(-inf) = 0 makes softplus(+-inf) = +inf / 0 without NaN.  (sklearn's log1pexp
# cutoffs only skip work.)  Rejected: log(1 + exp(x)) overflows at x > 88 (float32) and
# loses everything below x < -17 (float32: 1 + e^x rounds to 1).
cdef inline floating softplus(floating x) noexcept nogil:
    if x > 0:
        return x + f_log1p(f_exp(-x))
    return f_log1p(f_exp(x))


# sigmoid(x) = 1 / (1 + e^-x) for x >= 0 (e^-x <= 1, no overflow), and
# e^x / (1 + e^x) for x < 0, which keeps full relative accuracy as sigmoid(x) -> 0
# (the first form would compute 1 / (1 + huge) and lose nothing either, but e^-x
# overflows to inf for x < -88 in float32, giving 1/inf = 0 instead of a subnormal).
cdef inline floating sigmoid(floating x) noexcept nogil:
    cdef floating e
    if x >= 0:
        return 1 / (1 + f_exp(-x))
    e = f_exp(x)
    return e / (1 + e)


# TwoSum (Knuth): s + err == a + b exactly, with s = fl(a + b).  No branch, so it is
# valid for any ordering of |a|, |b| (Fast2Sum would need |a| >= |b|).
cdef inline floating two_sum(floating a, floating b, floating *err) noexcept nogil:
    cdef floating s = a + b
    cdef floating bb = s - a
    err[0] = (a - (s - bb)) + (b - bb)
    return s


# exp(x - m) for finite x - m, with the rounding of the subtraction compensated:
# x - m = d + e exactly (TwoSum), so exp(x - m) = exp(d) * exp(e) = exp(d) * (1 + e + O(e^2))
# with |e| <= ulp(d) / 2.  Without this, exp amplifies the subtraction's rounding by |d|:
# at d = -80 in float32 that is ~40 ulp in the result.  The fma forms exp(d) + exp(d) * e
# with one rounding.  Non-finite x or m fall back to the plain exp (e would be NaN).
cdef inline floating exp_diff(floating x, floating m) noexcept nogil:
    cdef floating e
    cdef floating d = two_sum(x, -m, &e)
    cdef floating ed = f_exp(d)
    if isnan(e) or isinf(d):
        return ed
    return f_fma(ed, e, ed)


# 2**e0 (ah + al) (bh + bl) + c without intermediate overflow or underflow (norm.pyx Design c):
# frexp normalises both factors to [1/2, 1), the product's exponent E is an int, c is
# split the same way, both are brought to the larger exponent F (the smaller may
# underflow: it is then below the rounding of the larger), added with TwoSum, and
# scaled back with one ldexp (which overflows to +-inf only when the real value does).
cdef inline floating mul_add_scaled(floating ah, floating al, floating bh, floating bl,
                                    int e0, floating c) noexcept nogil:
    cdef int ea, eb, ec, E, F
    cdef floating ma, mb, mc, ph, pl, s, e
    if ah == 0 or bh == 0:
        return ah * bh + c
    ma = f_frexp(ah, &ea)
    al = f_ldexp(al, -ea)
    mb = f_frexp(bh, &eb)
    bl = f_ldexp(bl, -eb)
    ph = ma * mb
    pl = f_fma(ma, mb, -ph) + (ma * bl + al * mb)
    E = e0 + ea + eb
    if c == 0:
        return f_ldexp(ph + pl, E)
    mc = f_frexp(c, &ec)
    F = E if E > ec else ec
    s = two_sum(f_ldexp(ph, E - F), f_ldexp(mc, ec - F), &e)
    return f_ldexp(s + (e + f_ldexp(pl, E - F)), F)
