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
