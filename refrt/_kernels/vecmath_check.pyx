# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Python entry point to the array exp of vecmath.h, for tests and benchmarks only.

Design:
a) ``vexp`` takes a 1-d float32/float64 array of any stride; strided input is copied to
   a contiguous buffer (the C routine needs unit stride), contiguous input is passed
   as is, so a slice starting at offset 1 really reaches the C loop unaligned.
b) ``out=`` lets a benchmark time the loop without the allocation, and lets a test
   check in-place use (``out`` may be ``x``).
"""
import numpy as np
from cython cimport floating
from libc.math cimport exp, expf
from ._vecmath cimport vexp as _vexp


def _run(const floating[::1] x,     # IN
         floating[::1] y):          # OUT
    cdef Py_ssize_t n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"vexp: out has {y.shape[0]} elements, x has {n}")
    with nogil:
        _vexp(&x[0] if n else NULL, &y[0] if n else NULL, n)


def vexp(x, out=None):
    """y = exp(x) elementwise via vecmath.h (1-d float32 or float64)."""
    x = np.asarray(x)
    if x.ndim != 1 or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"vexp: x: expected a 1-d float32/float64 array, got "
                        f"{x.ndim}-d {x.dtype}")
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(x)
    elif out.dtype != x.dtype or not out.flags.c_contiguous or out.ndim != 1:
        raise TypeError(f"vexp: out: expected a contiguous 1-d {x.dtype} array, got "
                        f"{out.ndim}-d {out.dtype}")
    _run(x, out)
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
