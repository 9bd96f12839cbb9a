# Array exp and log (see vecmath.h for the contracts).  `vexp` / `vlog` dispatch on the
# fused type: float32 arrays run the float32 routines (float arithmetic only), for the
# composite float32 kernels; `vexp_cr` ... (end of file) are the correctly rounded float32
# single functions of the elementwise ops (double inside).
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


# expm1, log1p, tanh, sinh, cosh (vecmath.h, "expm1, log1p, tanh"), same dispatch as vexp.
cdef extern from "vecmath.h" nogil:
    void refrt_vexpm1_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vexpm1_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vlog1p_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vlog1p_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vtanh_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vtanh_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vsinh_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vsinh_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vcosh_f64(const double *x, double *y, Py_ssize_t n)
    void refrt_vcosh_f32(const float *x, float *y, Py_ssize_t n)


cdef inline void vexpm1(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vexpm1_f32(x, y, n)
    else:
        refrt_vexpm1_f64(x, y, n)


cdef inline void vlog1p(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vlog1p_f32(x, y, n)
    else:
        refrt_vlog1p_f64(x, y, n)


cdef inline void vtanh(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vtanh_f32(x, y, n)
    else:
        refrt_vtanh_f64(x, y, n)


cdef inline void vsinh(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vsinh_f32(x, y, n)
    else:
        refrt_vsinh_f64(x, y, n)


cdef inline void vcosh(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vcosh_f32(x, y, n)
    else:
        refrt_vcosh_f64(x, y, n)


# Softmax row helpers (vecmath.h, "softmax rows"): float32 and float64 by name.
cdef extern from "vecmath.h" nogil:
    double refrt_vmax_f64(const double *x, Py_ssize_t n)
    float refrt_vmax_f32(const float *x, Py_ssize_t n)
    void refrt_vshift_f64(const double *x, Py_ssize_t n, double m, double *d, double *e)
    void refrt_vshift_f32(const float *x, Py_ssize_t n, float m, float *d, float *e)
    void refrt_vexpsum_f64(const double *x, Py_ssize_t n, double m, const double *e,
                           double *t, double *out)
    void refrt_vexpsum_f32(const float *x, Py_ssize_t n, float m, const float *e,
                           float *t, float *out)
    void refrt_vlsm_out_f64(const double *d, const double *e, Py_ssize_t n, double L,
                            double *y)
    void refrt_vlsm_out_f32(const float *d, const float *e, Py_ssize_t n, float L,
                            float *y)


# Fused-type dispatchers of the row helpers (used by softmax.pyx and losses.pyx).
cdef inline floating vmax(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return refrt_vmax_f32(x, n)
    else:
        return refrt_vmax_f64(x, n)


cdef inline void vshift(const floating *x, Py_ssize_t n, floating m, floating *d,
                        floating *e) noexcept nogil:
    if floating is float:
        refrt_vshift_f32(x, n, m, d, e)
    else:
        refrt_vshift_f64(x, n, m, d, e)


cdef inline void vexpsum(const floating *x, Py_ssize_t n, floating m, const floating *e,
                         floating *t, floating *out) noexcept nogil:
    if floating is float:
        refrt_vexpsum_f32(x, n, m, e, t, out)
    else:
        refrt_vexpsum_f64(x, n, m, e, t, out)


cdef inline void vlsm_out(const floating *d, const floating *e, Py_ssize_t n, floating L,
                          floating *y) noexcept nogil:
    if floating is float:
        refrt_vlsm_out_f32(d, e, n, L, y)
    else:
        refrt_vlsm_out_f64(d, e, n, L, y)


# Correctly rounded float32 exp, log, log1p, expm1, tanh, sigmoid (vecmath.h, "correctly
# rounded float32"): evaluated internally in double, rounding test + long double fallback.
# The composite float32 kernels (softmax, losses) keep the float-only routines above.
cdef extern from "vecmath.h" nogil:
    void refrt_vexp_cr_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vlog_cr_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vlog1p_cr_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vexpm1_cr_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vtanh_cr_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_vsigmoid_cr_f32(const float *x, float *y, Py_ssize_t n)
    void refrt_raw_exp_f32(const float *x, double *v, Py_ssize_t n)
    void refrt_raw_log_f32(const float *x, double *v, Py_ssize_t n)
    void refrt_raw_log1p_f32(const float *x, double *v, Py_ssize_t n)
    void refrt_raw_expm1_f32(const float *x, double *v, Py_ssize_t n)
    void refrt_raw_tanh_f32(const float *x, double *v, Py_ssize_t n)
    void refrt_raw_sigmoid_f32(const float *x, double *v, Py_ssize_t n)


# Fused dispatchers for the elementwise ops: float32 -> the correctly rounded routines
# (double inside), float64 -> the float64 routines above.
cdef inline void vexp_cr(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vexp_cr_f32(x, y, n)
    else:
        refrt_vexp_f64(x, y, n)


cdef inline void vlog_cr(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vlog_cr_f32(x, y, n)
    else:
        refrt_vlog_f64(x, y, n)


cdef inline void vlog1p_cr(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vlog1p_cr_f32(x, y, n)
    else:
        refrt_vlog1p_f64(x, y, n)


cdef inline void vexpm1_cr(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vexpm1_cr_f32(x, y, n)
    else:
        refrt_vexpm1_f64(x, y, n)


cdef inline void vtanh_cr(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        refrt_vtanh_cr_f32(x, y, n)
    else:
        refrt_vtanh_f64(x, y, n)
