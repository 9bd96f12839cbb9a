# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Elementwise kernels (forward and VJP), float32 and float64.

Design:
a) One fused type (``cython.floating``).  A float32 kernel calls the float32 libm
   function (``expf``, not ``exp``): float32 arithmetic is the thing under test.
b) ``cdivision=True``: float division by zero follows IEEE (+-inf or NaN), it never
   raises.
c) Arrays arrive 1-d and C-contiguous (the binding flattens them).
"""
from cython cimport floating
from cython.parallel cimport prange
from ._scalar cimport f_exp as _exp


def exp_fwd(const floating[::1] x,    # IN
            floating[::1] out,        # OUT
            int threads=1):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            out[i] = _exp(x[i])


def exp_vjp(const floating[::1] g,    # IN  upstream gradient
            const floating[::1] y,    # IN  forward result exp(x)
            floating[::1] gx,         # OUT
            int threads=1):
    cdef Py_ssize_t i, n = g.shape[0]
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            gx[i] = g[i] * y[i]
