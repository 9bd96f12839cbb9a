# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Python entry points to the array exp, log, expm1, log1p, tanh, sinh and cosh
of vecmath.h, for tests and benchmarks.

Design:
a) ``vexp`` takes a 1-d float32/float64 array of any stride; strided input is copied to
   a contiguous buffer (the C routine needs unit stride), contiguous input is passed
   as is, so a slice starting at offset 1 really reaches the C loop unaligned.
b) ``out=`` lets a benchmark time the loop without the allocation, and lets a test
   check in-place use (``out`` may be ``x``).
"""
import numpy as np
from cython cimport floating
from libc.math cimport exp, expf, log, logf
from ._vecmath cimport (vexp as _vexp, vlog as _vlog, vexpm1 as _vexpm1,
                       vlog1p as _vlog1p, vtanh as _vtanh, vsinh as _vsinh,
                       vcosh as _vcosh)


cdef enum:
    EXP, LOG, EXPM1, LOG1P, TANH, SINH, COSH


def _run(const floating[::1] x,     # IN
         floating[::1] y,           # OUT
         int which):
    cdef Py_ssize_t n = x.shape[0]
    cdef const floating *px = &x[0] if n else NULL
    cdef floating *py = &y[0] if n else NULL
    with nogil:
        if which == LOG:
            _vlog(px, py, n)
        elif which == EXPM1:
            _vexpm1(px, py, n)
        elif which == LOG1P:
            _vlog1p(px, py, n)
        elif which == TANH:
            _vtanh(px, py, n)
        elif which == SINH:
            _vsinh(px, py, n)
        elif which == COSH:
            _vcosh(px, py, n)
        else:
            _vexp(px, py, n)


def _check(name, x, out):
    x = np.asarray(x)
    if x.ndim != 1 or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: x: expected a 1-d float32/float64 array, got "
                        f"{x.ndim}-d {x.dtype}")
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(x)
    elif (out.dtype != x.dtype or not out.flags.c_contiguous or out.ndim != 1
          or out.shape != x.shape):
        raise TypeError(f"{name}: out: expected a contiguous {x.shape} {x.dtype} array, "
                        f"got {out.shape} {out.dtype}")
    return x, out


def vexp(x, out=None):
    """y = exp(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vexp", x, out)
    _run(x, out, EXP)
    return out


def vlog(x, out=None):
    """y = log(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vlog", x, out)
    _run(x, out, LOG)
    return out


def vexpm1(x, out=None):
    """y = expm1(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vexpm1", x, out)
    _run(x, out, EXPM1)
    return out


def vlog1p(x, out=None):
    """y = log1p(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vlog1p", x, out)
    _run(x, out, LOG1P)
    return out


def vtanh(x, out=None):
    """y = tanh(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vtanh", x, out)
    _run(x, out, TANH)
    return out


def vsinh(x, out=None):
    """y = sinh(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vsinh", x, out)
    _run(x, out, SINH)
    return out


def vcosh(x, out=None):
    """y = cosh(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x, out = _check("vcosh", x, out)
    _run(x, out, COSH)
    return out


def libm_exp(const floating[::1] x,    # IN
             floating[::1] y):         # OUT
    """y = exp(x) with the scalar libm call per element (expf for float32): the baseline
    that vecmath.h replaces, for benchmarks."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in range(n):
            if floating is float:
                y[i] = expf(x[i])
            else:
                y[i] = exp(x[i])
    return y


def libm_log(const floating[::1] x,    # IN
             floating[::1] y):         # OUT
    """y = log(x) with the scalar libm call per element (logf for float32)."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in range(n):
            if floating is float:
                y[i] = logf(x[i])
            else:
                y[i] = log(x[i])
    return y


# ------------------------------------------- correctly rounded float32 (vecmath.h C1-C4)
from ._vecmath cimport (refrt_vexp_cr_f32, refrt_vlog_cr_f32, refrt_vlog1p_cr_f32,
                       refrt_vexpm1_cr_f32, refrt_vtanh_cr_f32, refrt_vsigmoid_cr_f32,
                       refrt_raw_exp_f32, refrt_raw_log_f32, refrt_raw_log1p_f32,
                       refrt_raw_expm1_f32, refrt_raw_tanh_f32, refrt_raw_sigmoid_f32)

CR_NAMES = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid")


def cr_f32(name, const float[::1] x,    # IN
           float[::1] y):               # OUT (may be x)
    """y = name(x), the correctly rounded float32 routine of vecmath.h (name in
    CR_NAMES); evaluates in double internally (vecmath.h C1)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int w = CR_NAMES.index(name)
    if y.shape[0] != n:
        raise ValueError(f"cr_f32: y: expected {n} elements, got {y.shape[0]}")
    if n == 0:
        return y
    with nogil:
        if w == 0:
            refrt_vexp_cr_f32(&x[0], &y[0], n)
        elif w == 1:
            refrt_vlog_cr_f32(&x[0], &y[0], n)
        elif w == 2:
            refrt_vlog1p_cr_f32(&x[0], &y[0], n)
        elif w == 3:
            refrt_vexpm1_cr_f32(&x[0], &y[0], n)
        elif w == 4:
            refrt_vtanh_cr_f32(&x[0], &y[0], n)
        else:
            refrt_vsigmoid_cr_f32(&x[0], &y[0], n)
    return y


def raw_f32(name, const float[::1] x,   # IN
            double[::1] v):             # OUT
    """v = the double result of the fast path of the correctly rounded float32 routine,
    before the rounding test (for bench/exhaustive_f32.py and the tests)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int w = CR_NAMES.index(name)
    if v.shape[0] != n:
        raise ValueError(f"raw_f32: v: expected {n} elements, got {v.shape[0]}")
    if n == 0:
        return v
    with nogil:
        if w == 0:
            refrt_raw_exp_f32(&x[0], &v[0], n)
        elif w == 1:
            refrt_raw_log_f32(&x[0], &v[0], n)
        elif w == 2:
            refrt_raw_log1p_f32(&x[0], &v[0], n)
        elif w == 3:
            refrt_raw_expm1_f32(&x[0], &v[0], n)
        elif w == 4:
            refrt_raw_tanh_f32(&x[0], &v[0], n)
        else:
            refrt_raw_sigmoid_f32(&x[0], &v[0], n)
    return v


# ----------------------------------------------- exhaustive check (bench/exhaustive_f32.py)
from libc.math cimport exp as c_exp, log as c_log, log1p as c_log1p, expm1 as c_expm1
from libc.math cimport tanh as c_tanh
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy


cdef inline double _ref_d(int w, double x) noexcept nogil:
    # glibc's double functions (< 1 ulp for exp, log, log1p, expm1; tanh < 2 ulp);
    # sigmoid branch-stable from exp: 3 roundings more (< 4 ulp)
    cdef double e
    if w == 0:
        return c_exp(x)
    elif w == 1:
        return c_log(x)
    elif w == 2:
        return c_log1p(x)
    elif w == 3:
        return c_expm1(x)
    elif w == 4:
        return c_tanh(x)
    if x >= 0:
        return 1.0 / (1.0 + c_exp(-x))
    e = c_exp(x)
    return e / (1.0 + e)


def exhaustive_range(name, uint64_t start, uint64_t stop, double window,
                     Py_ssize_t max_list=100000):
    """Check the correctly rounded float32 routine `name` on every bit pattern in
    [start, stop) against glibc's double function rounded to float.

    A reference r decides the float result when (float)(r (1 - window)) ==
    (float)(r (1 + window)) (window >= its error bound); otherwise the input is
    'unsure' and listed for the caller to decide with mpmath.

    Runs: the six functions are monotonic, so their correctly rounded results are
    monotonic along consecutive bit patterns of one sign (consecutive float values).
    Where refrt returns the same non-NaN bits c for a run of consecutive inputs, the
    reference is evaluated at the run's two ends only: if both ends round to c, every
    input between has the correctly rounded result c too (monotonic rounding of a
    monotonic function).  An end that disagrees or is unsure is reported as usual;
    a run whose ends are unsure is then checked input by input.  This is what makes
    2^32 inputs take minutes: saturation (inf, 0, +-1), exp(tiny) = 1 and the slowly
    varying parts (log of large x, sigmoid of x > 1) are runs.

    Returns (checked, flagged, mismatches, unsure, n_mismatch, n_unsure, n_reference)
    with flagged = inputs whose fast path took the fallback (C1), mismatches = decided
    inputs where refrt differs from the reference, unsure = undecided inputs with
    refrt's result (uint32 arrays), n_reference = reference evaluations made."""
    cdef int w = CR_NAMES.index(name)
    cdef Py_ssize_t B = 1 << 16, i, j, k, m, nmis = 0, nuns = 0
    cdef uint64_t b
    cdef uint64_t nflag = 0, nchk = 0, nref = 0
    cdef uint32_t u, uy
    cdef int st
    cdef float lo32, hi32
    cdef uint32_t ulo, uhi
    cdef double r
    cdef double eps
    cdef bint full
    xs = np.empty(B, np.uint32)
    ys = np.empty(B, np.float32)
    vs = np.empty(B, np.float64)
    mis = np.empty(max_list, np.uint32)
    uns = np.empty((max_list, 2), np.uint32)
    cdef uint32_t[::1] xv = xs
    cdef float[::1] yv = ys
    cdef double[::1] vv = vs
    cdef uint32_t[:, ::1] unsv = uns
    cdef uint32_t[::1] misv = mis
    eps = {"exp": 3.552713678800501e-15, "sigmoid": 3.552713678800501e-15,
           "expm1": 5.684341886080802e-14, "tanh": 1.1368683772161603e-13,
           "log": 1.4210854715202004e-14, "log1p": 1.4210854715202004e-14}[name]
    b = start
    while b < stop:
        m = <Py_ssize_t>min(<uint64_t>B, stop - b)
        with nogil:
            for i in range(m):
                xv[i] = <uint32_t>(b + i)
        xf = xs[:m].view(np.float32)
        cr_f32(name, xf, ys[:m])
        raw_f32(name, xf, vs[:m])
        with nogil:
            for i in range(m):
                r = vv[i]
                lo32 = <float>(r * (1.0 - eps))
                hi32 = <float>(r * (1.0 + eps))
                memcpy(&ulo, &lo32, 4)
                memcpy(&uhi, &hi32, 4)
                if ulo != uhi:
                    nflag += 1
            i = 0
            while i < m:
                memcpy(&uy, &yv[i], 4)
                j = i
                if (uy & 0x7fffffff) <= 0x7f800000:
                    while j + 1 < m and _bits(yv[j + 1]) == uy:
                        j += 1
                # ends of the run [i, j] (NaN results: every input on its own)
                full = j - i < 2
                if not full:
                    st = _verdict(w, xv[i], uy, window)
                    nref += 1
                    if st == 0:
                        st = _verdict(w, xv[j], uy, window)
                        nref += 1
                    full = st != 0
                if full:
                    for k in range(i, j + 1):
                        st = _verdict(w, xv[k], _bits(yv[k]), window)
                        nref += 1
                        if st == 1:
                            if nmis < max_list:
                                misv[nmis] = xv[k]
                            nmis += 1
                        elif st == 2:
                            if nuns < max_list:
                                unsv[nuns, 0] = xv[k]
                                unsv[nuns, 1] = _bits(yv[k])
                            nuns += 1
                i = j + 1
        nchk += m
        b += m
    return (nchk, nflag, mis[:min(nmis, max_list)].copy(), uns[:min(nuns, max_list)].copy(),
            nmis, nuns, nref)


cdef inline uint32_t _bits(float v) noexcept nogil:
    cdef uint32_t u
    memcpy(&u, &v, 4)
    return u


cdef inline int _verdict(int w, uint32_t u, uint32_t uy, double window) noexcept nogil:
    # 0: refrt's bits uy are the reference's rounding; 1: they differ; 2: unsure
    cdef float x, r32, lo32, hi32
    cdef uint32_t ur
    cdef double r
    memcpy(&x, &u, 4)
    r = _ref_d(w, <double>x)
    r32 = <float>r
    ur = _bits(r32)
    if (ur & 0x7fffffff) > 0x7f800000:
        return 0 if (uy & 0x7fffffff) > 0x7f800000 else 1
    lo32 = <float>(r * (1.0 - window))
    hi32 = <float>(r * (1.0 + window))
    if _bits(lo32) != _bits(hi32):
        return 2
    return 0 if ur == uy else 1
