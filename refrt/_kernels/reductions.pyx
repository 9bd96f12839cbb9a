# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Row reductions (sum, mean, var, max/min) and their VJP helpers, float32 and float64.

Design:
a) Arrays arrive as (rows, n) C-contiguous: the binding moves the reduced axis last, so
   every kernel reduces contiguous rows and parallelises over rows with
   ``prange(rows, num_threads=threads)``.  ``axis=None`` is one row of all elements.
b) Sums are correctly rounded.  A compensated fast path in the working dtype (float32
   for float32: no hidden widening) runs first: one Neumaier level (TwoSum per element,
   errors summed plainly) with a running error bound (_sum_neumaier), else two levels
   (_sum_dw2), in 16 interleaved lanes merged in lane order.  Its result s + lo comes
   with a bound B on |S - (s + lo)|; when fl(s + lo) is provably the rounding of the
   exact sum S (B plus the remainder of the final addition below half an ulp,
   _certified) it is returned.  Otherwise (cancellation near a rounding midpoint,
   partial sums that overflow, inf/NaN inputs) the row goes to an exact superaccumulator
   (superacc.h, after Neal 2015), which rounds S once.  So every sum is the correctly
   rounded exact sum, for every input; compensated lane sums alone cannot do that under
   cancellation of +-max terms, whose error scales with sum|x| ~ 1e309 (reproducer 3 of
   issue 9: NaN for an exact -88).  Neumaier 1974, Ogita-Rump-Oishi 2005 (SumK), Neal
   2015 (xsum).
c) Overflow: an exact sum beyond the largest float rounds to +-inf (IEEE); the mean
   asks the superaccumulator for S 2^-64 instead and scales its quotient back, so a
   finite mean never turns into inf or NaN.  Inputs that are inf/NaN follow IEEE
   (inf + -inf = NaN).
d) An empty row sums to +0; mean divides by max(count, 1) (TorchLean meanDenom).
e) Long rows (n >= PAR_MIN = 65536, e.g. axis=None over 4096x1000) are cut into fixed
   blocks of BLK = 16384: each block's compensated sum (two levels for float32, whose
   one-level bound grows like BLK^2 u^2, one for float64) with its error bound, the
   blocks merged in block order with two compensation levels and the merge's rounding
   added to the bound (_blocked_sum), then certified as in b); var's squared deviations
   and max|x| likewise.  The blocks run in parallel with threads > 1 (one row, so the
   row loop alone gave no gain from threads=2).  Blocks and merge order depend on n
   only: the same bits for every thread count (the sum is correctly rounded anyway; the
   mean's low word and var's sums are not, so this matters).  Shorter rows keep the
   single-pass lanes of b).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isnan, isinf, isfinite, nextafter, nextafterf, NAN, INFINITY
from libc.float cimport FLT_EPSILON, DBL_EPSILON
from libc.stdint cimport int32_t, uint32_t, int64_t, INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX
from libc.string cimport memcpy
from libc.stdlib cimport malloc, free
from ._scalar cimport two_sum, f_fma, f_abs, f_ldexp as _ldexp, f_exponent as _exponent

# 2^-64 and its inverse exponent: the rescue scale for sums that overflow (Design c).
cdef int RESCUE_EXP = 64


# One step of the two-level compensated accumulation (below): s + e = s + v exactly,
# c + ee = c + e exactly, cc collects the ee, a their magnitudes.
cdef inline void _acc(floating v, floating *s, floating *c, floating *cc,
                      floating *a) noexcept nogil:
    cdef floating e, ee
    s[0] = two_sum(s[0], v, &e)
    c[0] = two_sum(c[0], e, &ee)
    cc[0] = cc[0] + ee
    a[0] = a[0] + f_abs(ee)


# Compensated accumulation of scale * x[0:n] (scale a power of two, exact for normal
# inputs): s + e = s_old + x_j exactly (TwoSum), and the errors e are themselves summed
# with TwoSum into c + cc (a second Neumaier level).  The result s + (c + cc) is off by
# at most the rounding of the cc accumulation, bounded by n u sum|ee_j| (the second-level
# errors), returned in *bound so the caller can certify the result or fall back to the
# exact sum.  One-level Neumaier fails once sum|x| / |sum x| exceeds ~1/u^2 (float32
# rows with +-3e38 that cancel to 3.5 came back as 0).
# Order: LANES = 16 interleaved lanes (lane l takes j = l, l + 16, ...: a TwoSum chain is
# latency-bound; 16 independent chains fill two AVX2 registers (float32) or four
# (float64) and the lane loop vectorises), each lane with its own c, cc, a; the lanes
# are merged in lane order with the same two-level scheme, so the result depends only
# on n, never on the thread count.  Lanes start at -0.0 (the identity of IEEE addition:
# -0 + -0 = -0), which keeps the sign of an all -0 row.
# A row shorter than LANES only touches lane 0 (the tail loop), so the merge is skipped:
# adding the untouched lanes (zeros, TwoSum error 0) would change no bit and costs a
# latency-bound chain of 15 TwoSums, most of the time of a 256x10 call.
cdef enum:
    LANES = 16

cdef inline floating _sum_dw2(const floating *x, Py_ssize_t n, floating scale,
                              floating *lo, floating *bound) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % LANES
    cdef floating S[16]
    cdef floating C[16]
    cdef floating CC[16]
    cdef floating A[16]
    cdef floating v, e, ee, t, s0, c0, cc, a
    for l in range(LANES):
        S[l] = -0.0
        C[l] = 0
        CC[l] = 0
        A[l] = 0
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            v = x[j + l] * scale
            S[l] = two_sum(S[l], v, &e)
            C[l] = two_sum(C[l], e, &ee)
            CC[l] = CC[l] + ee
            A[l] = A[l] + f_abs(ee)
    for j in range(full, n):
        _acc(x[j] * scale, &S[0], &C[0], &CC[0], &A[0])
    s0 = S[0]
    c0 = C[0]
    cc = CC[0]
    a = A[0]
    for l in range(1, LANES if full > 0 else 1):   # short rows: lanes 1.. untouched
        cc = cc + CC[l]
        a = a + A[l]
        _acc(S[l], &s0, &c0, &cc, &a)
        # the lane's first-level error joins c0 by TwoSum, its error joins cc
        c0 = two_sum(c0, C[l], &t)
        cc = cc + t
        a = a + f_abs(t)
    lo[0] = c0 + cc
    # the rounding of c0 + cc (at most u |lo|) joins the bound; none when cc = 0 (then
    # every second-level error was 0 and s0 + lo is the exact sum: bound 0)
    bound[0] = a * <floating>n + (f_abs(lo[0]) if cc != 0 else 0)
    return s0


# One-level Neumaier in the same 16 lanes (the fast path): s + e = s_old + x_j exactly
# (TwoSum), the e summed plainly into c, and a = sum|e| alongside.  Lanes merged in lane
# order, their TwoSum errors and c's joining c.  c is built by fewer than n + 2L
# additions of terms whose magnitudes sum to a, each rounding by at most u times a
# partial sum <= a, so its error is below (n + 2L) u a; the computed a is itself low by
# at most a factor 1 - n u (>= 1 - 2^-7 where this path runs for float32), covered by
# doubling.  *bound = a (2n + 2L + 2), in units of u, the convention of _sum_dw2.  About
# half the flops of the two-level loop (one TwoSum per element instead of two).
cdef inline floating _sum_neumaier(const floating *x, Py_ssize_t n, floating scale,
                                   floating *lo, floating *bound) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % LANES
    cdef floating S[16]
    cdef floating C[16]
    cdef floating A[16]
    cdef floating v, e, s0, c, a
    for l in range(LANES):
        S[l] = -0.0
        C[l] = 0
        A[l] = 0
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            v = x[j + l] * scale
            S[l] = two_sum(S[l], v, &e)
            C[l] = C[l] + e
            A[l] = A[l] + f_abs(e)
    for j in range(full, n):
        S[0] = two_sum(S[0], x[j] * scale, &e)
        C[0] = C[0] + e
        A[0] = A[0] + f_abs(e)
    s0 = S[0]
    c = C[0]
    a = A[0]
    for l in range(1, LANES if full > 0 else 1):   # short rows: lanes 1.. untouched
        s0 = two_sum(s0, S[l], &e)
        c = c + (e + C[l])
        a = a + (f_abs(e) + A[l])
    lo[0] = c
    bound[0] = a * <floating>(2 * n + 2 * LANES + 2)
    return s0


# Row sum as (hi, lo) with a bound in units of u (see _row_sum): the one-level sum when
# its bound certifies the result to an eighth of an ulp (the criterion of _row_sum), else
# the two-level one.  float32 rows longer than 2^17 skip the attempt: there a ~ n u^2
# mean|partial sum| and a n exceeds the criterion for any data that is not tiny in
# magnitude, so trying would only add a pass.  The choice depends only on the row's
# data and length, so results stay deterministic and thread-count independent.
cdef inline floating _sum_dw(const floating *x, Py_ssize_t n, floating scale,
                             floating *lo, floating *bound) noexcept nogil:
    cdef floating s
    if floating is double or n <= 131072:
        s = _sum_neumaier(x, n, scale, lo, bound)
        if isfinite(s) and 4 * (bound[0] + f_abs(lo[0])) <= f_abs(s + lo[0]):
            return s
    return _sum_dw2(x, n, scale, lo, bound)


# Exact, correctly rounded sum (superacc.h: a small superaccumulator after Neal 2015),
# returned as (hi, lo) with hi = fl(S 2^-k), lo = fl(S 2^-k - hi).
cdef extern from "superacc.h" nogil:
    void refrt_sa_sum_f64(const double *x, int64_t n, int k, double *hi, double *lo)
    void refrt_sa_sum_f32(const float *x, int64_t n, int k, float *hi, float *lo)


cdef inline floating _exact_sum(const floating *x, Py_ssize_t n, int k,
                                floating *lo) noexcept nogil:
    cdef floating hi
    if floating is float:
        refrt_sa_sum_f32(x, n, k, &hi, lo)
    else:
        refrt_sa_sum_f64(x, n, k, &hi, lo)
    return hi


# Whether r = fl(s + lo) is the correctly rounded exact sum S, given s + lo = r + e
# exactly and |S - (s + lo)| <= B: then S lies within |e| + B of r, and r is S's
# rounding when that distance is below half the gap to r's nearer neighbour (the gap
# below |r| is the smaller one at a power of two).  B = eps bound: the fast paths' error
# bounds are u bound (u = eps / 2, see _sum_neumaier / _sum_dw2), doubled to cover the
# roundings of this test itself.  B = 0 means s + lo is the exact sum, so r, its IEEE
# rounding, is right even at an exact tie (short rows of normal data end exactly half an
# ulp from a float ~8% of the time: a test with B > 0 could not decide those).
# Otherwise the test fails only within ~B of a rounding midpoint (and for zero or
# subnormal-gap results with an error term): those rows go to the next level.
cdef inline bint _certified(floating r, floating e, floating bound) noexcept nogil:
    cdef floating below, ar = f_abs(r)
    cdef floating B
    cdef int32_t b32
    cdef int64_t b64
    if floating is float:
        B = bound * FLT_EPSILON
    else:
        B = bound * DBL_EPSILON
    if B == 0 and isfinite(r):
        return True
    if not isfinite(r) or ar == 0:
        return False
    # the float just below |r| > 0: its bits minus one (no libm call: this runs per row)
    if floating is float:
        memcpy(&b32, &ar, sizeof(float))
        b32 = b32 - 1
        memcpy(&below, &b32, sizeof(float))
    else:
        memcpy(&b64, &ar, sizeof(double))
        b64 = b64 - 1
        memcpy(&below, &b64, sizeof(double))
    return f_abs(e) + B < (ar - below) * <floating>0.5


# Sum of a row as a double word (hi, lo) times 2^k, hi the correctly rounded sum (of
# S 2^-k).  The compensated fast path (_sum_dw) runs first; when its error bound
# certifies that fl(s + lo) is the rounding of the exact sum (_certified), that is hi and
# the pair's exact remainder is lo.  A one-level sum that cannot certify (its bound grows
# like n^2 u^2 sum|x|: a float32 row of 1000 normal values is within its bound of a
# midpoint ~40% of the time) is redone with two levels (bound ~ n u^2 sum|x| * u), which
# almost always certifies.  Otherwise (heavy cancellation near a rounding midpoint, an
# overflowing partial sum, inf/NaN inputs) the superaccumulator sums the row
# exactly and rounds once: the +-max terms that cancel to -88 give -88, not NaN.
# ``rescale``: a sum whose rounding overflows is returned scaled by 2^-RESCUE_EXP
# (k = RESCUE_EXP) instead, for the mean (mean of [max, max] is max).
cdef inline floating _row_sum_serial(const floating *x, Py_ssize_t n, floating *lo,
                                     int *k, bint rescale) noexcept nogil:
    cdef floating bound, r, e, s
    cdef int level
    k[0] = 0
    for level in range(2):
        if level == 0:
            # one level first, except for long float32 rows (see _sum_dw)
            if floating is float and n > 131072:
                continue
            s = _sum_neumaier(x, n, 1, lo, &bound)
        else:
            s = _sum_dw2(x, n, 1, lo, &bound)
        if not (isfinite(s) and isfinite(lo[0])):
            break                      # overflow or inf/NaN: the exact sum decides
        if lo[0] == 0:                 # keeps s's sign of zero (-0 + +0 would give +0)
            r = s
            e = 0
        else:
            r = two_sum(s, lo[0], &e)
        if _certified(r, e, bound):
            lo[0] = e
            return r
    s = _exact_sum(x, n, 0, lo)
    if rescale and isinf(s):
        s = _exact_sum(x, n, RESCUE_EXP, lo)
        if isfinite(s):
            k[0] = RESCUE_EXP
        else:
            lo[0] = 0
    return s


# ---------------------------------------------------------------- long rows (Design e)
cdef enum:
    BLK = 16384         # elements per block of a long row
    PAR_MIN = 65536     # rows at least this long take the blocked path


# Per-block compensated sum, stored as (s, lo, bound) at buf[3b]: two levels for float32
# (one level's bound ~ BLK^2 u^2 sum|x| would not certify a 4M-element row), one for
# float64 (there BLK^2 u^2 is far below the half ulp).
cdef inline void _block_sum(const floating *x, Py_ssize_t n, Py_ssize_t b,
                            floating *buf) noexcept nogil:
    cdef Py_ssize_t off = b * BLK
    cdef Py_ssize_t m = n - off if n - off < BLK else BLK
    if floating is float:
        buf[3 * b] = _sum_dw2(x + off, m, 1, &buf[3 * b + 1], &buf[3 * b + 2])
    else:
        buf[3 * b] = _sum_neumaier(x + off, m, 1, &buf[3 * b + 1], &buf[3 * b + 2])


# Sum of a long row as s + *lo with |S - (s + lo)| <= u *bound (the convention of
# _sum_dw2): the blocks' sums (in parallel when threads > 1) merged in block order, s by
# TwoSum (exact errors e), the e and the blocks' lo by TwoSum into c, their errors t
# into cc: the merge adds 2 nb u sum|t| (cc's roundings) and u |lo| (the final c + cc)
# to the blocks' bounds.  Returns NaN when the work buffer cannot be allocated.
cdef floating _blocked_sum(const floating *x, Py_ssize_t n, floating *lo,
                           floating *bound, int threads) noexcept nogil:
    cdef Py_ssize_t nb = (n + BLK - 1) // BLK, b
    cdef floating *buf = <floating *>malloc(3 * nb * sizeof(floating))
    cdef floating s, c, cc = 0, a2 = 0, bs, e, t
    if buf == NULL:
        return NAN
    if threads > 1:
        for b in prange(nb, num_threads=threads, schedule="static"):
            _block_sum(x, n, b, buf)
    else:
        for b in range(nb):
            _block_sum(x, n, b, buf)
    s = buf[0]
    c = buf[1]
    bs = buf[2]
    for b in range(1, nb):
        s = two_sum(s, buf[3 * b], &e)
        c = two_sum(c, e, &t)
        cc = cc + t
        a2 = a2 + f_abs(t)
        c = two_sum(c, buf[3 * b + 1], &t)
        cc = cc + t
        a2 = a2 + f_abs(t)
        bs = bs + buf[3 * b + 2]
    free(buf)
    lo[0] = c + cc
    bound[0] = bs + a2 * <floating>(2 * nb + 2) + (f_abs(lo[0]) if cc != 0 else 0)
    return s


# _row_sum_serial's contract for any row: a long row (n >= PAR_MIN) is summed by blocks
# (_blocked_sum, parallel with threads > 1) and certified as there; when that fails
# (cancellation near a midpoint, overflow, inf/NaN) it goes to _row_sum_serial.  The
# path depends on n and the data only, never on threads: same bits for every count.
cdef inline floating _row_sum(const floating *x, Py_ssize_t n, floating *lo, int *k,
                              bint rescale, int threads) noexcept nogil:
    cdef floating s, r, e, bound
    if n >= PAR_MIN:
        s = _blocked_sum(x, n, lo, &bound, threads)
        if isfinite(s) and isfinite(lo[0]):
            if lo[0] == 0:
                r = s
                e = 0
            else:
                r = two_sum(s, lo[0], &e)
            if _certified(r, e, bound):
                lo[0] = e
                k[0] = 0
                return r
    return _row_sum_serial(x, n, lo, k, rescale)


# (hi + lo) / d with one final rounding: q = hi / d, the remainder r = hi - q d is exact
# via fma (Boldo-Daumas), so (hi + lo) / d = q + (r + lo) / d up to O(u^2).
cdef inline floating _div_dw(floating hi, floating lo, floating d) noexcept nogil:
    cdef floating q = hi / d
    if not isfinite(q) or q == 0 and lo == 0:
        return q
    return q + (f_fma(-q, d, hi) + lo) / d


cdef inline floating _mean_row(const floating *x, Py_ssize_t n, int threads) noexcept nogil:
    cdef floating lo, hi
    cdef int k
    hi = _row_sum(x, n, &lo, &k, True, threads)
    return _ldexp(_div_dw(hi, lo, <floating>(n if n > 0 else 1)), k)


# Population variance, two-pass.  The row is first scaled by 2^-E (E = exponent of
# max|x|; exact except for entries below 2^-1074 / 2^-149 times 2^E, whose squares are
# far below the result's ulp) so |x| < 1: squares can neither overflow (a float32 row
# with |x| ~ 1e20 has a finite variance but x^2 = inf) nor underflow (|x| ~ 1e-25
# squares below float32's subnormals).  Rows with max|x| < 2^-540 (float64) / 2^-78
# (float32) have var <= 4 max|x|^2 < 2^-1078 / 2^-150, at most half the smallest
# subnormal, so their correctly rounded variance is +0 (and 2^-E would overflow: the
# subnormal rows of reproducer 1 gave inf * 0 = NaN).
# The mean is a double word m = m_hi + m_lo (error O(u^2) max|x|): with m rounded once,
# the identity sum (x_i - m^)^2 = sum (x_i - m)^2 + n (m - m^)^2 adds (m - m^)^2 ~
# (u |m|)^2 to the variance, which is 256 ulp of a float32 variance ~1 at mean 1e5
# (reproducer 2).  Per element (see _sq_dev_sum)
#   d + e = x_i - m_hi exactly (TwoSum),   f = e - m_lo (one rounding, |f| ~ u |x|),
#   (x_i - m)^2 = (d + f)^2 = d^2 + (2d + f) f,   d^2 = p + q exactly (TwoProduct, fma),
# the p summed compensated, q + (2d + f) f in a second compensated accumulator (under a
# large mean with a spread of a few ulps those terms are as large as p and cancel).
# Any non-finite input gives NaN (inf - inf in the deviations, as in the real-number
# formula evaluated in the extended reals).
cdef inline floating _var_row(const floating *x, Py_ssize_t n, int threads) noexcept nogil:
    cdef floating big, scale, m, mlo, c, corr, s, tiny
    cdef int E
    if n == 0:
        return 0
    big = _max_abs(x, n, threads)
    if not isfinite(big):
        return NAN
    if floating is float:
        tiny = 1.3234889800848443e-23      # 2^-76
    else:
        tiny = 2.778448436856347e-163      # 2^-540
    if big < tiny:
        return 0
    E = _exponent(big)
    scale = _ldexp(<floating>1, -E)
    m = _mean_dw(x, n, E, &mlo, threads)
    if n >= PAR_MIN:
        s = _blocked_sq_dev_sum(x, n, scale, m, mlo, &c, &corr, threads)
    else:
        s = _sq_dev_sum(x, n, scale, m, mlo, &c, &corr)
    return _ldexp(_div_dw(s, c + corr, <floating>n), 2 * E)


# The mean of x[0:n] times 2^-E as a double word m + *mlo, |error| = O(u^2) |mean| plus
# the underflow of 2^-E scaling: the row sum is the correctly rounded (hi, lo) of
# _row_sum (scaled by 2^-k when it overflows), m = (hi + lo) / n rounded once (_div_dw),
# m_lo = ((hi + lo) - n m) / n with n m = ph + pl exactly (fma) and hi - ph exact
# (Sterbenz: ph is within a factor 2 of hi), the rest second order; both scaled by
# 2^(k - E) at the end.  (Summing the scaled row instead lost the bits of entries far
# below max|x|: in a row of +-max and O(1) entries they became subnormal.)
cdef inline floating _mean_dw(const floating *x, Py_ssize_t n, int E,
                              floating *mlo, int threads) noexcept nogil:
    cdef floating s, lo, m, m4, ph, pl, fn = <floating>n
    cdef int k
    s = _row_sum(x, n, &lo, &k, True, threads)
    m = _div_dw(s, lo, fn)
    if not isfinite(m) or m == 0:
        mlo[0] = 0
        return _ldexp(m, k - E)
    # the residual at a quarter of the scale: n m can round above the largest float
    # when the sum is near it ([0, 0, max]: n m = inf gave a NaN variance); quartering
    # is exact for these normal values and leaves the quotient's rounding unchanged
    s = s * <floating>0.25
    lo = lo * <floating>0.25
    m4 = m * <floating>0.25
    ph = fn * m4
    pl = f_fma(fn, m4, -ph)
    mlo[0] = _ldexp(((s - ph) - pl + lo) / fn, k - E + 2)
    return _ldexp(m, k - E)


# max |x_j| of a row (inf if any entry is inf or NaN): the absolute value's bits read as
# a signed integer order like the magnitudes, NaN bits above inf's, so an integer max
# (exact and associative: gcc vectorises the plain loop as a reduction in any lane
# order) finds the largest, and any non-finite entry makes the result >= inf's bits.
cdef inline floating _max_abs_serial(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    cdef int32_t k32, big32 = 0
    cdef int64_t k64, big64 = 0
    cdef floating r
    if floating is float:
        for j in range(n):
            memcpy(&k32, x + j, sizeof(float))
            k32 = k32 & INT32_MAX
            big32 = k32 if k32 > big32 else big32
        if big32 >= (<int32_t>0x7f800000):
            return INFINITY
        memcpy(&r, &big32, sizeof(float))
    else:
        for j in range(n):
            memcpy(&k64, x + j, sizeof(double))
            k64 = k64 & INT64_MAX
            big64 = k64 if k64 > big64 else big64
        if big64 >= (<int64_t>0x7ff << 52):
            return INFINITY
        memcpy(&r, &big64, sizeof(double))
    return r


# Second pass of _var_row: sum of (scale x_j - m_hi - m_lo)^2 as s + (*c + *corr), in
# 16 lanes (lane l takes j = l, l + 16, ...; the TwoSum chains are latency-bound and
# independent lanes vectorise), merged in lane order, so the result depends only on n.
# Per element (see _var_row): d + e = xs - m_hi (TwoSum), f = e - m_lo, d^2 = p + q
# (fma), s + lo = s + p (TwoSum) with the lo summed into C, and t = q + (2d + f) f added
# to R by TwoSum, its error into RC.  Lane merge: the lane sums join s0 by TwoSum, the
# errors and the C/R/RC lanes are added plainly.  All p >= 0, so the first-level sum has
# no cancellation: the uncompensated part is below (n + L) u times the C terms,
# themselves <= u s, i.e. O(n u^2) s; the t may cancel (their sum is O(u) s) and are
# summed to O(n u^2) of their magnitudes.
cdef inline floating _sq_dev_sum(const floating *x, Py_ssize_t n, floating scale,
                                 floating m, floating mlo, floating *c,
                                 floating *corr) noexcept nogil:
    cdef Py_ssize_t j, l, full = n - n % LANES
    cdef floating S[16]
    cdef floating C[16]
    cdef floating R[16]
    cdef floating RC[16]
    cdef floating d, e, f, p, q, t, lo, s0, cc, rr, rc
    for l in range(LANES):
        S[l] = 0
        C[l] = 0
        R[l] = 0
        RC[l] = 0
    for j in range(0, full, 16):           # LANES
        for l in range(LANES):
            d = two_sum(x[j + l] * scale, -m, &e)
            f = e - mlo
            p = d * d
            q = f_fma(d, d, -p)
            S[l] = two_sum(S[l], p, &lo)
            C[l] = C[l] + lo
            t = f_fma(2 * d + f, f, q)
            R[l] = two_sum(R[l], t, &lo)
            RC[l] = RC[l] + lo
    for j in range(full, n):
        d = two_sum(x[j] * scale, -m, &e)
        f = e - mlo
        p = d * d
        q = f_fma(d, d, -p)
        S[0] = two_sum(S[0], p, &lo)
        C[0] = C[0] + lo
        t = f_fma(2 * d + f, f, q)
        R[0] = two_sum(R[0], t, &lo)
        RC[0] = RC[0] + lo
    s0 = S[0]
    cc = C[0]
    rr = R[0]
    rc = RC[0]
    for l in range(1, LANES if full > 0 else 1):   # short rows: lanes 1.. untouched
        s0 = two_sum(s0, S[l], &lo)
        cc = cc + (lo + C[l])
        rr = two_sum(rr, R[l], &lo)
        rc = rc + (lo + RC[l])
    c[0] = cc
    corr[0] = rr + rc
    return s0


# max |x| of a long row by blocks (in parallel when threads > 1): max is exact and
# associative, so the blocks change nothing.
cdef inline floating _max_abs(const floating *x, Py_ssize_t n, int threads) noexcept nogil:
    cdef Py_ssize_t nb, b
    cdef floating *buf
    cdef floating r
    if n < PAR_MIN or threads == 1:
        return _max_abs_serial(x, n)
    nb = (n + BLK - 1) // BLK
    buf = <floating *>malloc(nb * sizeof(floating))
    if buf == NULL:
        return _max_abs_serial(x, n)
    for b in prange(nb, num_threads=threads, schedule="static"):
        buf[b] = _max_abs_serial(x + b * BLK, n - b * BLK if n - b * BLK < BLK else BLK)
    r = buf[0]
    for b in range(1, nb):
        r = buf[b] if buf[b] > r else r
    free(buf)
    return r


# _sq_dev_sum of a long row by blocks (in parallel when threads > 1), merged in block
# order: the blocks' s by TwoSum, the errors with the blocks' c, and the corr terms,
# added plainly (both are O(u) of s).  Fixed blocks, so the bits depend on n only.
cdef floating _blocked_sq_dev_sum(const floating *x, Py_ssize_t n, floating scale,
                                  floating m, floating mlo, floating *c, floating *corr,
                                  int threads) noexcept nogil:
    cdef Py_ssize_t nb = (n + BLK - 1) // BLK, b, off
    cdef floating *buf = <floating *>malloc(3 * nb * sizeof(floating))
    cdef floating s, e, cc, rr
    if buf == NULL:
        return _sq_dev_sum(x, n, scale, m, mlo, c, corr)
    if threads > 1:
        for b in prange(nb, num_threads=threads, schedule="static"):
            off = b * BLK
            buf[3 * b] = _sq_dev_sum(x + off, n - off if n - off < BLK else BLK, scale, m,
                                     mlo, &buf[3 * b + 1], &buf[3 * b + 2])
    else:
        for b in range(nb):
            off = b * BLK
            buf[3 * b] = _sq_dev_sum(x + off, n - off if n - off < BLK else BLK, scale, m,
                                     mlo, &buf[3 * b + 1], &buf[3 * b + 2])
    s = buf[0]
    cc = buf[1]
    rr = buf[2]
    for b in range(1, nb):
        s = two_sum(s, buf[3 * b], &e)
        cc = cc + (e + buf[3 * b + 1])
        rr = rr + buf[3 * b + 2]
    free(buf)
    c[0] = cc
    corr[0] = rr
    return s


# Which statistic a row pass computes.
cdef enum:
    SUM = 0
    MEAN = 1
    VAR = 2


cdef inline floating _row_stat(int what, const floating *x, Py_ssize_t n,
                               int threads) noexcept nogil:
    cdef floating hi, lo
    cdef int k
    if n == 0:
        return 0                       # empty sum 0, mean and var 0 (TorchLean denominators)
    if what == SUM:
        return _row_sum(x, n, &lo, &k, False, threads)   # correctly rounded
    if what == MEAN:
        return _mean_row(x, n, threads)
    return _var_row(x, n, threads)


cdef void _stat_rows(int what, const floating[:, ::1] x, floating[::1] out,
                     int threads) noexcept nogil:
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    if threads == 1 or rows < threads:
        # no OpenMP region over rows: its start-up dominates small inputs, and fewer rows
        # than threads (axis=None is one row) split each long row into blocks instead
        for i in range(rows):
            out[i] = _row_stat(what, &x[i, 0] if n else NULL, n, threads)
    else:
        for i in prange(rows, num_threads=threads, schedule="static"):
            out[i] = _row_stat(what, &x[i, 0] if n else NULL, n, 1)


def sum_rows(const floating[:, ::1] x,    # IN  (rows, n)
             floating[::1] out,           # OUT (rows,)
             int threads=1):
    if x.shape[0]:
        with nogil:
            _stat_rows(SUM, x, out, threads)


def mean_rows(const floating[:, ::1] x,   # IN  (rows, n)
              floating[::1] out,          # OUT (rows,)
              int threads=1):
    if x.shape[0]:
        with nogil:
            _stat_rows(MEAN, x, out, threads)


def var_rows(const floating[:, ::1] x,    # IN  (rows, n)
             floating[::1] out,           # OUT (rows,)
             int threads=1):
    if x.shape[0]:
        with nogil:
            _stat_rows(VAR, x, out, threads)


# max (want_max) or min of a non-empty row, exact, by order keys: a float's bits read
# as a signed integer s, key = s ^ ((s >> (w-1)) & 0x7f..f) flips the magnitude bits of
# negatives, so keys order exactly like the numbers, with -0 just below +0 (so
# max(-0, +0) = +0 and min = -0 whatever the positions, IEEE 754-2019 maximum/minimum)
# and NaNs beyond +-inf (sign-bit-clear NaNs above +inf, sign-bit-set ones below -inf).
# The map is an involution, which recovers the float from the winning key.  One pass
# keeps the largest and the smallest key: integer max/min are exact and associative, so
# gcc may vectorise the plain loop as a reduction in any lane order without changing the
# result (vpmaxs/vpmins; a float compare-select on the running value does not
# vectorise, gcc cannot turn it into a max reduction under IEEE NaN rules).  The two extremes also detect a NaN of either sign; such a row is rescanned
# by the plain loop, which returns its first NaN (payload kept).
cdef inline floating _extreme_row(const floating *x, Py_ssize_t n, bint want_max) noexcept nogil:
    if floating is float:
        return _extreme_row_f32(x, n, want_max)
    else:
        return _extreme_row_f64(x, n, want_max)


# float32: the keys' transform costs three vector ops per 8 entries, more than the
# extremes themselves, so the raw bits are compared instead.  As signed integers the
# non-negative floats (and +NaNs, above +inf) order like their values, and every negative
# is below them, ordered by magnitude; as unsigned integers the negatives sit above all
# non-negatives, ordered by magnitude, -NaNs above -inf.  From smax, smin (signed) and
# umax (unsigned) of the raw bits, three integer max/min per vector:
#   a NaN is present iff smax > bits(+inf) or umax > bits(-inf);
#   max = smax if smax >= 0 (some non-negative entry) else smin (all negative: the one
#         of least magnitude, -0 included);
#   min = umax if umax >= bits(-0) (some negative entry: the one of largest magnitude)
#         else smin (all non-negative: the least bits, +0 below every positive).
# The -0 < +0 order of the keys holds here too.
cdef inline float _extreme_row_f32(const float *x, Py_ssize_t n, bint want_max) noexcept nogil:
    cdef Py_ssize_t j
    cdef int32_t k, smax = INT32_MIN, smin = INT32_MAX
    cdef uint32_t u, umax = 0
    cdef float r
    for j in range(n):
        memcpy(&k, x + j, sizeof(float))
        u = <uint32_t>k
        smax = k if k > smax else smax
        smin = k if k < smin else smin
        umax = u if u > umax else umax
    if smax > (<int32_t>0x7f800000) or umax > (<uint32_t>0xff800000u):  # a NaN
        for j in range(n):
            if isnan(x[j]):
                return x[j]
    if want_max:
        k = smax if smax >= 0 else smin
    else:
        k = <int32_t>umax if umax >= (<uint32_t>0x80000000u) else smin
    memcpy(&r, &k, sizeof(float))
    return r


cdef inline double _extreme_row_f64(const double *x, Py_ssize_t n, bint want_max) noexcept nogil:
    cdef Py_ssize_t j
    cdef int64_t k, hi = INT64_MIN, lo = INT64_MAX
    cdef double r
    for j in range(n):
        memcpy(&k, x + j, sizeof(double))
        k = k ^ ((k >> 63) & INT64_MAX)
        hi = k if k > hi else hi
        lo = k if k < lo else lo
    if hi > (<int64_t>0x7ff << 52) or lo < ~(<int64_t>0x7ff << 52):    # a NaN sorts beyond +-inf
        for j in range(n):
            if isnan(x[j]):
                return x[j]
    k = hi if want_max else lo
    k = k ^ ((k >> 63) & INT64_MAX)
    memcpy(&r, &k, sizeof(double))
    return r


def extreme_rows(const floating[:, ::1] x,  # IN  (rows, n), n >= 1 (binding checks)
                 floating[::1] out,         # OUT (rows,)
                 bint want_max,
                 int threads=1):
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    if rows == 0 or n == 0:
        return
    with nogil:
        if threads == 1:    # no OpenMP region: its start-up dominates small inputs
            for i in range(rows):
                out[i] = _extreme_row(&x[i, 0], n, want_max)
        else:
            for i in prange(rows, num_threads=threads, schedule="static"):
                out[i] = _extreme_row(&x[i, 0], n, want_max)


def extreme_vjp(const floating[:, ::1] x,   # IN  (rows, n)
                const floating[::1] y,      # IN  forward result per row
                const floating[::1] g,      # IN  upstream gradient per row
                floating[:, ::1] gx,        # OUT (rows, n)
                int threads=1):
    """g split equally among the entries equal to the row's extremum; a NaN row gets a
    NaN gradient (the derivative is undefined there)."""
    cdef Py_ssize_t i, j, ties, rows = x.shape[0], n = x.shape[1]
    cdef floating share
    if rows == 0 or n == 0:
        return
    with nogil:
        for i in prange(rows, num_threads=threads, schedule="static"):
            ties = 0
            for j in range(n):
                if x[i, j] == y[i]:
                    ties = ties + 1
            share = g[i] / ties if ties > 0 else NAN
            for j in range(n):
                gx[i, j] = share if (ties == 0 or x[i, j] == y[i]) else 0


def var_vjp(const floating[:, ::1] x,       # IN  (rows, n)
            const floating[::1] g,          # IN  upstream gradient per row
            floating[:, ::1] gx,            # OUT g * 2 (x - mean) / n
            int threads=1):
    """gx_j = (2 g / n) (x_j - m) with the double-word mean m = m_hi + m_lo of _mean_dw
    (finite for a row of +-max entries): x_j - m_hi =
    d + e exactly (TwoSum), x_j - m = d + (e - m_lo) up to O(u^2) |x|.  With m rounded
    once, x_j - m^ is off by |m - m^| ~ u |m|: under a mean of 1e12 and a spread of 1
    that was ~4e13 ulp of the float64 gradient.  Rows with inf/NaN follow IEEE on the
    plain formula."""
    cdef Py_ssize_t i, j, rows = x.shape[0], n = x.shape[1]
    cdef floating m, mlo, w, d, e, big
    cdef int E
    if rows == 0 or n == 0:
        return
    with nogil:
        for i in prange(rows, num_threads=threads, schedule="static"):
            big = _max_abs(&x[i, 0], n, 1)
            w = 2 * g[i] / <floating>n
            if not isfinite(big):          # IEEE on the real formula: x - inf etc.
                m = _mean_row(&x[i, 0], n, 1)
                for j in range(n):
                    gx[i, j] = w * (x[i, j] - m)
                continue
            m = _mean_dw(&x[i, 0], n, 0, &mlo, 1)
            for j in range(n):
                d = two_sum(x[i, j], -m, &e)
                gx[i, j] = w * (d + (e - mlo))
