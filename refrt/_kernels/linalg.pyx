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
   precision and rounded once: |error| <= u|dot| + gamma_N^2 sum|a_j b_j|.
   The bias (linear) enters the final exact combination, so y = x W^T + b is rounded once.
   Accumulation order (dot2.h, Design a/b): L = 8 (float64) / 16 (float32) lanes, lane l
   takes j = l, l+L, ...; the n mod L tail goes to lanes 0..; lanes are folded by a
   pairwise TwoSum tree, then the bias.  The order depends on n only: results are bitwise
   the same for any thread count, tile shape or CPU (AVX-512 or generic panel).
c) TwoProduct is exact only while a_j b_j neither overflows nor underflows.  When the
   dot of finite inputs comes out non-finite, or below 2^(emin + 2p) in magnitude (where
   underflowed products could have lost bits), it is recomputed exactly: every product
   as (p + q) 2^e into a wide superaccumulator (superacc.h), rounded once, so a finite
   true value stays finite, a tiny one keeps its bits and an exact overflow is inf.
   (Scaling the rows by powers of two, the earlier rescue, failed on rows spanning more
   than the format's range and on rows of subnormals.)  Entries that are inf/NaN follow
   IEEE (the plain sum).
d) Blocking: the k loop runs over blocks of Bt rows that fit in ~256 KiB, and all rows
   of A sweep one block before the next, so each block stays in L2.  Tiles of 4 rows of
   A run in parallel (prange); inside, dot2.h computes 2x4 register tiles (8 outputs
   from 6 vector loads per L terms).  Dot2 costs ~10 vector flops per term where BLAS
   needs 1 fma, so it stays several times slower than OpenBLAS (measured 2026-11 on a
   shared 2-core AVX-512 VM, 1 thread: 256^3 ~7x float32, ~6x float64; 512^3 ~6-7x
   float32, ~5.5x float64; the previous scalar 4-chain kernel was 30-60x).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, isnan
from ._scalar cimport two_sum, f_fma, f_abs, f_ldexp as _ldexp, f_exponent as _exponent

cdef Py_ssize_t BLOCK_BYTES = 256 * 1024
cdef Py_ssize_t ROWS_PER_TILE = 4       # rows of A per prange iteration (2 panel tiles)


cdef inline floating _max_abs(const floating *a, Py_ssize_t n) noexcept nogil:
    # NaN if any entry is NaN (a NaN compares false, so `> m` alone skipped it and the
    # exact path then summed a row with a NaN entry to inf: matmul([[nan, 1]], [[1], [1]]))
    cdef Py_ssize_t j
    cdef floating m = 0, v
    for j in range(n):
        v = f_abs(a[j])
        if not (v <= m):
            m = v
            if m != m:
                return m
    return m


cdef extern from "superacc.h" nogil:
    double refrt_dot_exact_f64(const double *a, const double *b, Py_ssize_t n, double init,
                               int *is_zero)
    float refrt_dot_exact_f32(const float *a, const float *b, Py_ssize_t n, float init,
                              int *is_zero)


# Design c: the rescue path for overflowed, underflowed or non-finite dots.
cdef floating _dot_rescue(const floating *a, const floating *b, Py_ssize_t n,
                          floating init, floating first) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating ma = _max_abs(a, n), mb = _max_abs(b, n), s
    cdef int zero = 0
    if not (isfinite(ma) and isfinite(mb) and isfinite(init)):
        s = init                               # IEEE: inf/NaN entries decide the result
        for j in range(n):
            s = s + a[j] * b[j]
        return s
    if ma == 0 or mb == 0:
        return first
    # the exact dot, correctly rounded (superacc.h): scaling the rows by powers of two
    # cannot rescue rows whose entries span more than the format's range (+-max next
    # to O(1) entries: the small ones became subnormal and lost their bits, float32
    # cancel_max rows were 8-18 ulp off or 0 for an exact overflow), nor rows of
    # subnormals (2^1074 overflows)
    if floating is float:
        s = refrt_dot_exact_f32(a, b, n, init, &zero)
    else:
        s = refrt_dot_exact_f64(a, b, n, init, &zero)
    if zero:
        return first if first == 0 else 0     # an exact zero: IEEE's sign from Dot2
    return s


cdef inline floating _checked(floating s, const floating *a, const floating *b,
                              Py_ssize_t n, floating init, floating tiny) noexcept nogil:
    if isfinite(s) and f_abs(s) >= tiny:
        return s
    return _dot_rescue(a, b, n, init, s)


# The Dot2 panels (register-blocked, vectorised; Design a/b/c of dot2.h).
cdef extern from "dot2.h":
    void refrt_dot2_init(int allow_v4) noexcept nogil
    int refrt_dot2_isa
    void refrt_dot2_panel_f32(const float *a, const float *b, Py_ssize_t mr, Py_ssize_t nr,
                              Py_ssize_t n, const float *bias, float *out,
                              Py_ssize_t ldo) noexcept nogil
    void refrt_dot2_panel_f64(const double *a, const double *b, Py_ssize_t mr,
                              Py_ssize_t nr, Py_ssize_t n, const double *bias, double *out,
                              Py_ssize_t ldo) noexcept nogil

refrt_dot2_init(1)


def _use_vector_panel(bint allow):
    """Testing hook: allow (default) or forbid the AVX-512 panel; both give equal bits."""
    refrt_dot2_init(allow)
    return bool(refrt_dot2_isa)


cdef inline void _tile(const floating *a, const floating *bt, floating *out,
                       const floating *bias, bint has_bias, Py_ssize_t mr, Py_ssize_t n,
                       Py_ssize_t p, Py_ssize_t k0, Py_ssize_t kend,
                       floating tiny) noexcept nogil:
    # rows a[0:mr] against bt[k0:kend] into out[0:mr, k0:kend], then Design c per output
    cdef Py_ssize_t i, k
    cdef floating init
    if floating is float:
        refrt_dot2_panel_f32(a, bt + k0 * n, mr, kend - k0, n,
                             bias + k0 if has_bias else NULL, out + k0, p)
    else:
        refrt_dot2_panel_f64(a, bt + k0 * n, mr, kend - k0, n,
                             bias + k0 if has_bias else NULL, out + k0, p)
    for i in range(mr):
        for k in range(k0, kend):
            init = bias[k] if has_bias else 0
            out[i * p + k] = _checked(out[i * p + k], a + i * n, bt + k * n, n, init, tiny)


def matmul_nt(const floating[:, :, ::1] a,     # IN  (B, m, n)
              const floating[:, :, ::1] bt,    # IN  (B, p, n): B transposed per batch
              const floating[::1] bias,        # IN  (p,) or (0,) for none
              floating[:, :, ::1] out,         # OUT (B, m, p)
              int threads=1):
    cdef Py_ssize_t nb = a.shape[0], m = a.shape[1], n = a.shape[2], p = bt.shape[1]
    cdef Py_ssize_t b, i, k, k0, kend, block, t, tiles
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
    block = max(4, BLOCK_BYTES // (n * sizeof(floating)))
    tiles = (m + ROWS_PER_TILE - 1) // ROWS_PER_TILE
    with nogil:
        for b in range(nb):
            k0 = 0
            while k0 < p:
                kend = min(k0 + block, p)
                for t in prange(tiles, num_threads=threads, schedule="static"):
                    i = t * ROWS_PER_TILE
                    _tile(&a[b, i, 0], &bt[b, 0, 0], &out[b, i, 0],
                          &bias[0] if has_bias else NULL, has_bias,
                          min(ROWS_PER_TILE, m - i), n, p, k0, kend, tiny)
                k0 = kend
