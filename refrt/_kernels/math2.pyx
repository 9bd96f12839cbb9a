# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Math and activation kernels (forward and VJP), float32 and float64: sin, cos, erf,
the erf form of GELU, leaky_relu, log_sigmoid, the compensated product reduction, and
cosine similarity (with its loss 1 - cos).

Design:
a) One fused type (``cython.floating``).  A float32 kernel calls the float32 libm
   function (``sinf``, ``cosf``, ``erff``, ``erfcf``, ``expf``) and does float32
   arithmetic; no kernel here widens to double.
b) ``cdivision=True``: IEEE division, never a Python exception.  Arrays arrive 1-d and
   C-contiguous (elementwise) or as (rows, n) C-contiguous (prod); the binding
   (``refrt/backends/float_math2.py``) flattens them.
c) Elementwise ops switch on a small op code per element inside a ``prange`` over the
   elements (``threads`` defaults to 1).  The parameter (negative_slope) arrives as a
   double already rounded to the input dtype by ``refrt._prepare``, so the cast is exact.
d) A VJP helper returns the whole product ``g * f'(x)``; products of a Gaussian factor
   ``e^(-x^2)`` carry the rounding of ``x^2`` (see ``_exp_neg_sq``).
e) prod carries the exponent apart from a double-word mantissa (``_pmul``): no partial
   product over- or underflows, and the result is as if computed in twice the working
   precision, then rounded once (twice when it lands in the subnormal range).  Its VJP
   uses prefix products (scratch arrays from the binding) and a running suffix product,
   so every ``prod(x[j] for j != i)`` is formed in O(n) without dividing by ``x[i]``.
f) Cosine similarity: rows scaled by a power of two, Dot2 sums, double-word norms and
   quotient (see "cosine similarity" below).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport (sin, sinf, cos, cosf, erf, erff, erfc, erfcf, isnan, isinf, signbit,
                        INFINITY, NAN, copysign, copysignf, sqrt, sqrtf)
from ._scalar cimport f_exp, f_abs, f_fma, f_frexp, f_ldexp, softplus, sigmoid, two_sum


cdef enum:
    SIN, COS, ERF, GELU_ERF, LEAKY_RELU, LOG_SIGMOID

CODES = dict(sin=SIN, cos=COS, erf=ERF, gelu_erf=GELU_ERF, leaky_relu=LEAKY_RELU,
             log_sigmoid=LOG_SIGMOID)


# Tuning constants (values from mpmath at 300 bits; hi = the value rounded to the dtype,
# lo = the rest rounded).
# RSQRT2: 1/sqrt(2) as hi + lo: |x|/sqrt(2) is formed to twice the working precision
#   (see `_gelu_erf`).
# TWO_RSQRTPI = 2/sqrt(pi), RSQRT2PI = 1/sqrt(2 pi): each adds one rounding.
# GAUSS_CUT = 40: beyond |x| = 40 every Gaussian factor e^(-x^2/2) < 1e-347 is 0 in both
#   dtypes and erfc(|x|/sqrt 2) < 1e-349 too, so gelu_erf' is exactly 1 or 0 there; the
#   cutoff keeps x^2 (which overflows for |x| > 1.8e19 in float32) out of the fma error
#   terms, where inf - inf would give NaN.
# GELU_ERF_ROOT: the zero x0 = -0.75179152469356445746 of gelu_erf'(x) = Phi(x) + x phi(x)
#   as hi + lo, and GELU_ERF_GRAD_TAYLOR the Taylor coefficients of gelu_erf' at x0 (see
#   `_gelu_erf_grad`).
# GTAIL_X = -12 (float32) / -37 (float64): below it erfc(|x|/sqrt 2) approaches the
#   subnormal range (below t = 9.19 / 26.55), where its few bits times |x|/2 gave 10 / 28
#   ulp measured in gelu_erf; the tail uses the scaled asymptotic form (`_gelu_erf_tail`).
#   GTAIL_S = 64 / 128 and GTAIL_W = GTAIL_S ln 2 as hi + lo: e^(-x^2/2) 2^S is normal
#   for every x above -GAUSS_CUT.
cdef extern from *:
    """
    static const double REFRT_RSQRT2_HI_D = 0.7071067811865476;
    static const double REFRT_RSQRT2_LO_D = -4.833646656726457e-17;
    static const float REFRT_RSQRT2_HI_F = 0.7071067690849304f;
    static const float REFRT_RSQRT2_LO_F = 1.2101617485882343e-08f;
    static const double REFRT_TWO_RSQRTPI = 1.1283791670955126;
    static const double REFRT_RSQRT2PI = 0.3989422804014327;
    static const double REFRT_GAUSS_CUT = 40.0;
    static const float REFRT_GTAIL_X_F = -12.0f;
    static const int REFRT_GTAIL_S_F = 64;
    static const float REFRT_GTAIL_W_HI_F = 44.361419677734375f;
    static const float REFRT_GTAIL_W_LO_F = -1.2189786957605975e-07f;
    static const double REFRT_GTAIL_X_D = -37.0;
    static const int REFRT_GTAIL_S_D = 128;
    static const double REFRT_GTAIL_W_HI_D = 88.722839111673;
    static const double REFRT_GTAIL_W_LO_D = 2.9683799217232634e-15;
    static const double REFRT_GELU_ERF_ROOT_HI_D = -0.7517915246935645;
    static const double REFRT_GELU_ERF_ROOT_LO_D = 1.4956759177009883e-17;
    static const float REFRT_GELU_ERF_ROOT_HI_F = -0.7517915368080139f;
    static const float REFRT_GELU_ERF_ROOT_LO_F = 1.211444988769017e-08f;
    static const double REFRT_GELU_ERF_GRAD_TAYLOR[24] = {
        0.0, 0.4314939923140469, 0.388284982990552, -0.018199676398671087,
        -0.1140082332972217, -0.014771522148244337, 0.019421679838189067,
        0.004539228379125415, -0.002239538068073497, -0.0007448268386746817,
        0.00018633974623233514, 8.615947861116571e-05, -1.121438018842664e-05,
        -7.74846130700372e-06, 4.3284506257392273e-07, 5.702764979242107e-07,
        -1.6044265494246427e-09, -3.5459866461783865e-08, -1.396942086426202e-09,
        1.90319840501314e-09, 1.4506418938779426e-10, -8.950037692726255e-11,
        -9.950340824808053e-12, 3.725967039270119e-12};
    """
    const double RSQRT2_HI_D "REFRT_RSQRT2_HI_D"
    const double RSQRT2_LO_D "REFRT_RSQRT2_LO_D"
    const float RSQRT2_HI_F "REFRT_RSQRT2_HI_F"
    const float RSQRT2_LO_F "REFRT_RSQRT2_LO_F"
    const double TWO_RSQRTPI "REFRT_TWO_RSQRTPI"
    const double RSQRT2PI "REFRT_RSQRT2PI"
    const double GAUSS_CUT "REFRT_GAUSS_CUT"
    const float GTAIL_X_F "REFRT_GTAIL_X_F"
    const int GTAIL_S_F "REFRT_GTAIL_S_F"
    const float GTAIL_W_HI_F "REFRT_GTAIL_W_HI_F"
    const float GTAIL_W_LO_F "REFRT_GTAIL_W_LO_F"
    const double GTAIL_X_D "REFRT_GTAIL_X_D"
    const int GTAIL_S_D "REFRT_GTAIL_S_D"
    const double GTAIL_W_HI_D "REFRT_GTAIL_W_HI_D"
    const double GTAIL_W_LO_D "REFRT_GTAIL_W_LO_D"
    const double GELU_ERF_ROOT_HI_D "REFRT_GELU_ERF_ROOT_HI_D"
    const double GELU_ERF_ROOT_LO_D "REFRT_GELU_ERF_ROOT_LO_D"
    const float GELU_ERF_ROOT_HI_F "REFRT_GELU_ERF_ROOT_HI_F"
    const float GELU_ERF_ROOT_LO_F "REFRT_GELU_ERF_ROOT_LO_F"
    const double *GELU_ERF_GRAD_TAYLOR "REFRT_GELU_ERF_GRAD_TAYLOR"


# ---- scalar helpers -----------------------------------------------------------------

cdef inline floating f_sin(floating x) noexcept nogil:
    if floating is float:
        return sinf(x)
    else:
        return sin(x)


cdef inline floating f_cos(floating x) noexcept nogil:
    if floating is float:
        return cosf(x)
    else:
        return cos(x)


cdef inline floating f_erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating f_erfc(floating x) noexcept nogil:
    if floating is float:
        return erfcf(x)
    else:
        return erfc(x)


# e^(-s x^2) for s in {1, 1/2}, with the rounding of x^2 compensated:
# x^2 = q + r exactly (q = fl(x*x), r = fma(x, x, -q)), so
#   e^(-s x^2) = e^(-s q) e^(-s r) = e^(-s q) (1 - s r + O(r^2)),   |r| <= ulp(q)/2,
# formed with one fma.  Without it, exp multiplies the relative rounding of x^2 by s x^2:
# ~40 ulp at x = 9 in float32 (erf') and ~25 ulp at x = 10 in float64.  s q is exact
# (s is a power of two and q is far from the underflow range).  Callers keep |x| below
# GAUSS_CUT, so q and r are finite.
cdef inline floating _exp_neg_sq(floating x, floating s) noexcept nogil:
    cdef floating q = x * x
    cdef floating r = f_fma(x, x, -q)
    cdef floating e = f_exp(-s * q)
    return f_fma(e, -s * r, e)


# erfc(|x| / sqrt 2) with the argument carried as a double word:
# t = |x| / sqrt 2 = th + tl, th = fl(|x| * RSQRT2_HI), tl = the TwoProd error plus
# |x| * RSQRT2_LO.  erfc(th + tl) = erfc(th) + erfc'(th) tl + O(tl^2) with
# erfc'(t) = -(2/sqrt pi) e^(-t^2), one fma.  Why: erfc(t) ~ e^(-t^2) / (t sqrt pi) has
# relative sensitivity 2 t^2 to its argument, so the plain rounding of |x| / sqrt 2
# costs t^2 ulps (~50 ulp at x = -10).  The correction is ~2 t tl / erfc relative, so
# e^(-th^2) needs no compensation of its own; it underflows (to 0, harmlessly) exactly
# where erfc(th) does.
cdef inline floating _erfc_abs_rsqrt2(floating x) noexcept nogil:
    cdef floating a = f_abs(x), th, tl, d
    if floating is float:
        th = a * RSQRT2_HI_F
        tl = f_fma(a, RSQRT2_HI_F, -th) + a * RSQRT2_LO_F
    else:
        th = a * RSQRT2_HI_D
        tl = f_fma(a, RSQRT2_HI_D, -th) + a * RSQRT2_LO_D
    d = <floating>TWO_RSQRTPI * f_exp(-(th * th))
    return f_fma(-d, tl, f_erfc(th))


# Tail of the normal distribution for x < GTAIL_X (Abramowitz & Stegun 26.2.12):
#   Phi(x) = phi(x) / |x| * A(u),  A(u) = 1 - u + 3u^2 - 15u^3 + ... = sum (-1)^k (2k-1)!! u^k,
# u = 1/x^2; the series is asymptotic and alternating, so the truncation error is below
# the first omitted term: 6 terms (float32, u <= 1/144: 1.2e-9 relative) / 8 terms
# (float64, u <= 1/1369: 2e-19).  Returns A(u) with u's one rounding (it only enters
# through the correction terms, ~u relative).
cdef inline floating _tail_series(floating x) noexcept nogil:
    cdef floating u = 1 / (x * x)
    if floating is float:
        return 1 - u * (1 - 3 * u * (1 - 5 * u * (1 - 7 * u * (1 - 9 * u))))
    else:
        return 1 - u * (1 - 3 * u * (1 - 5 * u * (1 - 7 * u * (1 - 9 * u * (1 - 11 * u * (1 - 13 * u))))))


# e^(-x^2/2) 2^S (S = GTAIL_S): normal for |x| < GAUSS_CUT.  -x^2/2 + S ln2 is formed
# with TwoSum and the low parts (rounding of x^2, of -q/2 + W_hi, and W_lo) are applied
# as e^lo = 1 + lo with one fma (as in `_exp_neg_sq`).
cdef inline floating _gauss_scaled(floating x) noexcept nogil:
    cdef floating q = x * x, r = f_fma(x, x, -q), d, err, e, lo
    if floating is float:
        d = two_sum(-q * <floating>0.5, GTAIL_W_HI_F, &err)
        lo = err + (GTAIL_W_LO_F - r * <floating>0.5)
    else:
        d = two_sum(-q * <floating>0.5, GTAIL_W_HI_D, &err)
        lo = err + (GTAIL_W_LO_D - r * <floating>0.5)
    e = f_exp(d)
    return f_fma(e, lo, e)


cdef inline floating _unscale(floating v) noexcept nogil:
    if floating is float:
        return f_ldexp(v, -GTAIL_S_F)
    else:
        return f_ldexp(v, -GTAIL_S_D)


cdef inline bint _in_gtail(floating x) noexcept nogil:
    if floating is float:
        return x < GTAIL_X_F
    else:
        return x < GTAIL_X_D


# gelu_erf(x) in the tail: x Phi(x) = x phi(x) A(u) / |x| = -phi(x) A(u), computed at
# scale 2^S and scaled back with one rounding (ldexp).
cdef inline floating _gelu_erf_tail(floating x) noexcept nogil:
    if x < -GAUSS_CUT:
        return -0.0
    return -_unscale(<floating>RSQRT2PI * _gauss_scaled(x) * _tail_series(x))


# gelu_erf'(x) in the tail: Phi + x phi = phi (A/|x| - |x|) = -phi |x| (1 - u A).
cdef inline floating _gelu_erf_grad_tail(floating x) noexcept nogil:
    cdef floating a = f_abs(x)
    return -_unscale(<floating>RSQRT2PI * _gauss_scaled(x) * (a * (1 - _tail_series(x) / (x * x))))


# gelu_erf(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2.
# For x < 0: x * (E / 2) with E = erfc(|x| / sqrt 2): no subtraction (the form
#   1 + erf(x / sqrt 2) cancels completely: at x = -6 it keeps no correct digit in
#   float32, and below x = -5.9 (float32) / -8.3 (float64) it is exactly 0).
# For x >= 0: Phi(x) = 1 - E/2 with E/2 <= 1/2, so x - x (E/2) in one fma.
# +-inf: the limits inf and -0 (x * 0 would be NaN).  Below GTAIL_X: `_gelu_erf_tail`.
cdef inline floating _gelu_erf(floating x) noexcept nogil:
    cdef floating h
    if isinf(x):
        return x if x > 0 else -0.0
    if _in_gtail(x):
        return _gelu_erf_tail(x)
    h = _erfc_abs_rsqrt2(x) * <floating>0.5
    if not x > 0:                             # x <= 0 (x * h keeps -0 and NaN)
        return x * h
    return f_fma(-x, h, x)


# Taylor polynomial sum c[k] h^k, k <= deg, coefficients stored as double
cdef inline floating _taylor(const double *c, int deg, floating h) noexcept nogil:
    cdef floating p = <floating>c[deg]
    cdef int k
    for k in range(deg - 1, -1, -1):
        p = p * h + <floating>c[k]
    return p


# gelu_erf'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi).
# For x < 0 the two terms have opposite signs and cancel at the root x0 = -0.75179...:
# within |x - x0| < 0.45 the derivative is the Taylor polynomial at x0 in h = x - x0
# (x0 = hi + lo; x - hi is exact by Sterbenz, so h has one rounding); degree 23 (float64)
# / 13 (float32) keeps the truncation below 1.9e-20 / 3.2e-11 relative over the window
# (measured with mpmath at 200 points).  (A window of 0.3 left 4 ulp measured at
# x = -1.07, where the two terms still cancel ~3x.)  Outside it the sum loses at most
# about two ulps.
# GAUSS_CUT: exactly 1 above, 0 below (see Tuning constants).
cdef inline floating _gelu_erf_grad(floating x) noexcept nogil:
    cdef floating h, cdf, pdf
    if x > GAUSS_CUT:
        return 1
    if x < -GAUSS_CUT:
        return 0
    if _in_gtail(x):
        return _gelu_erf_grad_tail(x)
    if floating is float:
        h = (x - GELU_ERF_ROOT_HI_F) - GELU_ERF_ROOT_LO_F
        if f_abs(h) < 0.45:
            return _taylor(GELU_ERF_GRAD_TAYLOR, 13, h)
    else:
        h = (x - GELU_ERF_ROOT_HI_D) - GELU_ERF_ROOT_LO_D
        if f_abs(h) < 0.45:
            return _taylor(GELU_ERF_GRAD_TAYLOR, 23, h)
    h = _erfc_abs_rsqrt2(x) * <floating>0.5
    cdf = h if x < 0 else 1 - h
    pdf = <floating>RSQRT2PI * _exp_neg_sq(x, <floating>0.5)
    return f_fma(x, pdf, cdf)


# erf'(x) = (2 / sqrt pi) e^(-x^2); beyond GAUSS_CUT it is 0 in both dtypes.
cdef inline floating _erf_grad(floating x) noexcept nogil:
    if f_abs(x) > GAUSS_CUT:
        return 0
    return <floating>TWO_RSQRTPI * _exp_neg_sq(x, <floating>1.0)


cdef inline floating _fwd(int code, floating x, floating a) noexcept nogil:
    if code == SIN:
        return f_sin(x)
    if code == COS:
        return f_cos(x)
    if code == ERF:
        return f_erf(x)
    if code == GELU_ERF:
        return _gelu_erf(x)
    if code == LEAKY_RELU:
        # x * slope on the non-positive side (NaN fails x > 0 and stays NaN; -0 * slope = -0)
        return x if x > 0 else x * a
    # LOG_SIGMOID: log sigmoid(x) = -log(1 + e^-x) = -softplus(-x) (identity); softplus
    # is the branch-stable helper of _scalar.pxd (x + log1p(e^-x) for x > 0, else
    # log1p(e^x)), so for x < 0 this is x - log1p(e^x) and for x >= 0 -log1p(e^-x):
    # both terms of the first form are negative (no cancellation), and e^-x <= 1 never
    # overflows.  log_sigmoid(+inf) = -log1p(0) = -0.
    return -softplus(-x)


cdef inline floating _vjp(int code, floating g, floating x, floating a) noexcept nogil:
    if code == SIN:
        return g * f_cos(x)
    if code == COS:
        return -g * f_sin(x)
    if code == ERF:
        return g * _erf_grad(x)
    if code == GELU_ERF:
        return g * _gelu_erf_grad(x)
    if code == LEAKY_RELU:
        return g if x > 0 else g * a
    # LOG_SIGMOID: d/dx -softplus(-x) = sigmoid(-x) = 1 - sigmoid(x), computed directly
    return g * sigmoid(-x)


def unary_fwd(int code,
              const floating[::1] x,          # IN
              floating[::1] out,              # OUT
              double p0=0, int threads=1):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating a = <floating>p0
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            out[i] = _fwd(code, x[i], a)


def unary_vjp(int code,
              const floating[::1] g,          # IN  upstream gradient
              const floating[::1] x,          # IN  forward input
              floating[::1] gx,               # OUT
              double p0=0, int threads=1):
    cdef Py_ssize_t i, n = g.shape[0]
    cdef floating a = <floating>p0
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            gx[i] = _vjp(code, g[i], x[i], a)


# ---- prod ---------------------------------------------------------------------------

# (ph + pl) * m -> renormalised (ph, pl) with the exponent moved into e[0]:
# TwoProd: ph * m = hi + fma(ph, m, -hi) exactly; pl * m adds a term of relative size
# eps, whose own rounding is O(eps^2).  frexp then rescales hi into [0.5, 1) (an exact
# power-of-two scaling, applied to the low part too), so neither part can over- or
# underflow however many factors there are; two_sum keeps |pl| <= ulp(ph) / 2.
cdef inline void _pmul(floating *ph, floating *pl, long *e, floating m) noexcept nogil:
    cdef floating hi = ph[0] * m
    cdef floating lo = f_fma(ph[0], m, -hi) + pl[0] * m
    cdef int k
    hi = f_frexp(hi, &k)
    lo = f_ldexp(lo, -k)
    e[0] += k
    hi = two_sum(hi, lo, &lo)
    ph[0] = hi
    pl[0] = lo


cdef inline floating _scale(floating hi, floating lo, long e) noexcept nogil:
    """(hi + lo) * 2**e: one rounding of the double word, then the exact scaling (a second
    rounding only when the result is subnormal; overflow gives inf)."""
    if e > 100000:
        e = 100000
    elif e < -100000:
        e = -100000
    return f_ldexp(hi + lo, <int>e)


cdef inline bint _special(floating v) noexcept nogil:
    return v == 0 or isinf(v) or isnan(v)


cdef inline floating _with_sign(floating v, bint neg) noexcept nogil:
    if floating is float:
        return copysignf(v, -1.0 if neg else 1.0)
    else:
        return copysign(v, -1.0 if neg else 1.0)


cdef inline floating _row_prod(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef floating ph = 1, pl = 0, m
    cdef long e = 0
    cdef int k
    cdef Py_ssize_t j, nz = 0, ninf = 0, nnan = 0
    cdef bint neg = 0
    for j in range(n):
        neg ^= signbit(x[j]) != 0
        if isnan(x[j]):
            nnan += 1
        elif x[j] == 0:
            nz += 1
        elif isinf(x[j]):
            ninf += 1
        else:
            m = f_frexp(f_abs(x[j]), &k)
            e += k
            _pmul(&ph, &pl, &e, m)
    if nnan or (nz and ninf):
        return NAN
    if nz:
        return _with_sign(0.0, neg)
    if ninf:
        return _with_sign(INFINITY, neg)
    return _with_sign(_scale(ph, pl, e), neg)


def prod_fwd(const floating[:, ::1] x,       # IN  (rows, n)
             floating[::1] out,              # OUT (rows,)
             int threads=1):
    cdef Py_ssize_t r, rows = x.shape[0], n = x.shape[1]
    with nogil:
        for r in prange(rows, num_threads=threads, schedule="static"):
            out[r] = _row_prod(&x[r, 0], n) if n else 1


cdef inline void _row_prod_vjp(const floating *x, Py_ssize_t n, floating g, floating *gx,
                               floating *pre_h, floating *pre_l, long *pre_e) noexcept nogil:
    # Counts of the special values and the sign of the whole row; then prefix products of
    # the finite non-zero |x| (specials count as 1: when one of them is among the "others"
    # of i, the result is decided by the counts, not by the mantissa product).
    cdef Py_ssize_t j, nz = 0, ninf = 0, nnan = 0, oz, oi, on
    cdef floating ph = 1, pl = 0, sh = 1, sl = 0, m, hi, lo, gm, v
    cdef long e = 0, se = 0, te
    cdef int k, ge
    cdef bint neg = 0, oneg, gspecial = _special(g)
    for j in range(n):
        neg ^= signbit(x[j]) != 0
        pre_h[j] = ph
        pre_l[j] = pl
        pre_e[j] = e
        if isnan(x[j]):
            nnan += 1
        elif x[j] == 0:
            nz += 1
        elif isinf(x[j]):
            ninf += 1
        else:
            m = f_frexp(f_abs(x[j]), &k)
            e += k
            _pmul(&ph, &pl, &e, m)
    gm = f_frexp(f_abs(g), &ge)
    for j in range(n - 1, -1, -1):
        oneg = neg ^ (signbit(x[j]) != 0)
        on = nnan - (isnan(x[j]) != 0)
        oz = nz - (x[j] == 0)
        oi = ninf - (isinf(x[j]) != 0)
        if on or (oz and oi):
            v = NAN
        elif oz:
            v = _with_sign(0.0, oneg)
        elif oi:
            v = _with_sign(INFINITY, oneg)
        else:
            # (prefix) * (suffix) as a double word, then * |g|: each product is TwoProd
            # plus the cross terms, rounded once at the end (see _pmul)
            hi = pre_h[j] * sh
            lo = f_fma(pre_h[j], sh, -hi) + (pre_h[j] * sl + pre_l[j] * sh)
            te = pre_e[j] + se
            if gspecial:
                v = _with_sign(_scale(hi, lo, te), oneg)
            else:
                m = hi * gm
                lo = f_fma(hi, gm, -m) + lo * gm
                gx[j] = _with_sign(_scale(m, lo, te + ge), oneg ^ (signbit(g) != 0))
                if not (isnan(x[j]) or x[j] == 0 or isinf(x[j])):
                    m = f_frexp(f_abs(x[j]), &k)
                    se += k
                    _pmul(&sh, &sl, &se, m)
                continue
        gx[j] = g * v
        if not (isnan(x[j]) or x[j] == 0 or isinf(x[j])):
            m = f_frexp(f_abs(x[j]), &k)
            se += k
            _pmul(&sh, &sl, &se, m)


def prod_vjp(const floating[:, ::1] x,       # IN  (rows, n)
             const floating[::1] g,          # IN  (rows,) upstream gradient
             floating[:, ::1] gx,            # OUT (rows, n)
             floating[:, ::1] pre_h,         # scratch (rows, n): prefix products, high part
             floating[:, ::1] pre_l,         # scratch (rows, n): low part
             long[:, ::1] pre_e,             # scratch (rows, n): exponent
             int threads=1):
    cdef Py_ssize_t r, rows = x.shape[0], n = x.shape[1]
    if n == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=threads, schedule="static"):
            _row_prod_vjp(&x[r, 0], n, g[r], &gx[r, 0], &pre_h[r, 0], &pre_l[r, 0],
                          &pre_e[r, 0])


# ---- cosine similarity ----------------------------------------------------------------
# cos(x, y) = <x, y> / (max(|x|, eps) max(|y|, eps)) per row (TorchLean
# cosineSimilaritySpec's max'(a, eps) = a > eps ? a : eps, and PyTorch 2.x's per-norm
# clamp_min).  Each row is scaled by 2^-e (e = frexp exponent of its max |x|): exact, and
# it keeps the sums of squares from overflowing (|x| > 1.8e19 in float32) or
# underflowing; the scale is put back exactly through the exponents.  The dot product and
# the sums of squares are Dot2 (TwoProd + TwoSum, a double word), the norms double-word
# square roots (r + (s - r^2 + s_lo) / 2r), and the quotient a double word too, so
# C = ch + cl is accurate to ~eps^2 relative and 1 - C (the loss) is formed by TwoSum
# without the cancellation of 1 - fl(C) when the vectors are nearly parallel.
# A norm at or below eps is replaced by eps = m 2^k (frexp): the comparison
# |x_s| 2^e > eps is made exactly on (mantissa, exponent) pairs.

cdef inline int _row_exp(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef floating m = 0
    cdef Py_ssize_t j
    cdef int e = 0
    for j in range(n):
        if f_abs(x[j]) > m:
            m = f_abs(x[j])
    if m == 0 or isinf(m) or isnan(m):
        return 0
    f_frexp(m, &e)
    return e


cdef inline floating _dot2(const floating *x, int ex, const floating *y, int ey,
                           Py_ssize_t n, floating *lo) noexcept nogil:
    cdef floating s = 0, c = 0, a, b, p, e
    cdef Py_ssize_t j
    for j in range(n):
        a = f_ldexp(x[j], -ex)
        b = f_ldexp(y[j], -ey)
        p = a * b
        c = c + f_fma(a, b, -p)
        s = two_sum(s, p, &e)
        c = c + e
    lo[0] = c
    return s


# sqrt(h + l) as a double word: r = sqrt(h), (h + l - r^2) / (2 r) with r^2 by TwoProd.
cdef inline floating _sqrt_dw(floating h, floating l, floating *lo) noexcept nogil:
    cdef floating r
    if floating is float:
        r = sqrtf(h)
    else:
        r = sqrt(h)
    if r == 0:
        lo[0] = 0
        return r
    lo[0] = ((h - r * r) - f_fma(r, r, -(r * r)) + l) / (2 * r)
    return r


# The clamped norm max(|x|, eps) as (v_hi, v_lo, exponent c): value (v_hi + v_lo) 2^c.
# Returns whether the norm was clamped.
cdef inline bint _clamped_norm(floating nh, floating nl, int e, floating eps,
                               floating *vh, floating *vl, int *c) noexcept nogil:
    cdef int k1, k2
    cdef floating m1, m2
    m1 = f_frexp(nh, &k1)
    m2 = f_frexp(eps, &k2)
    # |x| = nh 2^e (nl only matters at an exact tie of nh with eps, where > fails anyway)
    if nh != 0 and (e + k1 > k2 or (e + k1 == k2 and (m1 > m2 or (m1 == m2 and nl > 0)))):
        vh[0] = nh
        vl[0] = nl
        c[0] = e
        return 0
    vh[0] = m2
    vl[0] = 0
    c[0] = k2
    return 1


cdef inline void _cos_parts(const floating *x, const floating *y, Py_ssize_t n, floating eps,
                            floating *ch, floating *cl, int *sc, floating *vx, floating *vy,
                            int *cx, int *cy, int *ex, int *ey, bint *clx,
                            bint *cly) noexcept nogil:
    """C = (ch + cl) 2^sc, and the clamped norms (vx, cx), (vy, cy)."""
    cdef floating dh, dl, sh, sl, nh, nl, vxl, vyl, ph, pl, q, r
    ex[0] = _row_exp(x, n)
    ey[0] = _row_exp(y, n)
    dh = _dot2(x, ex[0], y, ey[0], n, &dl)
    sh = _dot2(x, ex[0], x, ex[0], n, &sl)
    nh = _sqrt_dw(sh, sl, &nl)
    clx[0] = _clamped_norm(nh, nl, ex[0], eps, vx, &vxl, cx)
    sh = _dot2(y, ey[0], y, ey[0], n, &sl)
    nh = _sqrt_dw(sh, sl, &nl)
    cly[0] = _clamped_norm(nh, nl, ey[0], eps, vy, &vyl, cy)
    ph = vx[0] * vy[0]
    pl = f_fma(vx[0], vy[0], -ph) + (vx[0] * vyl + vxl * vy[0])
    q = dh / ph
    r = (f_fma(-q, ph, dh) + dl - q * pl) / ph
    ch[0] = q
    cl[0] = r
    sc[0] = ex[0] + ey[0] - cx[0] - cy[0]


# 1 - cos for unclamped norms, as |x/|x| - y/|y||^2 / 2 (|u - w|^2 = 2 - 2 u.w for unit
# u, w).  Why not 1 - (ch + cl): the double-word C still carries ~eps^2 absolute error,
# which is all of 1 - cos when the vectors agree to ~eps (measured: 5734 ulp at
# 1 - cos = 4e-20).  Here each unit-vector component is a double-word quotient and the
# differences are TwoSums, so the only error of size eps^2 is the normalisation's:
# u_c = u (1 + dx), and |u_c - w_c|^2 = |u - w|^2 + 2 (dx + dy)(1 - cos) + O(d^2),
# a relative error of O(eps^2).  Rows are scaled as above (the quotient is scale-free).
cdef inline floating _one_minus_cos(const floating *x, int ex, floating vx,
                                    const floating *y, int ey, floating vy,
                                    Py_ssize_t n) noexcept nogil:
    cdef floating sh, sl, nxh, nxl, nyh, nyl, a, q, ql, b, w, wl, d, dl, p, s = 0, c = 0, e
    cdef Py_ssize_t j
    sh = _dot2(x, ex, x, ex, n, &sl)
    nxh = _sqrt_dw(sh, sl, &nxl)
    sh = _dot2(y, ey, y, ey, n, &sl)
    nyh = _sqrt_dw(sh, sl, &nyl)
    for j in range(n):
        a = f_ldexp(x[j], -ex)
        q = a / nxh
        ql = (f_fma(-q, nxh, a) - q * nxl) / nxh
        b = f_ldexp(y[j], -ey)
        w = b / nyh
        wl = (f_fma(-w, nyh, b) - w * nyl) / nyh
        d = two_sum(q, -w, &dl)
        # renormalise: q - w cancels to ~|u - w| while ql - wl stays ~eps, so without it
        # the dropped dl^2 is (eps / |u - w|)^2 relative (5e-12 measured at 1 - cos = 2e-21)
        d = two_sum(d, dl + (ql - wl), &dl)
        p = d * d
        c = c + (f_fma(d, d, -p) + 2 * d * dl)
        s = two_sum(s, p, &e)
        c = c + e
    return (s + c) * <floating>0.5


def cosine_fwd(const floating[:, ::1] x,      # IN  (rows, n)
               const floating[:, ::1] y,      # IN  (rows, n)
               floating[::1] out,             # OUT (rows,): C, or 1 - C when one_minus
               double eps, bint one_minus=False, int threads=1):
    cdef Py_ssize_t r, rows = x.shape[0], n = x.shape[1]
    cdef floating ch, cl, vx, vy, e, s, ep = <floating>eps
    cdef int sc, cx, cy, ex, ey
    cdef bint clx, cly
    with nogil:
        for r in prange(rows, num_threads=threads, schedule="static"):
            _cos_parts(&x[r, 0], &y[r, 0], n, ep, &ch, &cl, &sc, &vx, &vy, &cx, &cy,
                       &ex, &ey, &clx, &cly)
            ch = f_ldexp(ch, sc)
            cl = f_ldexp(cl, sc)
            if one_minus and not (clx or cly):
                out[r] = _one_minus_cos(&x[r, 0], ex, vx, &y[r, 0], ey, vy, n)
            elif one_minus:
                # a clamped norm: 1 - (ch + cl) by TwoSum
                s = two_sum(1, -ch, &e)
                out[r] = s + (e - cl) if not isnan(ch) else ch
            else:
                out[r] = ch + cl


# Kahan's fma form of a b - c d: w = c d, e = fma(-c, d, w) (the rounding of w, exact),
# fma(a, b, -w) + e: accurate to ~2 ulp unless the difference itself cancels.
cdef inline floating _det(floating a, floating b, floating c, floating d) noexcept nogil:
    cdef floating w = c * d
    cdef floating e = f_fma(-c, d, w)
    return f_fma(a, b, -w) + e


# sum_k x_k (x_k y_j - x_j y_k) in scaled units, compensated (TwoSum).
cdef inline floating _proj_sum(const floating *x, int ex, const floating *y, int ey,
                               Py_ssize_t n, Py_ssize_t j) noexcept nogil:
    cdef floating s = 0, c = 0, e, xk, xj = f_ldexp(x[j], -ex), yj = f_ldexp(y[j], -ey)
    cdef Py_ssize_t k
    for k in range(n):
        if k == j:
            continue
        xk = f_ldexp(x[k], -ex)
        s = two_sum(s, xk * _det(xk, yj, xj, f_ldexp(y[k], -ey)), &e)
        c = c + e
    return s + c


# d C / dx_j = y_j / (Nx Ny) - [x unclamped] C x_j / |x|^2 (a clamped norm is the
# constant eps: derivative 0).  In scaled units (x = x_s 2^ex, Nx = vx 2^cx):
#   y_j / (Nx Ny) = y_s,j / (vx vy) 2^(ey - cx - cy),   C x_j / |x|^2 = C x_s,j / vx^2 2^-ex.
# The two cancel when x and y are nearly parallel (at x = y the gradient is 0 but each
# term is ~1 / |x|), so a component whose terms cancel by more than 2 bits is recomputed
# from the exact identity (|x| unclamped, so sum_k x_k^2 = |x|^2)
#   y_j / (Nx Ny) - C x_j / |x|^2 = sum_k x_k (x_k y_j - x_j y_k) / (|x|^3 Ny)
#                                 = S_j / (vx^3 vy) 2^(ey - ex - cy)  (S_j the scaled sum),
# whose 2x2 determinants are formed by Kahan's fma trick (no cancellation left but the
# real one).  That costs O(n) per recomputed component: O(n^2) per row at worst (x = y).
# (TorchLean's catalog rule divides by |p|^2 |t| instead of |p|^3 |t|, see §6.1.)
cdef inline floating _cos_grad(const floating *x, int ex, const floating *y, int ey,
                               Py_ssize_t n, Py_ssize_t j, floating a, int sa, floating b,
                               floating vx, floating vy, int cy, floating g,
                               bint clamped) noexcept nogil:
    # y_j 2^-ey would underflow (and lose bits) for a small y_j in a row scaled by its
    # largest entry, so y_j = m 2^e (frexp, m in [0.5, 1)) and the exponents are combined
    # once: a y_s,j 2^sa = (a m) 2^(e - ey + sa), one rounding of a m and the final scaling.
    cdef int e1, e2
    cdef floating m1 = f_frexp(y[j], &e1)
    cdef floating t1 = f_ldexp(a * m1, e1 - ey + sa)
    cdef floating t2, r, m2
    if clamped:
        return t1
    m2 = f_frexp(x[j], &e2)
    t2 = f_ldexp(b * m2, e2 - 2 * ex)
    r = t1 - t2
    if f_abs(t1) + f_abs(t2) > 4 * f_abs(r) and isfinite_(r):
        return f_ldexp(g * (_proj_sum(x, ex, y, ey, n, j) / (vx * vx * vx * vy)), ey - ex - cy)
    return r


cdef inline bint isfinite_(floating v) noexcept nogil:
    return not (isinf(v) or isnan(v))


def cosine_vjp(const floating[:, ::1] x,      # IN  (rows, n)
               const floating[:, ::1] y,      # IN  (rows, n)
               const floating[::1] g,         # IN  (rows,) upstream (negated for 1 - C)
               floating[:, ::1] gx,           # OUT
               floating[:, ::1] gy,           # OUT
               double eps, int threads=1):
    cdef Py_ssize_t r, j, rows = x.shape[0], n = x.shape[1]
    cdef floating ch, cl, vx, vy, c, ep = <floating>eps, a, bx, by
    cdef int sc, cx, cy, ex, ey
    cdef bint clx, cly
    with nogil:
        for r in prange(rows, num_threads=threads, schedule="static"):
            _cos_parts(&x[r, 0], &y[r, 0], n, ep, &ch, &cl, &sc, &vx, &vy, &cx, &cy,
                       &ex, &ey, &clx, &cly)
            c = f_ldexp(ch + cl, sc)
            a = g[r] / (vx * vy)
            bx = 0 if clx else g[r] * c / (vx * vx)
            by = 0 if cly else g[r] * c / (vy * vy)
            for j in range(n):
                gx[r, j] = _cos_grad(&x[r, 0], ex, &y[r, 0], ey, n, j, a, ey - cx - cy,
                                     bx, vx, vy, cy, g[r], clx)
                gy[r, j] = _cos_grad(&y[r, 0], ey, &x[r, 0], ex, n, j, a, ex - cx - cy,
                                     by, vy, vx, cx, g[r], cly)
