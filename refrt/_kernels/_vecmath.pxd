# Array exp and log (see vecmath.h for the contracts).  `vexp` / `vlog` dispatch on the
# fused type: float32 arrays run the float32 routines (float arithmetic only).
from cython cimport floating

cdef extern from "vecmath.h" nogil:
    void refrt_vexp_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vexp_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vlog_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vlog_f32(const float *x, float *y, Py_ssize_t n)


cdef inline void vexp(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vexp_f32(x, y, n)
    else:
        refrt_vexp_f64(x, y, n)


cdef inline void vlog(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vlog_f32(x, y, n)
    else:
        refrt_vlog_f64(x, y, n)
