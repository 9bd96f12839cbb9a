# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compensated matrix products: C[b] = A[b] @ Bt[b]^T (+ bias), float32 and float64.

Design:
a) One kernel shape, "A times B-transposed": a (B, m, n), bt (B, p, n), out (B, m, p),
   out[b, i, k] = sum_j a[b, i, j] bt[b, k, j].  The binding transposes B once into a
   contiguous buffer, so both operands of every dot product are contiguous rows.
   matmul, linear (W is already (out, in) = Bt) and every VJP product map onto it.
b) Each dot product is Ogita-Rump-Oishi Dot2 (SIAM J. Sci. Comput. 26, 2005): the
   product a_j b_j = p + q exactly (TwoProduct: q = fma(a, b, -p)), the running sum
   s + p = s' + r exactly (TwoSum), and all q and r are summed in a second accumulator
   added once at the end.  The result is as accurate as if computed in twice the working
   precision and rounded once: |error| <= u|dot| + gamma_n^2 sum|a_j b_j|.
   The bias (linear) is the accumulator's starting value, so y = x W^T + b is rounded once.
   Accumulation order: j = 0, 1, ..., n-1.
c) TwoProduct is exact only while a_j b_j neither overflows nor underflows.  When the
   dot of finite inputs comes out non-finite, or below 2^(emin + 2p) in magnitude (where
   underflowed products could have lost bits), it is recomputed with both rows scaled by
   powers of two so their largest entries are in [0.5, 1) (exact for normal values), and
   the result is scaled back once with ldexp: a finite true value stays finite and a
   tiny one keeps its bits.  Entries that are inf/NaN follow IEEE (the plain sum).
d) Blocking: the k loop runs over blocks of Bt rows that fit in ~256 KiB, and all rows
   of A sweep one block before the next, so each block stays in L2.  Rows of A run in
   parallel (prange over i).  A compensated kernel does ~5x the flops of a plain dot and
   cannot use BLAS register blocking: it is slower than OpenBLAS by design (measured
   2026-11 on a shared 2-core VM, 1 thread, 256^3: ~30x float64, ~55x float32).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite
from ._scalar cimport two_sum, f_fma, f_abs, f_ldexp as _ldexp, f_exponent as _exponent

cdef Py_ssize_t BLOCK_BYTES = 256 * 1024




# Dot2 of sa * a and sb * b (sa, sb powers of two), starting from init.
cdef inline floating _dot2(const floating *a, const floating *b, Py_ssize_t n,
                           floating init, floating sa, floating sb) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating s = init, c = 0, p, r, x, y
    for j in range(n):
        x = a[j] * sa
        y = b[j] * sb
        p = x * y
        s = two_sum(s, p, &r)
        c = c + (r + f_fma(x, y, -p))
    if c == 0:
        return s
    return s + c


cdef inline floating _max_abs(const floating *a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m = 0
    for j in range(n):
        if f_abs(a[j]) > m:
            m = f_abs(a[j])
    return m


# Design c: the rescue path for overflowed, underflowed or non-finite dots.
cdef floating _dot_rescue(const floating *a, const floating *b, Py_ssize_t n,
                          floating init, floating first) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating ma = _max_abs(a, n), mb = _max_abs(b, n), s
    cdef int ea, eb
    if not (isfinite(ma) and isfinite(mb) and isfinite(init)):
        s = init                               # IEEE: inf/NaN entries decide the result
        for j in range(n):
            s = s + a[j] * b[j]
        return s
    if ma == 0 or mb == 0:
        return first
    ea = _exponent(ma)
    eb = _exponent(mb)
    s = _dot2(a, b, n, _ldexp(init, -ea - eb), _ldexp(<floating>1, -ea),
              _ldexp(<floating>1, -eb))
    return _ldexp(s, ea + eb)


cdef inline floating _checked(floating s, const floating *a, const floating *b,
                              Py_ssize_t n, floating init, floating tiny) noexcept nogil:
    if isfinite(s) and f_abs(s) >= tiny:
        return s
    return _dot_rescue(a, b, n, init, s)


# Four Dot2 chains at once: one row of A against four rows of Bt.  Each TwoSum depends on
# the previous one of its own chain (~20 cycles of latency per term); four independent
# chains keep the FPU busy.  Each output's accumulation order is still j = 0..n-1.
# Written in C so that GCC can clone it for CPUs with FMA (target_clones, resolved once
# at load time): without -mfma every fma() is a libm call, ~5x slower here.  Both clones
# compute the same bits (fma is exact-then-round by definition; -ffp-contract=off keeps
# the compiler from fusing anything else).
cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #define REFRT_TWO_SUM(s, v, err) do { T s_ = (s) + (v); T bb_ = s_ - (s); \
        (err) = ((s) - (s_ - bb_)) + ((v) - bb_); (s) = s_; } while (0)
    #define REFRT_DOT2X4(T, FMA, NAME) \
    __attribute__((target_clones("fma", "default"))) \
    static void NAME(const T *a, const T *b0, const T *b1, const T *b2, const T *b3, \
                     ptrdiff_t n, T *acc) \
    { \
        T s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3]; \
        T c0 = 0, c1 = 0, c2 = 0, c3 = 0, r0, r1, r2, r3; \
        for (ptrdiff_t j = 0; j < n; j++) { \
            T x = a[j]; \
            T p0 = x * b0[j], p1 = x * b1[j], p2 = x * b2[j], p3 = x * b3[j]; \
            REFRT_TWO_SUM(s0, p0, r0); REFRT_TWO_SUM(s1, p1, r1); \
            REFRT_TWO_SUM(s2, p2, r2); REFRT_TWO_SUM(s3, p3, r3); \
            c0 = c0 + (r0 + FMA(x, b0[j], -p0)); c1 = c1 + (r1 + FMA(x, b1[j], -p1)); \
            c2 = c2 + (r2 + FMA(x, b2[j], -p2)); c3 = c3 + (r3 + FMA(x, b3[j], -p3)); \
        } \
        acc[0] = c0 != 0 ? s0 + c0 : s0; acc[1] = c1 != 0 ? s1 + c1 : s1; \
        acc[2] = c2 != 0 ? s2 + c2 : s2; acc[3] = c3 != 0 ? s3 + c3 : s3; \
    }
    #define T float
    REFRT_DOT2X4(float, fmaf, refrt_dot2x4_f32)
    #undef T
    #define T double
    REFRT_DOT2X4(double, fma, refrt_dot2x4_f64)
    #undef T
    """
    void refrt_dot2x4_f32(const float *a, const float *b0, const float *b1,
                          const float *b2, const float *b3, Py_ssize_t n,
                          float *acc) noexcept nogil
    void refrt_dot2x4_f64(const double *a, const double *b0, const double *b1,
                          const double *b2, const double *b3, Py_ssize_t n,
                          double *acc) noexcept nogil


cdef inline void _dot2x4(const floating *a, const floating *b0, const floating *b1,
                         const floating *b2, const floating *b3, Py_ssize_t n,
                         floating *acc) noexcept nogil:
    # acc[0:4] holds the starting values (bias) on entry and the results on exit
    if floating is float:
        refrt_dot2x4_f32(a, b0, b1, b2, b3, n, acc)
    else:
        refrt_dot2x4_f64(a, b0, b1, b2, b3, n, acc)


cdef inline void _row_block(const floating *arow, const floating *bt, floating *orow,
                            const floating *bias, bint has_bias, Py_ssize_t n,
                            Py_ssize_t k0, Py_ssize_t kend, floating tiny) noexcept nogil:
    cdef Py_ssize_t k = k0, q
    cdef floating acc[4]
    cdef floating init
    while k + 4 <= kend:
        for q in range(4):
            acc[q] = bias[k + q] if has_bias else 0
        _dot2x4(arow, bt + k * n, bt + (k + 1) * n, bt + (k + 2) * n, bt + (k + 3) * n,
                n, acc)
        for q in range(4):
            init = bias[k + q] if has_bias else 0
            orow[k + q] = _checked(acc[q], arow, bt + (k + q) * n, n, init, tiny)
        k = k + 4
    while k < kend:
        init = bias[k] if has_bias else 0
        orow[k] = _checked(_dot2(arow, bt + k * n, n, init, 1, 1), arow, bt + k * n, n,
                           init, tiny)
        k = k + 1


def matmul_nt(const floating[:, :, ::1] a,     # IN  (B, m, n)
              const floating[:, :, ::1] bt,    # IN  (B, p, n): B transposed per batch
              const floating[::1] bias,        # IN  (p,) or (0,) for none
              floating[:, :, ::1] out,         # OUT (B, m, p)
              int threads=1):
    cdef Py_ssize_t nb = a.shape[0], m = a.shape[1], n = a.shape[2], p = bt.shape[1]
    cdef Py_ssize_t b, i, k, k0, kend, block
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating tiny, zero = 0
    # 2^(emin + 2p): below it an underflowed product may have lost bits (Design c)
    if floating is float:
        tiny = _ldexp(<floating>1, -126 + 2 * 24)
    else:
        tiny = _ldexp(<floating>1, -1022 + 2 * 53)
    if nb == 0 or m == 0 or p == 0:
        return
    if n == 0:
        for b in range(nb):
            for i in range(m):
                for k in range(p):
                    out[b, i, k] = bias[k] if has_bias else zero
        return
    block = max(1, BLOCK_BYTES // (n * sizeof(floating)))
    with nogil:
        for b in range(nb):
            k0 = 0
            while k0 < p:
                kend = min(k0 + block, p)
                for i in prange(m, num_threads=threads, schedule="static"):
                    _row_block(&a[b, i, 0], &bt[b, 0, 0], &out[b, i, 0],
                               &bias[0] if has_bias else NULL, has_bias, n, k0, kend, tiny)
                k0 = kend
