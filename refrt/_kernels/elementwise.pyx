# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Elementwise kernels (forward and VJP), float32 and float64.

Design:
a) One fused type (``cython.floating``).  A float32 kernel calls the float32 libm
   function (``expf``, not ``exp``) and does float32 arithmetic: that is the thing under
   test.  No composite kernel here widens to double, except safe_log (g).  The single
   elementary functions exp, log, log1p, expm1, tanh and sigmoid/logistic do: in
   float32 they run vecmath.h's correctly rounded routines (``vexp_cr`` ...), which
   evaluate in double with a rounding test and a long double fallback, so every float32
   result is the correctly rounded one (vecmath.h C1-C4; counts of all 2^32 inputs in
   docs/accuracy.md).  A correctly rounded result is the best a float32 function can
   return, and it makes refrt's float32 reference independent of libm.
b) ``cdivision=True``: float division by zero follows IEEE (+-inf or NaN), it never
   raises.
c) Arrays arrive 1-d and C-contiguous (the binding flattens them).
d) One scalar function per direction and arity (``_unary``, ``_unary_vjp``, ``_binary``,
   ``_binary_vjp``) switches on a small integer op code; four generic span loops call
   them and are instantiated with literal codes (see "loops"), so each op gets its own
   compiled loop without 36 hand-written copies.  exp and log use the vectorised
   ``vexp`` / ``vlog``.
e) Parameters (eps, lo/hi, alpha, c, keep) arrive as double but were already rounded to
   the input dtype by ``refrt._prepare``, so the cast to ``floating`` is exact and the
   kernels and the mp formulas see the same number.
f) A VJP helper returns the whole product ``g * f'(x)`` (not ``f'(x)``), so each op picks
   the form with the fewest roundings and no spurious overflow (e.g. inv: -(g*y)*y, not
   -g/(x*x), whose x*x underflows to 0 for |x| < 1e-19 in float32).
g) One deliberate widening: safe_log (see `_safe_log`) evaluates in double for float32
   and in long double for float64, because log(softplus(x) + eps) cancels near its root;
   within 2^-8 of log(e - 1) float64 uses a double-double form instead (`_safe_log_root`).
h) Speed: the arithmetic-only ops (`_unary_arith`) and the binary ops inline into their
   loops and auto-vectorise (sign-bit tricks instead of float compares where gcc would
   not if-convert, see `_relu`); exp, log, log1p, expm1, tanh, sinh, cosh run through
   the vectorised routines of vecmath.h (as do the VJPs of expm1, sinh, cosh), sigmoid,
   logistic, softplus, silu, gelu and elu compose them over a span (rare tail elements
   of silu / gelu are flagged in the vector loop and redone by a scalar fix-up pass);
   minimum / maximum select on bit patterns with quiet-compare masks; the other
   transcendental ops (pow, the remaining VJPs) call scalar libm per element.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport (isinf, fabs as fabs_d, fma, hypot, hypotf, ldexp, ldexpf, signbit, INFINITY, exp as exp_d,
                        log1p as log1p_d, log as log_d, expl, log1pl, logl)
from ._scalar cimport (f_exp, f_log, f_expm1, f_sqrt, f_abs, f_fma, f_pow, softplus,
                       sigmoid, two_sum, exp_diff)
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from ._vecmath cimport vexp, vlog, vexpm1, vlog1p, vtanh, vsinh, vcosh
from ._vecmath cimport (vexp_cr, vlog_cr, vlog1p_cr, vexpm1_cr, vtanh_cr,
                       refrt_vsigmoid_cr_f32)


cdef enum:
    # unary: arithmetic-only ops first (through SCALE: `_unary_arith`), then libm ones
    NEG, ABS, SIGN, SQUARE, INV, SQRT, SQRT_CLAMP, SAFE_INV, CLAMP, RELU, SCALE,
    EXP, LOG, LOG1P, EXPM1, SAFE_LOG, SIGMOID, TANH, SOFTPLUS, LOGISTIC, SILU, GELU,
    SMOOTH_ABS, SINH, COSH, ELU,
    # binary
    ADD, SUB, MUL, DIV, POW, SAFE_DIV, MINIMUM, MAXIMUM, MASK_SCALE, INVERTED_DROPOUT

UNARY_CODES = dict(neg=NEG, abs=ABS, sign=SIGN, square=SQUARE, inv=INV, exp=EXP, log=LOG,
                   log1p=LOG1P, expm1=EXPM1, sqrt=SQRT, sqrt_clamp=SQRT_CLAMP,
                   safe_inv=SAFE_INV, safe_log=SAFE_LOG, clamp=CLAMP, relu=RELU,
                   sigmoid=SIGMOID, tanh=TANH, softplus=SOFTPLUS, logistic=LOGISTIC,
                   silu=SILU, gelu=GELU, smooth_abs=SMOOTH_ABS, sinh=SINH, cosh=COSH,
                   elu=ELU, scale=SCALE)
BINARY_CODES = dict(add=ADD, sub=SUB, mul=MUL, div=DIV, pow=POW, safe_div=SAFE_DIV,
                    minimum=MINIMUM, maximum=MAXIMUM, mask_scale=MASK_SCALE,
                    inverted_dropout=INVERTED_DROPOUT)


# Tuning constants
# tanh-GELU: 2u = 2k (x + c x^3) = x (A + B x^2) with A = 2 sqrt(2/pi), B = A * 0.044715,
# each split into hi + lo (hi = A rounded to the dtype, lo = the rest rounded): the
# sigmoid below multiplies the relative error of 2u by |2u| (~87 at x = -10), so A and B
# must be carried to about twice the working precision (values from mpmath, 300 bits).
# GELU_SATURATE: beyond |x| = 1024 the sigmoid factor is exactly 1 or 0 in both dtypes
# (2u > 7e7, far past where e^-2u underflows), while x^2 <= 2^20 keeps the double-word
# products far from overflow.
cdef extern from *:
    """
    static const double REFRT_GELU_A_HI_D = 1.5957691216057308;
    static const double REFRT_GELU_A_LO_D = -9.96930880911092e-17;
    static const double REFRT_GELU_B_HI_D = 0.07135481627260025;
    static const double REFRT_GELU_B_LO_D = -6.175149918155315e-19;
    static const float REFRT_GELU_A_HI_F = 1.5957691669464111f;
    static const float REFRT_GELU_A_LO_F = -4.534068054340423e-08f;
    static const float REFRT_GELU_B_HI_F = 0.07135481387376785f;
    static const float REFRT_GELU_B_LO_F = 2.3988324659995897e-09f;
    static const double REFRT_GELU_SATURATE = 1024.0;
    static const float REFRT_TAIL_CUT_F = -80.0f;
    static const int REFRT_TAIL_S_F = 64;
    static const float REFRT_TAIL_M_F = -44.361419677734375f;
    static const float REFRT_TAIL_D_F = -1.2189786957605975e-07f;
    static const double REFRT_TAIL_CUT_D = -700.0;
    static const int REFRT_TAIL_S_D = 512;
    static const double REFRT_TAIL_M_D = -354.891356446692;
    static const double REFRT_TAIL_D_D = 1.1873519686893054e-14;
    static const double REFRT_SILU_ROOT_HI_D = -1.2784645427610737;
    static const double REFRT_SILU_ROOT_LO_D = -1.0946994183093437e-16;
    static const float REFRT_SILU_ROOT_HI_F = -1.2784645557403564f;
    static const float REFRT_SILU_ROOT_LO_F = 1.2979282537628478e-08f;
    static const double REFRT_GELU_ROOT_HI_D = -0.7524614220710163;
    static const double REFRT_GELU_ROOT_LO_D = 3.635560509207687e-17;
    static const float REFRT_GELU_ROOT_HI_F = -0.7524614334106445f;
    static const float REFRT_GELU_ROOT_LO_F = 1.1339627903339533e-08f;
    static const double REFRT_GELU_GRAD_TAYLOR[20] = {
        0.0, 0.4304000910248585, 0.38751844613578895, -0.01578285352184803,
        -0.11394448308095899, -0.01661932834305256, 0.019682309459833118,
        0.005261059254921912, -0.0024227318458750974, -0.0009274420230205449,
        0.00026392764052681053, 0.00012425227802639782, -3.4956171694436116e-05,
        -1.5950896871645105e-05, 5.918611710894005e-06, 2.4335516344299543e-06,
        -9.898647747433667e-07, -4.3102482988029016e-07, 1.4157556987729473e-07,
        7.520740909289922e-08};
    static const double REFRT_SILU_GRAD_TAYLOR[20] = {
        0.0, 0.2178117057198001, 0.1466487969969469, 0.018874814223782312,
        -0.015222655223188032, -0.006606589138356696, 0.000126627410081122,
        0.0007985218818397998, 0.00018570724361186496, -4.090534237428612e-05,
        -2.9733542213263917e-05, -2.942631888842464e-06, 2.346029682463866e-06,
        8.599695028268575e-07, -3.051244750055421e-08, -9.266646309267441e-08,
        -1.8877622907727957e-08, 4.619379769031606e-09, 2.9177603026903803e-09,
        2.3648315053103244e-10};
    """
    const double GELU_A_HI_D "REFRT_GELU_A_HI_D"
    const double GELU_A_LO_D "REFRT_GELU_A_LO_D"
    const double GELU_B_HI_D "REFRT_GELU_B_HI_D"
    const double GELU_B_LO_D "REFRT_GELU_B_LO_D"
    const float GELU_A_HI_F "REFRT_GELU_A_HI_F"
    const float GELU_A_LO_F "REFRT_GELU_A_LO_F"
    const float GELU_B_HI_F "REFRT_GELU_B_HI_F"
    const float GELU_B_LO_F "REFRT_GELU_B_LO_F"
    const double GELU_SATURATE "REFRT_GELU_SATURATE"
    const float TAIL_CUT_F "REFRT_TAIL_CUT_F"
    const int TAIL_S_F "REFRT_TAIL_S_F"
    const float TAIL_M_F "REFRT_TAIL_M_F"
    const float TAIL_D_F "REFRT_TAIL_D_F"
    const double TAIL_CUT_D "REFRT_TAIL_CUT_D"
    const int TAIL_S_D "REFRT_TAIL_S_D"
    const double TAIL_M_D "REFRT_TAIL_M_D"
    const double TAIL_D_D "REFRT_TAIL_D_D"
    const double SILU_ROOT_HI_D "REFRT_SILU_ROOT_HI_D"
    const double SILU_ROOT_LO_D "REFRT_SILU_ROOT_LO_D"
    const float SILU_ROOT_HI_F "REFRT_SILU_ROOT_HI_F"
    const float SILU_ROOT_LO_F "REFRT_SILU_ROOT_LO_F"
    const double *SILU_GRAD_TAYLOR "REFRT_SILU_GRAD_TAYLOR"
    const double GELU_ROOT_HI_D "REFRT_GELU_ROOT_HI_D"
    const double GELU_ROOT_LO_D "REFRT_GELU_ROOT_LO_D"
    const float GELU_ROOT_HI_F "REFRT_GELU_ROOT_HI_F"
    const float GELU_ROOT_LO_F "REFRT_GELU_ROOT_LO_F"
    const double *GELU_GRAD_TAYLOR "REFRT_GELU_GRAD_TAYLOR"


# Quiet comparisons (C99 isless & co.): no FE_INVALID on NaN, so gcc may turn them
# into vector compares/blends even under -ftrapping-math.
cdef extern from *:
    """
    #define refrt_lt(a, b) __builtin_isless((a), (b))
    #define refrt_gt(a, b) __builtin_isgreater((a), (b))
    #define refrt_ge(a, b) __builtin_isgreaterequal((a), (b))
    #define refrt_unord(a, b) __builtin_isunordered((a), (b))
    """
    bint refrt_lt(double a, double b) nogil
    bint refrt_gt(double a, double b) nogil
    bint refrt_ge(double a, double b) nogil
    bint refrt_unord(double a, double b) nogil


# ---- scalar helpers -----------------------------------------------------------------

cdef inline floating _hypot(floating x, floating y) noexcept nogil:
    if floating is float:
        return hypotf(x, y)
    else:
        return hypot(x, y)


# sigmoid(hi + lo) for a double-word argument (|lo| <= ulp(hi)/2):
# e^-(hi+lo) = e^-hi * e^-lo = e^-hi * (1 - lo + O(lo^2)), formed with one fma.  The
# branch on the sign of hi is the same as in `sigmoid` (_scalar.pxd): the exponential is
# always of a non-positive number, so it never overflows.
cdef inline floating _sigmoid_dw(floating hi, floating lo) noexcept nogil:
    cdef floating e
    if hi >= 0:
        e = f_exp(-hi)
        e = f_fma(e, -lo, e)
        return 1 / (1 + e)
    e = f_exp(hi)
    e = f_fma(e, lo, e)
    return e / (1 + e)


# 2u = x (A + B x^2) as hi + lo, to about twice the working precision.
# Why: gelu(x) = x sigma(2u) (derived at `_gelu`); for x < 0, sigma(2u) ~ e^(2u), so a
# relative error d in 2u becomes a relative error |2u| d in the result: plain float32
# arithmetic gives ~40-90 ulp for x in [-10, -5].  Every product is therefore split with
# fma (TwoProd: p + fma(a, b, -p) == a*b exactly) and the sum with TwoSum; the low parts
# are added once, at the end, in working precision (their own rounding is O(eps^2)).
cdef inline floating _gelu_arg(floating x, floating *lo) noexcept nogil:
    cdef floating a_hi, a_lo, b_hi, b_lo, sq, sq_lo, t, t_lo, v, v_lo, e, w
    if floating is float:
        a_hi = GELU_A_HI_F; a_lo = GELU_A_LO_F; b_hi = GELU_B_HI_F; b_lo = GELU_B_LO_F
    else:
        a_hi = GELU_A_HI_D; a_lo = GELU_A_LO_D; b_hi = GELU_B_HI_D; b_lo = GELU_B_LO_D
    sq = x * x
    sq_lo = f_fma(x, x, -sq)
    t = b_hi * sq
    t_lo = f_fma(b_hi, sq, -t) + (b_hi * sq_lo + b_lo * sq)
    v = two_sum(a_hi, t, &e)
    v_lo = e + (a_lo + t_lo)
    w = x * v
    lo[0] = f_fma(x, v, -w) + x * v_lo
    return w


# f e^x for x below TAIL_CUT (-80 float32, -700 float64), where e^x is subnormal or close:
# a subnormal e^x keeps only a few bits, and multiplying by |x| ~ 100 magnifies its
# rounding into ~45 ulp (float32, x = -100).  So e^x is formed scaled by 2^S, where it is
# normal, and the product is scaled back with one rounding (ldexp):
#   e^x = e^(x - M) e^M,  M = fl(-S ln2),  e^M = 2^-S e^d,  d = M + S ln2 (|d| < ulp(M))
#   f e^x = ldexp(f * exp(x - M) * (1 + d), -S)      (f = x for silu, 1 + x for silu')
# and for a double-word argument x + xlo (gelu), e^xlo = 1 + xlo joins the correction.
# exp_diff compensates the rounding of x - M (see _scalar.pxd).  S = 64 (float32) / 512
# (float64) puts x - M in [-60, -36] / [-390, -345] for every x whose result is not 0.
cdef inline floating _exp_times_tail(floating x, floating xlo, floating f) noexcept nogil:
    cdef floating e
    if floating is float:
        e = exp_diff(x, TAIL_M_F)
        return ldexpf(f * f_fma(e, TAIL_D_F + xlo, e), -TAIL_S_F)
    else:
        e = exp_diff(x, TAIL_M_D)
        return ldexp(f * f_fma(e, TAIL_D_D + xlo, e), -TAIL_S_D)


cdef inline bint _in_tail(floating x) noexcept nogil:
    if floating is float:
        return x < TAIL_CUT_F
    else:
        return x < TAIL_CUT_D


# tanh-GELU (TorchLean geluSpec): x (1 + tanh(u)) / 2 with u = k (x + c x^3).
# Identity: tanh(u) = (1 - e^-2u) / (1 + e^-2u), so
#   1 + tanh(u) = 2 / (1 + e^-2u) = 2 sigmoid(2u)   and   gelu(x) = x sigmoid(2u).
# The left form cancels for x < 0 (tanh(u) -> -1: at x = -5, 1 + tanh(u) ~ 1e-11 keeps
# no correct float32 digit); the right form has no subtraction at all.
# Cutoff GELU_SATURATE (see Tuning constants): beyond it the result is x or -0, which
# also gives gelu(+inf) = inf and gelu(-inf) = -0 (the limit; x * 0 would be NaN).
# Below 2u = TAIL_CUT the sigmoid is a subnormal-range e^2u: _exp_times_tail keeps the
# product exact to one rounding (else 10 / 16 ulp measured at x = -10.2 / -21.2).
cdef inline floating _gelu(floating x) noexcept nogil:
    cdef floating lo, w
    if x > GELU_SATURATE:
        return x
    if x < -GELU_SATURATE:
        return -0.0
    w = _gelu_arg(x, &lo)
    if _in_tail(w):                           # sigmoid(2u) = e^2u exactly: scaled tail
        return _exp_times_tail(w, lo, x)
    return x * _sigmoid_dw(w, lo)


# Taylor polynomial sum c[k] h^k, k <= deg, coefficients stored as double
cdef inline floating _taylor(const double *c, int deg, floating h) noexcept nogil:
    cdef floating p = <floating>c[deg]
    cdef int k
    for k in range(deg - 1, -1, -1):
        p = p * h + <floating>c[k]
    return p


# d/dx x s(2u) = s + x s (1 - s) (2u)' = s (1 + x sigmoid(-2u) (2u)'), (2u)' = A + 3 B x^2
# (1 - s is sigmoid(-2u), computed directly, not by subtraction).  The bracket crosses
# 0 at x0 = -0.75246142207101626 and cancels there (~11000 ulp measured in float64 within
# 1e-4 of x0), so |x - x0| < 0.3 uses the Taylor polynomial of gelu' at x0 (as for silu:
# x0 = hi + lo, h = (x - hi) - lo, mpmath coefficients, degree 19 / 9 for a truncation
# below 5e-18 / 1.4e-8 relative; singularities of sigmoid(2u(x)) are > 1.2 away).
cdef inline floating _gelu_grad(floating x) noexcept nogil:
    cdef floating lo, w, s, sm, dw, h
    if x > GELU_SATURATE:
        return 1
    if x < -GELU_SATURATE:
        return 0
    if floating is float:
        h = (x - GELU_ROOT_HI_F) - GELU_ROOT_LO_F
        if f_abs(h) < 0.3:
            return _taylor(GELU_GRAD_TAYLOR, 9, h)
    else:
        h = (x - GELU_ROOT_HI_D) - GELU_ROOT_LO_D
        if f_abs(h) < 0.3:
            return _taylor(GELU_GRAD_TAYLOR, 19, h)
    w = _gelu_arg(x, &lo)
    if floating is float:
        dw = GELU_A_HI_F + 3 * GELU_B_HI_F * x * x
    else:
        dw = GELU_A_HI_D + 3 * GELU_B_HI_D * x * x
    if _in_tail(w):                           # s = e^2u, 1 - s = 1: scaled tail
        return _exp_times_tail(w, lo, f_fma(x, dw, 1))
    s = _sigmoid_dw(w, lo)
    sm = _sigmoid_dw(-w, -lo)
    return s * f_fma(x * sm, dw, 1)


# silu(x) = x sigmoid(x); its -inf limit is -0 (x * 0 would be NaN).  Below TAIL_CUT,
# 1 + e^x == 1 exactly, so silu(x) = x e^x (_exp_times_tail).
cdef inline floating _silu(floating x) noexcept nogil:
    if x == -INFINITY:
        return -0.0
    if _in_tail(x):
        return _exp_times_tail(x, 0, x)
    return x * sigmoid(x)


# silu'(x) = s (1 + x sigmoid(-x)), s = sigmoid(x).  The bracket crosses 0 at
# x0 = -1.27846454276107379..., where it cancels: its rounding (~2 eps absolute) over a
# value ~|x - x0| is 2 eps / |x - x0| relative (83 ulp measured in float64 at 0.005 from
# x0).  Within |x - x0| < 0.375 the derivative is therefore the Taylor polynomial of
# silu' at x0 in h = x - x0 (x0 = hi + lo; x - hi is exact by Sterbenz, so h carries one
# rounding).  Coefficients from mpmath (200 bits); degree 19 (float64) / 10 (float32)
# keeps the truncation below 1e-17 / 1.3e-9 relative over the window (the nearest
# singularities, the poles of sigmoid at -x = +-i pi, are 3.4 away).  Outside the window
# |bracket| >= 0.3 and the fma form (one rounding) loses at most ~2 eps / 0.375.
cdef inline floating _silu_grad(floating x) noexcept nogil:
    cdef floating h
    if floating is float:
        h = (x - SILU_ROOT_HI_F) - SILU_ROOT_LO_F
        if f_abs(h) < 0.375:
            return _taylor(SILU_GRAD_TAYLOR, 10, h)
    else:
        h = (x - SILU_ROOT_HI_D) - SILU_ROOT_LO_D
        if f_abs(h) < 0.375:
            return _taylor(SILU_GRAD_TAYLOR, 19, h)
    if _in_tail(x):                           # sigmoid(-x) == 1: e^x (1 + x), scaled
        return _exp_times_tail(x, 0, 1 + x) if x > -INFINITY else 0
    return sigmoid(x) * f_fma(x, sigmoid(-x), 1)


# g * tanh'(x) = g (1 - tanh(x)^2) without cancellation: for |x| < 0.5, tanh^2 < 0.22 and
# (1 - y)(1 + y) is accurate; beyond, with t = e^(-2|x|) <= e^-1:  1 - tanh^2 =
# 4 t / (1 + t)^2.  Over a span: t for every element by vexp into gx, then the select
# (a float compare: the build's -fno-trapping-math lets gcc if-convert and vectorise it).
cdef inline void _tanh_vjp_span(const floating *g, const floating *x, const floating *y,
                                floating *gx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating t
    for i in range(n):
        gx[i] = -2 * f_abs(x[i])
    vexp(gx, gx, n)
    for i in range(n):
        t = gx[i]
        gx[i] = g[i] * ((1 - y[i]) * (1 + y[i]) if f_abs(x[i]) < <floating>0.5
                        else 4 * t / ((1 + t) * (1 + t)))


# safe_log(x) = log(softplus(x) + eps), TorchLean safeLogSpec.
# The result crosses 0 at softplus(x) = 1 - eps (x ~ 0.5413), where log is ill-conditioned
# in its argument: a relative rounding error d in s = softplus(x) + eps becomes an
# absolute error d, i.e. d / |log s| relative.  In working precision that is 6-11 ulp
# at x = 0.36..0.5 (measured) and unbounded closer to the root.  So this op deliberately
# widens: float32 evaluates in double (29 extra bits: correctly rounded unless |log s| <
# 2^-29), float64 in x87 long double (11 extra bits: within 1 ulp while |log s| > 2^-9,
# i.e. |x - 0.5413| > 0.003).  Softplus keeps its branch-stable form (_scalar.pxd).
cdef inline floating _safe_log(floating x, floating eps) noexcept nogil:
    cdef double xd, sd
    cdef long double xl, sl
    if floating is float:
        xd = x
        sd = xd + log1p_d(exp_d(-xd)) if xd > 0 else log1p_d(exp_d(xd))
        return <float>log_d(sd + <double>eps)
    else:
        if fabs_d(x - SL_X0_HI) < 0.00390625:
            return _safe_log_root(x, eps)
        xl = x
        sl = xl + log1pl(expl(-xl)) if xl > 0 else log1pl(expl(xl))
        return <double>logl(sl + <long double>eps)


# float64 safe_log within 2^-8 of x0 = log(e - 1) ~ 0.5413 (the root of softplus(x) = 1;
# the root of safe_log, softplus(x) = 1 - eps, lies inside this window for
# eps < ~2.4e-3, TorchLean's 1e-6 included): long double's 11 extra bits leave ~650 ulp
# within 1e-9 of the root there (issue 9, reproducer 5).  Larger eps move the root out
# of the window, where the long double path (and its error near that root) remains.  With t = x - x0,
#   e^x - (e - 1) = (e - 1) expm1(t),  so  softplus(x) - 1 = log((1 + e^x) / e)
#                 = log1p(w),  w = (1 - 1/e) expm1(t),
#   safe_log(x) = log(softplus(x) + eps) = log1p(d),  d = log1p(w) + eps,
# and d, which cancels between log1p(w) ~ -eps and eps near the root, is formed in
# double-double: t = (x - X0_HI) - X0_LO (the first subtraction exact by Sterbenz),
# expm1(t) = t + t^2/2 + t^3 p(t) with t and t^2 as exact pairs (TwoSum, TwoProduct) and
# the higher terms in double (|t| < 2^-8: their rounding is below 2^-70 |t|); w = K E
# with K = 1 - 1/e as a double-double; log1p(w) = w - w^2/2 + w^3 q(w), q to w^9
# (|w| < 2^-8.6: the truncation is below 2^-86), the w and w^2 terms as pairs.  The
# remaining error is ~2^-100 in absolute terms, so d keeps full relative accuracy down
# to |d| ~ 2^-45 u, i.e. for every float64 x but the ones nearest the root.
cdef double SL_X0_HI = 0.5413248546129181
cdef double SL_X0_LO = -1.8138570925507326e-17
cdef double SL_K_HI = 0.6321205588285577
cdef double SL_K_LO = 1.2428753672788363e-17


cdef inline double _safe_log_root(double x, double eps) noexcept nogil:
    cdef double th, tl, e2h, e2l, Eh, El, hi3, wh, wl, w2h, w2l, Lh, Ll, dh, dl, r, c
    th = two_sum(x - SL_X0_HI, -SL_X0_LO, &tl)
    # expm1(t) = t + t^2/2 + t^3 (1/6 + t/24 + t^2/120 + t^3/720 + t^4/5040)
    e2h = th * th
    e2l = fma(th, th, -e2h) + 2 * th * tl
    hi3 = 1.0 / 720 + th / 5040
    hi3 = 1.0 / 120 + th * hi3
    hi3 = 1.0 / 24 + th * hi3
    hi3 = e2h * th * (1.0 / 6 + th * hi3)
    Eh = two_sum(th, 0.5 * e2h, &El)
    El = El + tl + 0.5 * e2l + hi3
    Eh = two_sum(Eh, El, &El)
    # w = K E (double-double product)
    wh = SL_K_HI * Eh
    wl = fma(SL_K_HI, Eh, -wh) + (SL_K_HI * El + SL_K_LO * Eh)
    wh = two_sum(wh, wl, &wl)
    # log1p(w) = w - w^2/2 + w^3 (1/3 - w/4 + w^2/5 - ... - w^6/8 + w^7/9... )
    w2h = wh * wh
    w2l = fma(wh, wh, -w2h) + 2 * wh * wl
    r = -1.0 / 10
    r = 1.0 / 9 + wh * r
    r = -1.0 / 8 + wh * r
    r = 1.0 / 7 + wh * r
    r = -1.0 / 6 + wh * r
    r = 1.0 / 5 + wh * r
    r = -1.0 / 4 + wh * r
    r = 1.0 / 3 + wh * r
    r = w2h * wh * r
    Lh = two_sum(wh, -0.5 * w2h, &Ll)
    Ll = Ll + wl - 0.5 * w2l + r
    # d = log1p(w) + eps, then log1p(d) = log1p(dh) + dl / (1 + dh)
    dh = two_sum(Lh, eps, &c)
    dl = c + Ll
    dh = two_sum(dh, dl, &dl)
    return log1p_d(dh) + dl / (1 + dh)


# Branch-free selections on the sign bit.  A float compare may raise FE_INVALID on NaN,
# and under gcc's default -ftrapping-math that keeps it from being if-converted, so a
# loop with `x <= 0 ? 0 : x` stays scalar and mispredicts on random signs; integer tests
# on the bit pattern vectorise.
# relu(x) = x <= 0 ? +0 : x, NaN kept: clear all bits when the sign bit is set (x < 0 or
# x = -0) unless x is a NaN (exponent all ones, mantissa != 0).
cdef inline floating _relu(floating x) noexcept nogil:
    cdef uint32_t u
    cdef uint64_t w
    if floating is float:
        memcpy(&u, &x, 4)
        u = u & (<uint32_t>0 - <uint32_t>(((u >> 31) == 0) | ((u & 0x7fffffffU) > 0x7f800000U)))
        memcpy(&x, &u, 4)
    else:
        memcpy(&w, &x, 8)
        w = w & (<uint64_t>0 - <uint64_t>(((w >> 63) == 0) |
                                           ((w & 0x7fffffffffffffffULL) > 0x7ff0000000000000ULL)))
        memcpy(&x, &w, 8)
    return x


# a if the sign bit of x is clear (x >= +0 or a positive NaN), else b
cdef inline floating _if_sign_clear(floating x, floating a, floating b) noexcept nogil:
    cdef uint32_t u
    cdef uint64_t w
    if floating is float:
        memcpy(&u, &x, 4)
        return a if (u >> 31) == 0 else b
    else:
        memcpy(&w, &x, 8)
        return a if (w >> 63) == 0 else b


# sigmoid over a span, vectorised: the same branch-stable formula as `sigmoid`
# (_scalar.pxd), sigma(x) = (x >= 0 ? 1 : e) / (1 + e) with e = exp(-|x|) in (0, 1], so
# the exponential never overflows; exp comes from vexp (< 0.6 ulp).  -0 takes the
# e-branch with e = 1: 1/2 either way.  NaN: e is NaN, so the result is NaN.
cdef inline void _sigmoid_span(const floating *x, floating *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = -f_abs(x[i])
    vexp(out, out, n)
    for i in range(n):
        out[i] = _if_sign_clear(x[i], 1, out[i]) / (1 + out[i])


# sigmoid / logistic forward: float32 runs vecmath.h's correctly rounded sigmoid (one exp
# evaluation in double, 1 / (1 + e^-x) with no branch, C3), float64 `_sigmoid_span`.
cdef inline void _sigmoid_block(const floating *x, floating *out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vsigmoid_cr_f32(x, out, n)
    else:
        _sigmoid_span(x, out, n)


# silu over a span, vectorised: x * sigmoid(x) with the `_sigmoid_span` formula (the
# same roundings as the scalar `sigmoid`, exp from vexp, < 0.6 ulp), product fused into
# the last loop.  Elements below TAIL_CUT (e^x subnormal or close, and -inf, whose
# x * 0 would be NaN) are rare: the last loop only ORs a flag for them, and a scalar
# fix-up pass recomputes just those with `_silu` (its scaled tail, see
# `_exp_times_tail`).  -0: e = 1, -0 * 1/2 = -0; +inf: e = 0, inf * 1; NaN stays NaN.
cdef inline void _silu_span(const floating *x, floating *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint tail = False
    cdef floating cut = TAIL_CUT_F if floating is float else TAIL_CUT_D
    for i in range(n):
        out[i] = -f_abs(x[i])
    vexp(out, out, n)
    for i in range(n):
        out[i] = x[i] * (_if_sign_clear(x[i], 1, out[i]) / (1 + out[i]))
        tail |= refrt_lt(x[i], cut)
    if tail:
        for i in range(n):
            if x[i] < cut:
                out[i] = _silu(x[i])


# elu VJP over a span: g if x > 0 else g * (alpha e^x), as the scalar form in
# `_unary_vjp`, with e^x from vexp into gx first (< 0.6 ulp; overflow for large x > 0 is
# discarded by the select).
cdef inline void _elu_vjp_span(const floating *g, const floating *x, floating *gx,
                               Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    vexp(x, gx, n)
    for i in range(n):
        gx[i] = g[i] if refrt_gt(x[i], 0) else g[i] * (alpha * gx[i])


# gelu over a span, vectorised, with the roundings of `_gelu` / `_sigmoid_dw`:
#   pass 1: 2u = w + lo by `_gelu_arg` (fma and TwoSum only, so it vectorises), -|w| out;
#   pass 2: e = e^-|w| by vexp (< 0.6 ulp, never overflows);
#   pass 3: 2u again (recomputing ~15 flops is cheaper than storing lo), then the branch
#           of `_sigmoid_dw` as selects: w >= 0: e (1 - lo), 1 / (1 + e); else e (1 + lo),
#           e / (1 + e); times x.  It only flags the rare elements that `_gelu` treats
#           apart: |x| > GELU_SATURATE (x^2 may overflow there; also +-inf) and w below
#           TAIL_CUT (subnormal-range e^2u); a scalar fix-up pass recomputes those with
#           `_gelu`.  NaN propagates through every pass; -0: w = -0 takes the w >= 0
#           select, -0 * 1/2 = -0.
cdef inline void _gelu_span(const floating *x, floating *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint rare = False
    cdef floating w, lo, e, cut = TAIL_CUT_F if floating is float else TAIL_CUT_D
    cdef floating sat = <floating>GELU_SATURATE
    for i in range(n):
        out[i] = -f_abs(_gelu_arg(x[i], &lo))
    vexp(out, out, n)
    for i in range(n):
        w = _gelu_arg(x[i], &lo)
        e = f_fma(out[i], -lo if refrt_ge(w, 0) else lo, out[i])
        out[i] = x[i] * ((1 if refrt_ge(w, 0) else e) / (1 + e))
        rare |= refrt_lt(w, cut) | refrt_gt(f_abs(x[i]), sat)
    if rare:
        for i in range(n):
            if refrt_lt(_gelu_arg(x[i], &lo), cut) or refrt_gt(f_abs(x[i]), sat):
                out[i] = _gelu(x[i])


# elu over a span, vectorised: expm1 of every element by vexpm1 (< 0.62 ulp; for x > 0
# it is discarded, and overflow to inf there is harmless), then the select on x > 0
# (quiet compare: NaN and +-0 take alpha * expm1(x), as in the scalar form).
cdef inline void _elu_span(const floating *x, floating *out, Py_ssize_t n,
                           floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    vexpm1(x, out, n)
    for i in range(n):
        out[i] = x[i] if refrt_gt(x[i], 0) else alpha * out[i]


# softplus over a span, vectorised, the branch-stable form of `softplus` (_scalar.pxd)
# written without a branch:  softplus(x) = max(x, 0) + log1p(e),  e = exp(-|x|) in (0, 1]
# (x > 0: x + log(1 + e^-x); x <= 0: log(1 + e^x)), so exp never overflows.  Error: e
# carries 0.56 ulp, log1p's condition number e / ((1 + e) log1p(e)) is <= 1, log1p adds
# 0.7, and the sum of two non-negative terms 0.5: < 2 ulp against the registry's 4.
# -inf: e = 0, +0 + 0 = 0; +inf: inf + 0; NaN: e is NaN.  relu gives +0 for -0.
cdef inline void _softplus_span(const floating *x, floating *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = -f_abs(x[i])
    vexp(out, out, n)
    vlog1p(out, out, n)
    for i in range(n):
        out[i] = _relu(x[i]) + out[i]


# IEEE 754-2019 minimum/maximum: NaN propagates (x + y is NaN if either is), and for
# equal operands the sign bit decides, so min(-0, +0) = -0 and max(-0, +0) = +0.
# Branch-free on the bit patterns (so the loop vectorises; random signs made the
# branchy form mispredict every other element): with all-ones masks from quiet compares
#   lt: x < y, eq: x == y (false for NaN), un: x or y is NaN,
#   min bits = lt ? ux : uy, OR-ed with ux when equal: for equal operands the patterns
#     differ at most in the sign bit (+-0), and OR keeps the set one (-0);
#   max bits = gt ? ux : uy, AND-ed with ux when equal (AND keeps +0);
# then un selects the bits of x + y.
cdef inline floating _minmax(floating x, floating y, bint want_max) noexcept nogil:
    cdef floating s = x + y
    cdef uint32_t ux, uy, us, c32, e32, n32
    cdef uint64_t wx, wy, ws, c64, e64, n64
    if floating is float:
        memcpy(&ux, &x, 4)
        memcpy(&uy, &y, 4)
        memcpy(&us, &s, 4)
        c32 = <uint32_t>0 - <uint32_t>(refrt_gt(x, y) if want_max else refrt_lt(x, y))
        e32 = <uint32_t>0 - <uint32_t>(x == y)
        n32 = <uint32_t>0 - <uint32_t>refrt_unord(x, y)
        uy = (ux & c32) | (uy & ~c32)
        if want_max:
            uy = uy & (ux | ~e32)
        else:
            uy = uy | (ux & e32)
        uy = (us & n32) | (uy & ~n32)
        memcpy(&x, &uy, 4)
    else:
        memcpy(&wx, &x, 8)
        memcpy(&wy, &y, 8)
        memcpy(&ws, &s, 8)
        c64 = <uint64_t>0 - <uint64_t>(refrt_gt(x, y) if want_max else refrt_lt(x, y))
        e64 = <uint64_t>0 - <uint64_t>(x == y)
        n64 = <uint64_t>0 - <uint64_t>refrt_unord(x, y)
        wy = (wx & c64) | (wy & ~c64)
        if want_max:
            wy = wy & (wx | ~e64)
        else:
            wy = wy | (wx & e64)
        wy = (ws & n64) | (wy & ~n64)
        memcpy(&x, &wy, 8)
    return x


# Arithmetic-only ops (a few instructions, no libm call): kept in their own small
# function so the compiler inlines it into the span loops and vectorises them.
cdef inline floating _unary_arith(int code, floating x, floating p0, floating p1) noexcept nogil:
    cdef floating v
    if code == NEG:
        return -x
    elif code == ABS:
        return f_abs(x)
    elif code == SIGN:
        if x > 0:
            return 1
        if x < 0:
            return -1
        return x                              # +-0 stays +-0, NaN stays NaN
    elif code == SQUARE:
        return x * x
    elif code == INV:
        return 1 / x
    elif code == SQRT:
        return f_sqrt(x)                      # one instruction (sqrtss/sqrtsd)
    elif code == SQRT_CLAMP:
        return f_sqrt(x) if x > 0 else (x if x != x else 0)
    elif code == SAFE_INV:                    # p0 = eps
        return 1 / (x + p0)
    elif code == CLAMP:
        # Lean's max/min on an ordered type: max(lo, x) = x if lo <= x else lo, so
        # NaN gives lo; then min(hi, v) = hi if hi <= v else v.
        v = x if p0 <= x else p0
        return p1 if p1 <= v else v
    elif code == RELU:
        return _relu(x)                       # NaN <= 0 is false: relu(NaN) = NaN
    elif code == SCALE:                       # p0 = c
        return x * p0
    return x


cdef inline floating _unary(int code, floating x, floating p0, floating p1) noexcept nogil:
    if code <= SCALE:
        return _unary_arith(code, x, p0, p1)
    elif code == EXP:
        return f_exp(x)
    elif code == LOG:
        return f_log(x)
    elif code == SAFE_LOG:                    # p0 = eps
        return _safe_log(x, p0)
    elif code == SIGMOID or code == LOGISTIC:
        # logistic's own form e^x / (e^x + 1) is inf/inf = NaN for x > 88.7 (float32);
        # it is the same real function, so it shares the branch-stable sigmoid.
        return sigmoid(x)
    elif code == SILU:
        return _silu(x)
    elif code == GELU:
        return _gelu(x)
    elif code == SMOOTH_ABS:                  # p0 = eps
        # sqrt(x^2 + eps) = hypot(x, sqrt(eps)): x^2 would overflow for |x| > 1.8e19
        # (float32).  Rounding sqrt(eps) to s(1 + d) changes x^2 + eps by eps*2d, a
        # relative 2d at most: half an ulp on top of hypot's own < 1 ulp.
        return _hypot(x, f_sqrt(p0))
    elif code == ELU:                         # p0 = alpha
        return x if x > 0 else p0 * f_expm1(x)
    return x


# g * f'(x), given x and the forward result y.
cdef inline floating _unary_vjp(int code, floating g, floating x, floating y,
                                floating p0, floating p1) noexcept nogil:
    cdef floating s
    if code == NEG:
        return -g
    elif code == ABS:
        return g if x > 0 else (-g if x < 0 else 0)      # abs'(0) = 0
    elif code == SIGN:
        return 0
    elif code == SQUARE:
        return 2 * (g * x)
    elif code == INV:
        return -(g * y) * y
    elif code == EXP:
        return g * y
    elif code == LOG:
        return g / x
    elif code == LOG1P:
        return g / (1 + x)
    elif code == SQRT:
        return g / (2 * y)
    elif code == SQRT_CLAMP:
        return g / (2 * y) if x > 0 else 0
    elif code == SAFE_INV:
        return -(g * y) * y
    elif code == SAFE_LOG:
        return g * sigmoid(x) / (softplus(x) + p0)
    elif code == CLAMP:
        return g if (p0 < x and x < p1) else 0
    elif code == RELU:
        return g if x > 0 else 0              # relu'(0) = 0
    elif code == SIGMOID or code == LOGISTIC:
        return g * sigmoid(x) * sigmoid(-x)   # y (1 - y), with 1 - y never subtracted
    elif code == SILU:
        return g * _silu_grad(x)
    elif code == GELU:
        return g * _gelu_grad(x)
    elif code == SMOOTH_ABS:
        return g * (x / y)
    elif code == ELU:
        # alpha e^x from x (y + alpha would cancel as x -> -inf); elu'(0) = alpha
        return g if x > 0 else g * (p0 * f_exp(x))
    elif code == SCALE:
        return g * p0
    return g


cdef inline floating _binary(int code, floating x, floating y, floating p0) noexcept nogil:
    if code == ADD:
        return x + y
    elif code == SUB:
        return x - y
    elif code == MUL:
        return x * y
    elif code == DIV:
        return x / y
    elif code == POW:
        return f_pow(x, y)
    elif code == SAFE_DIV:                    # p0 = eps
        return x / (y + p0)
    elif code == MINIMUM:
        return _minmax(x, y, False)
    elif code == MAXIMUM:
        return _minmax(x, y, True)
    elif code == MASK_SCALE:                  # y = coeff
        return y * x
    elif code == INVERTED_DROPOUT:            # y = mask, p0 = keep
        # coeff * x with coeff = 1/keep or 0: x / keep rounds once (x * fl(1/keep) would
        # round twice); a zero coeff keeps IEEE product semantics (0 * inf = NaN).
        return x / p0 if y != 0 else 0 * x
    return x


# Gradients (g * dz/dx, g * dz/dy) given x, y and the forward result z; dz/dy goes to *gy.
cdef inline floating _binary_vjp(int code, floating g, floating x, floating y, floating z,
                                 floating p0, floating *gy) noexcept nogil:
    cdef floating q, half
    if code == ADD:
        gy[0] = g
        return g
    elif code == SUB:
        gy[0] = -g
        return g
    elif code == MUL:
        gy[0] = g * x
        return g * y
    elif code == DIV:
        # -g x / y^2 = -(g / y) (x / y); where x / y is 0, g / y may overflow (tiny y)
        # and inf * 0 would be NaN: then (g (x / y)) / y gives the zero.  The same
        # order also serves when g / y alone overflows but the product is finite
        # (subnormal y, |x / y| < 1: float32 y = -1.4e-39 gave inf for 1.5e38)
        q = g / y
        gy[0] = -q * z
        if z == 0 or (isinf(gy[0]) and not isinf(z) and not isinf(g)):
            gy[0] = -(g * z) / y
        elif floating is float:
            # a subnormal z = x / y kept few of its bits (x = 1.4e-44, y = -0.007 in
            # float32 gave 127 ulp): scale x into the normal range first, x / y = 2^-k
            # ((x 2^k) / y), and undo the power of two once, at the end, where the
            # product rounds into the subnormal range a single time.  k = 64 / 600 lifts
            # the smallest subnormal to 2^-85 / 2^-474, far from overflow.
            if f_abs(z) < <float>1.1754943508222875e-38:
                gy[0] = ldexpf(-(q * (ldexpf(x, 64) / y)), -64)
        elif f_abs(z) < 2.2250738585072014e-308:
            gy[0] = ldexp(-(q * (ldexp(x, 600) / y)), -600)
        return q
    elif code == POW:
        # d/dy = log(x) x^y, taken as 0 where x^y == 0 (log(0) * 0 would be NaN)
        # d/dx = y x^(y-1), taken as (y / x) z: y - 1 rounds away for |y| > 2^24
        # (float32), making pow(x, y - 1) = x^y; and for tiny x, x^(y-1) overflows
        # while y x^(y-1) does not.  y = 0 gives exactly 0 (not 0 * inf).  Where z
        # is 0 or inf, or y / x overflows, pow(x, y - 1) is used.
        gy[0] = 0 if z == 0 else g * f_log(x) * z
        if y == 0:
            return g * 0
        q = y / x
        if z != 0 and f_abs(z) < INFINITY and f_abs(q) < INFINITY:
            return g * (q * z)
        # order the product so an intermediate overflows only if the result does
        q = f_pow(x, y - 1)
        return (g * y) * q if f_abs(q) >= 1 else g * (y * q)
    elif code == SAFE_DIV:
        q = g / (y + p0)
        gy[0] = -q * z if z != 0 else -(g * z) / (y + p0)    # as for div
        return q
    elif code == MINIMUM or code == MAXIMUM:
        # ties split 0.5/0.5 (TorchLean runtime engine); a NaN operand gives 0 to both
        if x != x or y != y:
            gy[0] = 0
            return 0
        if x == y:
            half = g * <floating>0.5
            gy[0] = half
            return half
        if (x < y) == (code == MINIMUM):     # x is the one selected
            gy[0] = 0
            return g
        gy[0] = g
        return 0
    elif code == MASK_SCALE:
        gy[0] = 0                             # coeff is not differentiable
        return g * y
    elif code == INVERTED_DROPOUT:
        gy[0] = 0                             # the mask is not differentiable
        return g / p0 if y != 0 else 0 * g
    gy[0] = 0
    return g


# ---- loops --------------------------------------------------------------------------
# The parallel loop runs over blocks of BLOCK elements; each block calls a dispatcher
# that switches once on the op code and calls a generic span loop with a *literal*
# code.  After inlining, the compiler folds `_unary(LITERAL, ...)` to that op's body, so
# every op gets its own tight loop (auto-vectorised where the body allows) from one
# written loop.  Rejected: the switch inside a prange loop: OpenMP outlines the loop
# before inlining, the code stays a runtime value, and relu ran 6x slower than neg.

cdef enum:
    BLOCK = 4096    # elements per work item: 16-32 KiB per array, stays in L1/L2


cdef inline void _unary_span(int code, const floating *x, floating *out, Py_ssize_t n,
                             floating a, floating b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _unary(code, x[i], a, b)


cdef inline void _unary_arith_span(int code, const floating *x, floating *out, Py_ssize_t n,
                                   floating a, floating b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _unary_arith(code, x[i], a, b)


cdef inline void _unary_vjp_span(int code, const floating *g, const floating *x,
                                 const floating *y, floating *gx, Py_ssize_t n,
                                 floating a, floating b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        gx[i] = _unary_vjp(code, g[i], x[i], y[i], a, b)


cdef inline void _binary_span(int code, const floating *x, const floating *y, floating *out,
                              Py_ssize_t n, floating a) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _binary(code, x[i], y[i], a)


cdef inline void _binary_vjp_span(int code, const floating *g, const floating *x,
                                  const floating *y, const floating *z, floating *gx,
                                  floating *gy, Py_ssize_t n, floating a,
                                  bint want_gy) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating dy
    for i in range(n):
        gx[i] = _binary_vjp(code, g[i], x[i], y[i], z[i], a, &dy)
        if want_gy:
            gy[i] = dy


# gx <- g * gx: the VJPs whose derivative is one vectorised span (expm1, sinh, cosh,
# softplus)
# write f'(x) into gx first, then scale it here (the same two roundings as g * f(x)).
cdef inline void _times_g(const floating *g, floating *gx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        gx[i] = g[i] * gx[i]


cdef void _unary_block(int code, const floating *x, floating *out, Py_ssize_t n,
                       floating a, floating b) noexcept nogil:
    if code == NEG:
        _unary_arith_span(NEG, x, out, n, a, b)
    elif code == ABS:
        _unary_arith_span(ABS, x, out, n, a, b)
    elif code == SIGN:
        _unary_arith_span(SIGN, x, out, n, a, b)
    elif code == SQUARE:
        _unary_arith_span(SQUARE, x, out, n, a, b)
    elif code == INV:
        _unary_arith_span(INV, x, out, n, a, b)
    elif code == EXP:
        vexp_cr(x, out, n)              # f32: correctly rounded (vecmath.h C1); f64 < 0.6 ulp
    elif code == LOG:
        vlog_cr(x, out, n)              # f32: correctly rounded; f64 < 0.7 ulp, IEEE specials
    elif code == LOG1P:
        vlog1p_cr(x, out, n)            # f32: correctly rounded; f64 < 0.7 ulp (vecmath.h P3)
    elif code == EXPM1:
        vexpm1_cr(x, out, n)            # f32: correctly rounded; f64 < 0.62 ulp (E3)
    elif code == SQRT:
        _unary_arith_span(SQRT, x, out, n, a, b)
    elif code == SQRT_CLAMP:
        _unary_arith_span(SQRT_CLAMP, x, out, n, a, b)
    elif code == SAFE_INV:
        _unary_arith_span(SAFE_INV, x, out, n, a, b)
    elif code == SAFE_LOG:
        _unary_span(SAFE_LOG, x, out, n, a, b)
    elif code == CLAMP:
        _unary_arith_span(CLAMP, x, out, n, a, b)
    elif code == RELU:
        _unary_arith_span(RELU, x, out, n, a, b)
    elif code == SIGMOID:
        _sigmoid_block(x, out, n)
    elif code == TANH:
        vtanh_cr(x, out, n)             # f32: correctly rounded (C3); f64 < 0.62 ulp (T2)
    elif code == SOFTPLUS:
        _softplus_span(x, out, n)
    elif code == LOGISTIC:
        _sigmoid_block(x, out, n)
    elif code == SILU:
        _silu_span(x, out, n)
    elif code == GELU:
        _gelu_span(x, out, n)
    elif code == SMOOTH_ABS:
        _unary_span(SMOOTH_ABS, x, out, n, a, b)
    elif code == SINH:
        vsinh(x, out, n)                # vectorised, < 0.6 ulp (vecmath.h H1-H2)
    elif code == COSH:
        vcosh(x, out, n)
    elif code == ELU:
        _elu_span(x, out, n, a)
    elif code == SCALE:
        _unary_arith_span(SCALE, x, out, n, a, b)


cdef void _unary_vjp_block(int code, const floating *g, const floating *x, const floating *y,
                           floating *gx, Py_ssize_t n, floating a, floating b) noexcept nogil:
    if code == NEG:
        _unary_vjp_span(NEG, g, x, y, gx, n, a, b)
    elif code == ABS:
        _unary_vjp_span(ABS, g, x, y, gx, n, a, b)
    elif code == SIGN:
        _unary_vjp_span(SIGN, g, x, y, gx, n, a, b)
    elif code == SQUARE:
        _unary_vjp_span(SQUARE, g, x, y, gx, n, a, b)
    elif code == INV:
        _unary_vjp_span(INV, g, x, y, gx, n, a, b)
    elif code == EXP:
        _unary_vjp_span(EXP, g, x, y, gx, n, a, b)
    elif code == LOG:
        _unary_vjp_span(LOG, g, x, y, gx, n, a, b)
    elif code == LOG1P:
        _unary_vjp_span(LOG1P, g, x, y, gx, n, a, b)
    elif code == EXPM1:
        vexp(x, gx, n)                  # g * e^x (not y + 1: it cancels as y -> -1)
        _times_g(g, gx, n)
    elif code == SQRT:
        _unary_vjp_span(SQRT, g, x, y, gx, n, a, b)
    elif code == SQRT_CLAMP:
        _unary_vjp_span(SQRT_CLAMP, g, x, y, gx, n, a, b)
    elif code == SAFE_INV:
        _unary_vjp_span(SAFE_INV, g, x, y, gx, n, a, b)
    elif code == SAFE_LOG:
        _unary_vjp_span(SAFE_LOG, g, x, y, gx, n, a, b)
    elif code == CLAMP:
        _unary_vjp_span(CLAMP, g, x, y, gx, n, a, b)
    elif code == RELU:
        _unary_vjp_span(RELU, g, x, y, gx, n, a, b)
    elif code == SIGMOID:
        _unary_vjp_span(SIGMOID, g, x, y, gx, n, a, b)
    elif code == TANH:
        _tanh_vjp_span(g, x, y, gx, n)
    elif code == SOFTPLUS:
        _sigmoid_span(x, gx, n)         # g * sigmoid(x)
        _times_g(g, gx, n)
    elif code == LOGISTIC:
        _unary_vjp_span(LOGISTIC, g, x, y, gx, n, a, b)
    elif code == SILU:
        _unary_vjp_span(SILU, g, x, y, gx, n, a, b)
    elif code == GELU:
        _unary_vjp_span(GELU, g, x, y, gx, n, a, b)
    elif code == SMOOTH_ABS:
        _unary_vjp_span(SMOOTH_ABS, g, x, y, gx, n, a, b)
    elif code == SINH:
        vcosh(x, gx, n)                 # g * cosh(x)
        _times_g(g, gx, n)
    elif code == COSH:
        vsinh(x, gx, n)                 # g * sinh(x)
        _times_g(g, gx, n)
    elif code == ELU:
        _elu_vjp_span(g, x, gx, n, a)
    elif code == SCALE:
        _unary_vjp_span(SCALE, g, x, y, gx, n, a, b)


cdef void _binary_block(int code, const floating *x, const floating *y, floating *out,
                        Py_ssize_t n, floating a) noexcept nogil:
    if code == ADD:
        _binary_span(ADD, x, y, out, n, a)
    elif code == SUB:
        _binary_span(SUB, x, y, out, n, a)
    elif code == MUL:
        _binary_span(MUL, x, y, out, n, a)
    elif code == DIV:
        _binary_span(DIV, x, y, out, n, a)
    elif code == POW:
        _binary_span(POW, x, y, out, n, a)
    elif code == SAFE_DIV:
        _binary_span(SAFE_DIV, x, y, out, n, a)
    elif code == MINIMUM:
        _binary_span(MINIMUM, x, y, out, n, a)
    elif code == MAXIMUM:
        _binary_span(MAXIMUM, x, y, out, n, a)
    elif code == MASK_SCALE:
        _binary_span(MASK_SCALE, x, y, out, n, a)
    elif code == INVERTED_DROPOUT:
        _binary_span(INVERTED_DROPOUT, x, y, out, n, a)


cdef void _binary_vjp_block(int code, const floating *g, const floating *x, const floating *y,
                            const floating *z, floating *gx, floating *gy, Py_ssize_t n,
                            floating a, bint want_gy) noexcept nogil:
    if code == ADD:
        _binary_vjp_span(ADD, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == SUB:
        _binary_vjp_span(SUB, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == MUL:
        _binary_vjp_span(MUL, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == DIV:
        _binary_vjp_span(DIV, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == POW:
        _binary_vjp_span(POW, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == SAFE_DIV:
        _binary_vjp_span(SAFE_DIV, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == MINIMUM:
        _binary_vjp_span(MINIMUM, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == MAXIMUM:
        _binary_vjp_span(MAXIMUM, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == MASK_SCALE:
        _binary_vjp_span(MASK_SCALE, g, x, y, z, gx, gy, n, a, want_gy)
    elif code == INVERTED_DROPOUT:
        _binary_vjp_span(INVERTED_DROPOUT, g, x, y, z, gx, gy, n, a, want_gy)


def unary_fwd(int code,
              const floating[::1] x,          # IN
              floating[::1] out,              # OUT
              double p0=0, double p1=0, int threads=1):
    cdef Py_ssize_t k, lo, n = x.shape[0]
    cdef floating a = <floating>p0, b = <floating>p1
    with nogil:
        if threads > 1:
            for k in prange((n + BLOCK - 1) // BLOCK, num_threads=threads, schedule="static"):
                lo = k * BLOCK
                _unary_block(code, &x[lo], &out[lo], min(<Py_ssize_t>BLOCK, n - lo), a, b)
        else:       # no OpenMP region at 1 thread (loops, below)
            for k in range((n + BLOCK - 1) // BLOCK):
                lo = k * BLOCK
                _unary_block(code, &x[lo], &out[lo], min(<Py_ssize_t>BLOCK, n - lo), a, b)


def unary_vjp(int code,
              const floating[::1] g,          # IN  upstream gradient
              const floating[::1] x,          # IN  forward input
              const floating[::1] y,          # IN  forward result
              floating[::1] gx,               # OUT
              double p0=0, double p1=0, int threads=1):
    cdef Py_ssize_t k, lo, n = g.shape[0]
    cdef floating a = <floating>p0, b = <floating>p1
    with nogil:
        if threads > 1:
            for k in prange((n + BLOCK - 1) // BLOCK, num_threads=threads, schedule="static"):
                lo = k * BLOCK
                _unary_vjp_block(code, &g[lo], &x[lo], &y[lo], &gx[lo],
                                 min(<Py_ssize_t>BLOCK, n - lo), a, b)
        else:
            for k in range((n + BLOCK - 1) // BLOCK):
                lo = k * BLOCK
                _unary_vjp_block(code, &g[lo], &x[lo], &y[lo], &gx[lo],
                                 min(<Py_ssize_t>BLOCK, n - lo), a, b)


def binary_fwd(int code,
               const floating[::1] x,         # IN
               const floating[::1] y,         # IN
               floating[::1] out,             # OUT
               double p0=0, int threads=1):
    cdef Py_ssize_t k, lo, n = x.shape[0]
    cdef floating a = <floating>p0
    with nogil:
        if threads > 1:
            for k in prange((n + BLOCK - 1) // BLOCK, num_threads=threads, schedule="static"):
                lo = k * BLOCK
                _binary_block(code, &x[lo], &y[lo], &out[lo], min(<Py_ssize_t>BLOCK, n - lo), a)
        else:
            for k in range((n + BLOCK - 1) // BLOCK):
                lo = k * BLOCK
                _binary_block(code, &x[lo], &y[lo], &out[lo], min(<Py_ssize_t>BLOCK, n - lo), a)


def binary_vjp(int code,
               const floating[::1] g,         # IN  upstream gradient
               const floating[::1] x,         # IN
               const floating[::1] y,         # IN
               const floating[::1] z,         # IN  forward result
               floating[::1] gx,              # OUT
               floating[::1] gy,              # OUT (not written when want_gy is false)
               double p0=0, bint want_gy=True, int threads=1):
    cdef Py_ssize_t k, lo, n = g.shape[0]
    cdef floating a = <floating>p0
    with nogil:
        if threads > 1:
            for k in prange((n + BLOCK - 1) // BLOCK, num_threads=threads, schedule="static"):
                lo = k * BLOCK
                _binary_vjp_block(code, &g[lo], &x[lo], &y[lo], &z[lo], &gx[lo], &gy[lo],
                                  min(<Py_ssize_t>BLOCK, n - lo), a, want_gy)
        else:
            for k in range((n + BLOCK - 1) // BLOCK):
                lo = k * BLOCK
                _binary_vjp_block(code, &g[lo], &x[lo], &y[lo], &z[lo], &gx[lo], &gy[lo],
                                  min(<Py_ssize_t>BLOCK, n - lo), a, want_gy)


# ---- lean entries (refrt.ops' fast dispatch path) -------------------------------------
# The entries above take typed memoryviews of a fused type: Cython then picks the
# specialisation from the arguments' buffer formats and validates three memoryviews per
# call, ~0.9 us of a 1-element add.  The lean path (refrt/ops.py) has already checked
# that every input is a plain ndarray of one native float dtype; these entries take the
# raw buffers (PyBUF_SIMPLE: NumPy refuses a non-C-contiguous array there), check the
# item size and length, call the block function of that dtype directly and run the
# serial block loop (no OpenMP region).  They return False, having touched nothing,
# when a buffer is not acceptable; the caller then takes the general path (its checks
# and errors).  Same blocks, same order: the results are bitwise those of the entries
# above at 1 thread.

cdef inline bint _buf(object a, Py_buffer *v, int flags):
    try:
        PyObject_GetBuffer(a, v, flags)
    except (BufferError, ValueError, TypeError):
        return False
    return True


cdef inline bint _fits(Py_buffer *v, Py_ssize_t itemsize, Py_ssize_t nbytes) noexcept:
    return v.itemsize == itemsize and v.len == nbytes


def unary_1t(int code, object x, object out, double p0=0, double p1=0):
    """out <- op(x) for C-contiguous float buffers of one dtype and size; False (nothing
    written) when a buffer does not qualify."""
    return _unary_1t(code, x, out, p0, p1)


cdef bint _unary_1t(int code, object x, object out, double p0, double p1):
    cdef Py_buffer bx, bo
    cdef Py_ssize_t k, lo, n, isz
    cdef bint ok
    if not _buf(x, &bx, PyBUF_SIMPLE):
        return False
    if not _buf(out, &bo, PyBUF_SIMPLE | PyBUF_WRITABLE):
        PyBuffer_Release(&bx)
        return False
    isz = bx.itemsize
    ok = (isz == 4 or isz == 8) and _fits(&bo, isz, bx.len)
    if ok:
        n = bx.len // isz
        with nogil:
            for k in range((n + BLOCK - 1) // BLOCK):
                lo = k * BLOCK
                if isz == 8:
                    _unary_block(code, <const double *>bx.buf + lo, <double *>bo.buf + lo,
                                 min(<Py_ssize_t>BLOCK, n - lo), <double>p0, <double>p1)
                else:
                    _unary_block(code, <const float *>bx.buf + lo, <float *>bo.buf + lo,
                                 min(<Py_ssize_t>BLOCK, n - lo), <float>p0, <float>p1)
    PyBuffer_Release(&bo)
    PyBuffer_Release(&bx)
    return ok


def binary_1t(int code, object x, object y, object out, double p0=0):
    """out <- op(x, y) for C-contiguous float buffers of one dtype and size; False
    (nothing written) when a buffer does not qualify."""
    return _binary_1t(code, x, y, out, p0)


cdef bint _binary_1t(int code, object x, object y, object out, double p0):
    cdef Py_buffer bx, by, bo
    cdef Py_ssize_t k, lo, n, isz
    cdef bint ok
    if not _buf(x, &bx, PyBUF_SIMPLE):
        return False
    if not _buf(y, &by, PyBUF_SIMPLE):
        PyBuffer_Release(&bx)
        return False
    if not _buf(out, &bo, PyBUF_SIMPLE | PyBUF_WRITABLE):
        PyBuffer_Release(&by)
        PyBuffer_Release(&bx)
        return False
    isz = bx.itemsize
    ok = (isz == 4 or isz == 8) and _fits(&by, isz, bx.len) and _fits(&bo, isz, bx.len)
    if ok:
        n = bx.len // isz
        with nogil:
            for k in range((n + BLOCK - 1) // BLOCK):
                lo = k * BLOCK
                if isz == 8:
                    _binary_block(code, <const double *>bx.buf + lo, <const double *>by.buf + lo,
                                  <double *>bo.buf + lo, min(<Py_ssize_t>BLOCK, n - lo),
                                  <double>p0)
                else:
                    _binary_block(code, <const float *>bx.buf + lo, <const float *>by.buf + lo,
                                  <float *>bo.buf + lo, min(<Py_ssize_t>BLOCK, n - lo),
                                  <float>p0)
    PyBuffer_Release(&bo)
    PyBuffer_Release(&by)
    PyBuffer_Release(&bx)
    return ok


cdef class LeanUnary:
    """``call(x) -> out | None``: the lean forward of one unary op at one dtype (x is
    known to be a plain ndarray of that dtype); ``empty`` is numpy.empty."""
    cdef int code
    cdef double p0, p1
    cdef object dtype, empty

    def __init__(self, int code, dtype, empty, double p0=0, double p1=0):
        self.code, self.dtype, self.empty, self.p0, self.p1 = code, dtype, empty, p0, p1

    def __call__(self, x):
        out = self.empty(x.shape, self.dtype)
        return out if _unary_1t(self.code, x, out, self.p0, self.p1) else None


cdef class LeanBinary:
    """``call(x, y) -> out | None``: the lean forward of one binary op at one dtype (x is
    known to be a plain ndarray of that dtype; y is checked: type ``ndarray``, the same
    dtype object and shape)."""
    cdef int code
    cdef double p0
    cdef object dtype, empty, ndarray

    def __init__(self, int code, dtype, empty, ndarray, double p0=0):
        self.code, self.dtype, self.empty, self.ndarray, self.p0 = code, dtype, empty, ndarray, p0

    def __call__(self, x, y):
        if type(y) is not self.ndarray or y.dtype is not self.dtype:
            return None
        shape = x.shape
        if y.shape != shape:
            return None
        out = self.empty(shape, self.dtype)
        return out if _binary_1t(self.code, x, y, out, self.p0) else None
