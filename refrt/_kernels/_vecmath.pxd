# Array exp (see vecmath.h for the contract).  `vexp` dispatches on the fused type.
from cython cimport floating

cdef extern from "vecmath.h" nogil:
    void refrt_vexp_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vexp_f32(const float *x, float *y, Py_ssize_t n)


cdef inline void vexp(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vexp_f32(x, y, n)
    else:
        refrt_vexp_f64(x, y, n)
