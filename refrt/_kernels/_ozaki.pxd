# cython: language_level=3
# ozaki.h's certified rounding of one output row (the Ozaki scheme's last step), declared
# once for the kernels that call it: linalg.pyx (matmul/linear) and conv.pyx (conv2d's
# K-major path, a per-row bias).  Suffixes: float32/float64 output, 0/1 bias given, and
# for float64 whether p1, p2 are given.
cdef extern from "ozaki.h" nogil:
    Py_ssize_t refrt_oz_row_f32_00(const double *p0, const double *p1, const double *p2,
                                   const float *bias, double ea0, double ea1,
                                   const double *eb0, const double *eb1, const int *sb,
                                   int si, double eabs, float *out, signed char *flags,
                                   Py_ssize_t p)
    Py_ssize_t refrt_oz_row_f32_01(const double *p0, const double *p1, const double *p2,
                                   const float *bias, double ea0, double ea1,
                                   const double *eb0, const double *eb1, const int *sb,
                                   int si, double eabs, float *out, signed char *flags,
                                   Py_ssize_t p)
    Py_ssize_t refrt_oz_row_f64_10(const double *p0, const double *p1, const double *p2,
                                   const double *bias, double ea0, double ea1,
                                   const double *eb0, const double *eb1, const int *sb,
                                   int si, double eabs, double *out, signed char *flags,
                                   Py_ssize_t p)
    Py_ssize_t refrt_oz_row_f64_11(const double *p0, const double *p1, const double *p2,
                                   const double *bias, double ea0, double ea1,
                                   const double *eb0, const double *eb1, const int *sb,
                                   int si, double eabs, double *out, signed char *flags,
                                   Py_ssize_t p)
