# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Kernels of the "other" layers: dropout with TorchLean's SplitMix64 RNG, sinusoidal
positional encoding and RoPE, float32 and float64.

Design:
a) SplitMix64 (catalog §1.11, NN/Runtime/Autograd/TorchLean/Random.lean) in uint64
   arithmetic (wrap-around is the definition): splitmix64(x): z = x + 0x9e3779b97f4a7c15;
   z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9; z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
   return z ^ (z >> 31).  key = splitmix64(seed + counter) (keyOf; the IR passes the node
   index as counter); u_i = splitmix64(key + i) mod 2^32 at the row-major index i; the
   element is kept when keep > u_i / 2^32, keep = 1 - p in binary64 (TorchLean's Float;
   u_i / 2^32 is exact in binary64), so the mask is the catalog's bit for bit, in every
   dtype and backend.
b) dropoutMaskedSpec: y = mask ? x / max(1 - p, eps) : 0, the divisor rounded to the
   dtype (p = 1 keeps nothing: keep = 0 > u never holds).  The VJP is the same map on g.
c) The positional tables (sinusoidal PE, RoPE's cos/sin) are TorchLean's Float
   (binary64) formulas: denom_i = exp(log(10000) * (2 i / D)), angle = pos / denom_i,
   i = j // 2, computed in double for both dtypes (a table of constants that depends on
   no input value).  PE: y = x + pe, rounded once to the dtype.  RoPE pairs
   (x_2k, x_2k+1) -> (x_2k c - x_2k+1 s, x_2k+1 c + x_2k s) (rotate: (-x1, x0, -x3, x2, ...);
   an unpaired last entry is kept by rotate, so y = x c + x s there); the two-term sum
   is formed in double from the exact products of the dtype's x with the double c, s
   (float32: both products are exact in double, one rounding at the end; float64: a
   compensated two-term dot, TwoProduct by fma).
"""
from cython cimport floating
from libc.stdint cimport uint64_t, int64_t
from libc.math cimport exp, log, sin, cos, fma, isfinite
from ._scalar cimport two_sum
from ._splitmix cimport splitmix64 as _splitmix64


def splitmix64(uint64_t x):
    """The catalog's splitmix64 of one uint64 (for tests and the mp backend)."""
    return _splitmix64(x)


def dropout_mask(uint64_t seed, uint64_t counter, double keep,
                 unsigned char[::1] mask):                   # OUT 1 = kept
    cdef uint64_t key = _splitmix64(seed + counter)
    cdef Py_ssize_t i
    cdef double u
    with nogil:
        for i in range(mask.shape[0]):
            u = <double>(_splitmix64(key + <uint64_t>i) & <uint64_t>0xffffffffULL) \
                / 4294967296.0
            mask[i] = 1 if keep > u else 0


def dropout_apply(const unsigned char[::1] mask,   # IN
                  const floating[::1] x,           # IN
                  floating scale,                  # IN  max(1 - p, eps) in the dtype
                  floating[::1] out):              # OUT
    cdef Py_ssize_t i
    cdef floating zero = 0
    with nogil:
        for i in range(x.shape[0]):
            out[i] = x[i] / scale if mask[i] else zero


cdef inline double _angle(double pos, Py_ssize_t j, Py_ssize_t d) noexcept nogil:
    cdef double denom = exp(log(10000.0) * ((2.0 * <double>(j // 2)) / <double>d))
    return pos / denom


def pe_add(const floating[:, :, ::1] x,    # IN  (B, L, D)
           double start,
           floating[:, :, ::1] out):       # OUT (B, L, D)
    cdef Py_ssize_t b, p, j, D = x.shape[2]
    cdef double a
    with nogil:
        for b in range(x.shape[0]):
            for p in range(x.shape[1]):
                for j in range(D):
                    a = _angle(start + p, j, D)
                    out[b, p, j] = <floating>(<double>x[b, p, j] + (sin(a) if j % 2 == 0
                                                                    else cos(a)))


cdef inline double _rot2(double x, double c, double r, double s) noexcept nogil:
    # x c + r s with the products' rounding errors added back (Design c)
    cdef double p = x * c, q = r * s, ep, eq, es, t
    ep = fma(x, c, -p)
    eq = fma(r, s, -q)
    t = two_sum(p, q, &es)
    if not isfinite(t):
        return t
    return t + (es + (ep + eq))


def rope(const floating[:, :, ::1] x,      # IN  (B, L, D)
         double start, bint transpose,     # transpose: the VJP (R^T g)
         floating[:, :, ::1] out):         # OUT (B, L, D)
    cdef Py_ssize_t b, p, j, D = x.shape[2]
    cdef double a, c, s, sg = -1.0 if transpose else 1.0
    with nogil:
        for b in range(x.shape[0]):
            for p in range(x.shape[1]):
                j = 0
                while j < D:
                    a = _angle(start + p, j, D)
                    c = cos(a)
                    s = sin(a)
                    if j + 1 < D:
                        # forward (x0, x1) -> (x0 c - x1 s, x1 c + x0 s); R^T uses -s
                        out[b, p, j] = <floating>_rot2(x[b, p, j], c, x[b, p, j + 1],
                                                       -sg * s)
                        out[b, p, j + 1] = <floating>_rot2(x[b, p, j + 1], c, x[b, p, j],
                                                           sg * s)
                    else:
                        out[b, p, j] = <floating>_rot2(x[b, p, j], c, x[b, p, j], s)
                    j += 2
