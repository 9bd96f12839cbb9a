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
from libc.math cimport isfinite, fabs, ldexp
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


# ---- the Ozaki path's rounding and fallback (refrt/_kernels/ozaki.py drives them) ------
#
# ozaki.py computes each output as a sum of float64 partial products from BLAS, with a
# rigorous bound E_ik = sum_t ea[t, i] eb[t, k] on the error of the computed parts
# (ozaki.py, Design b/c).  _certify adds them in double-double (TwoSum), adds the bias,
# and keeps the result only where its rounding is certified (ozaki.py, Design e):
# (r, t) = TwoSum(hi, lo) is exact; for float32 r32 = (float)r and t += r - r32 (exact by
# Sterbenz: r32 is within a factor 2 of r when it is normal).  The exact value lies in
# [r_T + t - E, r_T + t + E]; if |t| + E < h, h = half the gap from |r_T| down to its
# predecessor (the smaller of the two gaps next to r_T), every point of that interval
# rounds to r_T, which is then the correctly rounded result.  Other outputs get a flag:
# 1 (finite inputs, not certified or outside the certified range 2^(emin+2p) <= |y| <
# 2^(emax-1)) or 2 (an exactness condition failed: inf/NaN in the row, column or bias, or
# a scaling that would lose bits), and ozaki_refine / ozaki_fix recompute them.
from libc.stdint cimport uint64_t, uint32_t
from libc.string cimport memcpy

cdef double _U64 = 1.1102230246251565e-16     # 2^-53
cdef double _SAFE = 1.0000000000009095        # 1 + 2^-40: slack on computed bounds
cdef uint64_t _MANT64 = (<uint64_t>1 << 52) - 1


cdef inline double _pow2(int e) noexcept nogil:
    # 2^e for -1022 <= e <= 1023, from its bits
    cdef uint64_t bits = (<uint64_t>(e + 1023)) << 52
    cdef double v
    memcpy(&v, &bits, 8)
    return v


cdef inline int _certify(floating *o, double hi, double p1, double p2, double err,
                         double bias, bint full, bint with_bias, bint valid) noexcept nogil:
    """hi (+ p1 + p2 when full) (+ bias) in double-double, rounded to the output type into
    o[0]; returns 0 when that rounding is certified, else 1 (finite inputs) or 2 (inf/NaN
    in the error bound or the bias, or not valid).  Branch-free: o[0] is written either
    way (the fallback overwrites flagged outputs)."""
    cdef double e1 = 0, e2 = 0, e3 = 0, lo, r, t, h
    cdef uint64_t bits
    cdef uint32_t b32
    cdef float r32
    cdef int er, ok, mz
    if full:
        hi = two_sum(hi, p1, &e1)
        hi = two_sum(hi, p2, &e2)
    if with_bias:
        hi = two_sum(hi, bias, &e3)
    lo = (e1 + e2) + e3
    err = err + 2 * _U64 * (fabs(e1) + fabs(e2) + fabs(e3))
    r = two_sum(hi, lo, &t)
    if floating is float:
        r32 = <float>r
        t = t + (r - <double>r32)
        err = err + _U64 * fabs(t)
        memcpy(&b32, &r32, 4)
        er = (b32 >> 23) & 0xff
        mz = (b32 & 0x7fffff) == 0
        # half the gap below |r32|: 2^(er - 151), or 2^(er - 152) at a power of two;
        # certified only within [2^-78, 2^126) (below: matmul_nt's rescue range)
        h = _pow2(er - 151 - mz)
        ok = (er >= 49) & (er < 253)
        o[0] = r32
    else:
        memcpy(&bits, &r, 8)
        er = <int>((bits >> 52) & 0x7ff)
        mz = (bits & _MANT64) == 0
        h = _pow2(er - 1076 - mz)
        ok = (er >= 107) & (er < 2046)    # [2^-916, 2^1023)
        o[0] = r
    ok = ok & ((fabs(t) + err) * _SAFE < h) & valid
    return (1 - ok) * (1 + ((not isfinite(err)) | (not isfinite(bias)) | (not valid)))


from ._ozaki cimport (refrt_oz_row_f32_00, refrt_oz_row_f32_01, refrt_oz_row_f64_10,
                      refrt_oz_row_f64_11)  # ozaki.h


def ozaki_round(const double[:, :, ::1] p0,    # IN  (B, m, p) partial products
                const double[:, :, ::1] p1,    # IN  (B, m, p), float64 only
                const double[:, :, ::1] p2,    # IN  (B, m, p), float64 only
                const floating[::1] bias,      # IN  (p,) or (0,) for none
                const double[:, :, ::1] ea,    # IN  (T, B, m) error-bound row factors
                const double[:, :, ::1] eb,    # IN  (T, B, p) error-bound column factors
                const int[:, ::1] sa,          # IN  (B, m) row exponents (ozaki.py, a)
                const int[:, ::1] sb,          # IN  (B, p) column exponents
                int lowest,                    # IN  flag 1 where sa + sb < lowest
                double eabs,                   # IN  absolute error term (underflow)
                floating[:, :, ::1] out,       # OUT (B, m, p)
                signed char[:, :, ::1] flags): # OUT (B, m, p): 0 kept, 1 / 2 recompute
    """ozaki.h per output row: float32 rounds p0 (+ bias), float64 p0 + p1 + p2 (+ bias),
    certified or flagged; returns the flag count."""
    cdef Py_ssize_t nb = out.shape[0], m = out.shape[1], p = out.shape[2]
    cdef Py_ssize_t nt = ea.shape[0], b, i
    cdef bint has_bias = bias.shape[0] > 0
    cdef Py_ssize_t bad = 0
    cdef const double *eb1
    if m == 0 or p == 0:
        return 0
    with nogil:
        for b in range(nb):
            eb1 = &eb[1, b, 0] if nt > 1 else &eb[0, b, 0]
            for i in range(m):
                if floating is float:
                    if has_bias:
                        bad += refrt_oz_row_f32_01(
                            &p0[b, i, 0], NULL, NULL, &bias[0], ea[0, b, i], 0,
                            &eb[0, b, 0], eb1, &sb[b, 0], sa[b, i] - lowest, eabs,
                            &out[b, i, 0], &flags[b, i, 0], p)
                    else:
                        bad += refrt_oz_row_f32_00(
                            &p0[b, i, 0], NULL, NULL, NULL, ea[0, b, i], 0,
                            &eb[0, b, 0], eb1, &sb[b, 0], sa[b, i] - lowest, eabs,
                            &out[b, i, 0], &flags[b, i, 0], p)
                else:
                    if has_bias:
                        bad += refrt_oz_row_f64_11(
                            &p0[b, i, 0], &p1[b, i, 0], &p2[b, i, 0], &bias[0],
                            ea[0, b, i], ea[1, b, i], &eb[0, b, 0], eb1, &sb[b, 0],
                            sa[b, i] - lowest, eabs, &out[b, i, 0], &flags[b, i, 0], p)
                    else:
                        bad += refrt_oz_row_f64_10(
                            &p0[b, i, 0], &p1[b, i, 0], &p2[b, i, 0], NULL,
                            ea[0, b, i], ea[1, b, i], &eb[0, b, 0], eb1, &sb[b, 0],
                            sa[b, i] - lowest, eabs, &out[b, i, 0], &flags[b, i, 0], p)
    return bad


def ozaki_refine(const double[:, :, ::1] p0,   # IN  (B, m, p) exact leading product
                 const double[:, :, ::1] sa_, const double[:, :, ::1] ra,   # IN (B, m, n)
                 const double[:, :, ::1] rb, const double[:, :, ::1] bs,    # IN (B, p, n)
                 const double[:, :, ::1] na,   # IN  (2, B, m): ||sa_i||, ||ra_i||
                 const double[:, :, ::1] nb_,  # IN  (2, B, p): ||rb_k||, ||bs_k||
                 double g2,                    # IN  gamma_N^2 of Dot2 (with slack)
                 double eabs,                  # IN  absolute error term (underflow)
                 const double[::1] bias,
                 double[:, :, ::1] out, signed char[:, :, ::1] flags):
    """float64 outputs of flag 1: the two rounded parts again, by Dot2 (dot2.h:
    |error| <= u |dot| + gamma_N^2 ||x|| ||y||), then _certify; returns those still
    flagged."""
    cdef Py_ssize_t nb = out.shape[0], m = out.shape[1], p = out.shape[2], n = sa_.shape[2]
    cdef Py_ssize_t b, i, k
    cdef bint has_bias = bias.shape[0] > 0
    cdef double q1, q2, err
    cdef Py_ssize_t bad = 0
    cdef int f
    with nogil:
        for b in range(nb):
            for i in range(m):
                for k in range(p):
                    if flags[b, i, k] != 1:
                        bad += flags[b, i, k] != 0
                        continue
                    refrt_dot2_panel_f64(&sa_[b, i, 0], &rb[b, k, 0], 1, 1, n, NULL, &q1, 1)
                    refrt_dot2_panel_f64(&ra[b, i, 0], &bs[b, k, 0], 1, 1, n, NULL, &q2, 1)
                    err = (_U64 * (fabs(q1) + fabs(q2)) * (1 + 4 * _U64)
                           + g2 * (na[0, b, i] * nb_[0, b, k] + na[1, b, i] * nb_[1, b, k])
                           + eabs)
                    f = _certify(&out[b, i, k], p0[b, i, k], q1, q2, err,
                                 bias[k] if has_bias else 0, True, has_bias, True)
                    flags[b, i, k] = f
                    bad += f != 0
    return bad


def ozaki_refine32(const double[:, :, ::1] a,   # IN  (B, m, n) float32 A in float64
                   const double[:, :, ::1] bt,  # IN  (B, p, n) float32 Bt in float64
                   const double[:, :, ::1] na,  # IN  (1, B, m) ||a_i||
                   const double[:, :, ::1] nb_, # IN  (1, B, p) ||b_k||
                   double g2, double eabs,
                   const float[::1] bias,
                   float[:, :, ::1] out, signed char[:, :, ::1] flags):
    """float32 outputs of flag 1: the dot again by Dot2 in float64 on the exact float64
    copies (products exact, error <= u |dot| + gamma_N^2 ||a|| ||b||), then _certify
    for the float32 rounding; returns those still flagged (ties, tiny, huge)."""
    cdef Py_ssize_t nb = out.shape[0], m = out.shape[1], p = out.shape[2], n = a.shape[2]
    cdef Py_ssize_t b, i, k
    cdef bint has_bias = bias.shape[0] > 0
    cdef double q, err
    cdef Py_ssize_t bad = 0
    cdef int f
    with nogil:
        for b in range(nb):
            for i in range(m):
                for k in range(p):
                    if flags[b, i, k] != 1:
                        bad += flags[b, i, k] != 0
                        continue
                    refrt_dot2_panel_f64(&a[b, i, 0], &bt[b, k, 0], 1, 1, n, NULL, &q, 1)
                    err = (_U64 * fabs(q) * (1 + 4 * _U64)
                           + g2 * na[0, b, i] * nb_[0, b, k] + eabs)
                    f = _certify(&out[b, i, k], q, 0.0, 0.0, err,
                                 bias[k] if has_bias else 0, False, has_bias, True)
                    flags[b, i, k] = f
                    bad += f != 0
    return bad


def ozaki_fix(const floating[:, :, ::1] a,     # IN  (B, m, n)
              const floating[:, :, ::1] bt,    # IN  (B, p, n)
              const floating[::1] bias,        # IN  (p,) or (0,)
              const signed char[:, :, ::1] flags,   # IN  (B, m, p) from ozaki_round
              floating[:, :, ::1] out):        # OUT (B, m, p): the flagged entries
    """Recompute the flagged outputs: flag 1 (finite inputs) exactly, rounded once by the
    superaccumulator (superacc.h); flag 2 as the Dot2 kernel does (matmul_nt, Design c:
    IEEE inf/NaN rules, the rescue for overflow and underflow)."""
    cdef Py_ssize_t nb = out.shape[0], m = out.shape[1], p = out.shape[2], n = a.shape[2]
    cdef Py_ssize_t b, i, k
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating init, first, tiny
    if floating is float:
        tiny = _ldexp(<floating>1, -126 + 2 * 24)
    else:
        tiny = _ldexp(<floating>1, -1022 + 2 * 53)
    with nogil:
        for b in range(nb):
            for i in range(m):
                for k in range(p):
                    if flags[b, i, k] == 0:
                        continue
                    init = bias[k] if has_bias else 0
                    if floating is float:
                        refrt_dot2_panel_f32(&a[b, i, 0], &bt[b, k, 0], 1, 1, n,
                                             &bias[k] if has_bias else NULL, &first, 1)
                    else:
                        refrt_dot2_panel_f64(&a[b, i, 0], &bt[b, k, 0], 1, 1, n,
                                             &bias[k] if has_bias else NULL, &first, 1)
                    if flags[b, i, k] == 1:
                        # _dot_rescue: the exact dot rounded once (Dot2 only for the
                        # sign of an exact zero and for rows of zeros)
                        out[b, i, k] = _dot_rescue(&a[b, i, 0], &bt[b, k, 0], n, init,
                                                   first)
                    else:
                        out[b, i, k] = _checked(first, &a[b, i, 0], &bt[b, k, 0], n,
                                                init, tiny)
