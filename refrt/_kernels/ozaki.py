"""Correctly rounded matrix products on NumPy's BLAS: C[b] = A[b] @ Bt[b]^T (+ bias).

Same contract and layout as `linalg.matmul_nt` (a (B, m, n), bt (B, p, n), out (B, m, p)),
which stays the kernel for small products and the fallback for single outputs.

Design:
a) Error-free splitting (Ozaki, Ogita, Oishi, Rump, "Error-free transformations of matrix
   multiplication by using fast routines of matrix multiplication and its applications",
   Numer. Algorithms 59, 2012; Mukunoki, Ozaki, Ogita, Imamura, "DGEMM using Tensor Cores,
   and its accurate and reproducible versions", ISC 2020).  Row i of A (row k of Bt) has
   tau = the exponent of its largest entry (max |x| < 2^tau).  The first slice
   s = fl(fl(x + c) - c), c = 1.5 * 2^(52 - beta + tau), is x rounded to the grid
   2^(tau - beta) (x + c lies in [2^(52-beta+tau), 2^(53-beta+tau)), whose ulp is that
   grid; the subtraction is exact by Sterbenz), and r = x - s is exact.  s holds integers
   of at most beta bits times the grid, so a dot of n slice products is a sum of integers
   below n 2^(2 beta) <= 2^53 in units of 2^(tau_i + tau_k - 2 beta): every partial sum is
   a double and BLAS computes S_a S_b^T exactly, in any order, with or without FMA.
   beta = floor((53 - ceil(log2 n)) / 2): 22 for n <= 512, 20 for n <= 8192.
   Conditions: the unit 2^(tau_i + tau_k - 2 beta) must not fall below 2^-1074
   (subnormal products would round): such outputs are recomputed exactly (flag 1, as
   rows whose max is below 2^(beta - 1072)); rows beyond 2^TAU_MAX, where c would
   overflow, are split by s = x - fmod(x, grid) instead (exact, |r| < grid).
b) float64: with A = Sa + Ra, B = Sb + Rb (per (a)),
      A B = Sa Sb  +  Sa Rb  +  Ra B
   in three GEMMs: Sa Sb is exact (a); the two others are below 2^-beta of the product in
   size and BLAS rounds them with |error| <= gamma_n sum_j |x_j y_j| <= gamma_n ||x|| ||y||
   (any summation order, gamma_n = n u / (1 - n u), Higham, Accuracy and Stability of
   Numerical Algorithms, sec. 3.1; Cauchy-Schwarz on the row 2-norms), plus
   4 (n + 8) 2^-1074 for underflow.  The usual Ozaki scheme splits both operands into 3+
   slices and needs 6+ GEMMs for an error-free result; here only the leading product is
   error-free, the two others are certified through their error bound (e).
c) float32: a product of two float32 values is exact in float64 (48 bits, no under- or
   overflow) and a sum of n of them is rounded with |error| <= gamma_n ||a|| ||b||: one
   GEMM of the inputs converted to float64, no split.  This widens internally to double
   like a single correctly rounded elementary function does: the result is the float32
   rounding of the exact dot product (certified in (e)), and any GEMM that reaches the
   exact dot through float32 operations alone would need 6+ float32 GEMMs.
d) The parts are summed per output in double-double (TwoSum, ozaki.h) with the bias
   (linear) added last, so y = x W^T + b is rounded once.
e) Certification (ozaki.h): the exact value lies within E of r + t, E the bound of (b)/(c)
   plus the double-double's own rounding; when |t| + E is below half the gap below |r|
   in the output format, r is the correctly rounded result.  Outputs that fail, and
   every output near underflow (below 2^(emin + 2p), as matmul_nt's rescue) or overflow,
   are recomputed: first by ozaki_refine (float64: the two rounded parts again by Dot2,
   error <= u|part| + gamma^2 ||x|| ||y||; float32: the dot by Dot2 in float64 on the
   exact products, error <= u|dot| + gamma^2 ||a|| ||b||) and certified again, the rest
   (ties, near underflow or overflow) exactly by the superaccumulator (superacc.h,
   ozaki_fix).  So every output of finite inputs is the
   correctly rounded exact dot product, whatever the BLAS summation order: the bits do
   not depend on BLAS, its threads or the CPU.  Measured share not certified by the
   first pass (bench/bench_matmul.py, normal inputs): float32 0.01-0.05%, float64 0.1%
   (n = 64) to 4% (n = 512) and 12% (n = 768); the refine pass costs ~2 Dot2 dots each.
f) Fallback: outputs whose row or column of A / Bt, or bias, holds inf/NaN are computed by
   the Dot2 kernel exactly as matmul_nt computes them (its IEEE inf/NaN semantics and
   rescue), so they keep today's bits.
g) When (use_ozaki): OZAKI_MIN_FLOPS per dtype, measured with bench/bench_matmul.py on the
   shared 2-core AVX-512 VM: float32 pays from ~48^3 (NumPy's call overheads dominate
   below), float64 from ~320^3 (below, and again from ~768^3 where the refine share grows,
   it runs at about Dot2's speed: it is kept there for its correct rounding).
h) Threads: BLAS runs with `threads` threads for the call (threadpoolctl sets OpenBLAS's
   count and restores it after; without threadpoolctl BLAS keeps its own setting, e.g.
   OPENBLAS_NUM_THREADS).  The rounding and fallback kernels run on one thread.
"""
import math

import numpy as np

from . import linalg as LA

# Design g: the smallest product (2 m n p flops per batch) sent to BLAS, per dtype
# (measured with bench/bench_matmul.py --crossover and --sizes; docs/accuracy.md)
OZAKI_MIN_FLOPS = {np.dtype(np.float32): 2 * 48 ** 3, np.dtype(np.float64): 2 * 320 ** 3}
_U = 2.0 ** -53
_NORM_FLOOR = 2.0 ** -530           # Design b: squares below 2^-1074 are lost in a norm
TAU_MAX = 1023 - 53                 # Design a: c = 1.5 2^(52 - beta + tau) stays finite
TINY = -(1 << 20)                   # Design a: the exponent reported for subnormal rows


def _beta(n):
    return (53 - max(1, math.ceil(math.log2(max(n, 2))))) // 2


def _gamma(n):
    """gamma_n (Design b) times slack for the computed norms (each rounded <= gamma_{n+2})."""
    g = n * _U / (1 - n * _U)
    return g * (1 + 4 * (n + 4) * _U) * (1 + 2.0 ** -30)


def _gamma2(n):
    """gamma_N^2 of Dot2's bound (dot2.h, Design b; N <= n + 6 for every lane count)."""
    return (_gamma(n + 6) * (1 + 2.0 ** -30)) ** 2


def _norms(x, floor):
    """Row 2-norms of x (..., n) (upper bounds up to the slack in _gamma)."""
    return np.sqrt(np.einsum("...j,...j->...", x, x)) + floor


class _BlasThreads:
    """Design h: the BLAS thread count for one call (a cached threadpoolctl controller)."""
    _libs = None

    def __init__(self, threads):
        self.threads = max(1, int(threads))
        self.saved = []

    @classmethod
    def libs(cls):
        if cls._libs is None:
            try:
                from threadpoolctl import ThreadpoolController
                cls._libs = ThreadpoolController().select(user_api="blas").lib_controllers
            except Exception:          # threadpoolctl missing or unable to load BLAS
                cls._libs = []
        return cls._libs

    def __enter__(self):
        for lib in self.libs():
            old = lib.get_num_threads()
            if old != self.threads:
                lib.set_num_threads(self.threads)
                self.saved.append((lib, old))
        return self

    def __exit__(self, *exc):
        for lib, old in self.saved:
            lib.set_num_threads(old)


def _exponents(x, beta):
    """Design a: per row tau (max |x_i| < 2^tau), the exponent the product checks use
    (tau, or TINY for rows whose grid 2^(tau - beta) would fall below 2^-1074: every
    output of such a row fails the check and is recomputed exactly), and the finite rows
    (inf/NaN rows: Design f)."""
    if x.shape[-1] == 0:
        z = np.zeros(x.shape[:-1], np.intc)
        return z, z, z == 0
    mx = np.maximum(np.max(x, axis=-1), -np.min(x, axis=-1))
    ok = np.isfinite(mx)
    tau = np.frexp(np.where(ok, mx, 0.0))[1].astype(np.intc)
    low = beta - 1072
    report = np.where(tau < low, TINY, tau).astype(np.intc)
    return np.maximum(tau, low).astype(np.intc), report, ok


def _split(x, tau, beta):
    """Design a: x = s + r, s on the grid 2^(tau - beta) of its row (|s| <= 2^tau), r exact.
    Rows beyond TAU_MAX, where c would overflow, take s = x - fmod(x, grid) (exact, the
    truncated |r| < grid; fmod costs a libm call per entry)."""
    c = (1.5 * np.ldexp(1.0, 52 - beta + np.minimum(tau, TAU_MAX)))[..., None]
    s = (x + c) - c
    big = tau > TAU_MAX
    if big.any():
        g = np.ldexp(1.0, tau[big] - beta)[..., None]
        s[big] = x[big] - np.fmod(x[big], g)
    return s, x - s


def _row_norms(x, tau, bound):
    """Upper bounds of the row 2-norms of x (up to the slack in _gamma): the computed norm
    where its squares neither overflow nor lose their bits to underflow (|tau| <= 400,
    plus a floor for the squares below 2^-1074), sqrt(n) times `bound` (a bound of max
    |x_i|) elsewhere."""
    n = x.shape[-1]
    direct = np.sqrt(np.einsum("...j,...j->...", x, x)) + _NORM_FLOOR
    far = np.abs(tau) > 400
    if far.any():
        direct = np.where(far, math.sqrt(n) * (1 + 2.0 ** -40) * bound, direct)
    return direct


def _gemm_nt(x, y):
    """x (B, m, n) @ y (B, p, n)^T per batch, 2-D BLAS calls (NumPy's stacked matmul of
    a transposed operand does not reach BLAS)."""
    out = np.empty((x.shape[0], x.shape[1], y.shape[1]))
    for b in range(x.shape[0]):
        np.matmul(x[b], y[b].T, out=out[b])
    return out


def _parts_f64(a, bt):
    n = a.shape[-1]
    beta = _beta(n)
    ta, ra_, oka = _exponents(a, beta)
    tb, rb_, okb = _exponents(bt, beta)
    s_a, r_a = _split(a, ta, beta)
    s_b, r_b = _split(bt, tb, beta)
    ma = np.ldexp(1.0, ta)                     # bounds of max |a_i|, max |b_k|
    mb = np.ldexp(1.0, tb)
    p0 = _gemm_nt(s_a, s_b)                    # exact (Design a)
    p1 = _gemm_nt(s_a, r_b)                    # rounded, bounded (Design b)
    p2 = _gemm_nt(r_a, bt)
    ra_max = np.ldexp(1.0, ta - beta)          # |r| <= the grid (half of it but in fmod rows)
    rb_max = np.ldexp(1.0, tb - beta)
    na = np.stack([_row_norms(s_a, ta, ma + ra_max), _row_norms(r_a, ta, ra_max)])
    nb = np.stack([_row_norms(r_b, tb, rb_max), _row_norms(bt, tb, mb)])
    ea = _gamma(n) * na
    ea[:, ~oka] = np.inf                       # Design f: flag 2
    eb = nb.copy()
    eb[:, ~okb] = np.inf
    return (p0, p1, p2), ea, eb, ra_, rb_, 2 * beta - 1074, (s_a, r_a, r_b, bt, na, nb)


def _parts_f32(a, bt):
    n = a.shape[-1]
    a64 = a.astype(np.float64)
    b64 = bt.astype(np.float64)
    p0 = _gemm_nt(a64, b64)                    # Design c
    na = _norms(a64, 0.0)[None]
    eb = _norms(b64, 0.0)[None]
    z = np.zeros
    return ((p0,), _gamma(n) * na, eb, z(a.shape[:-1], np.intc), z(bt.shape[:-1], np.intc),
            -2 ** 30, (a64, b64, na, eb))


def use_ozaki(m, n, p, dtype=np.float64):
    """Design g: the BLAS path for an (m, n) x (n, p) product."""
    return n > 0 and 2 * m * n * p >= OZAKI_MIN_FLOPS[np.dtype(dtype)] and n < 2 ** 26


def matmul_nt(a, bt, bias, out, threads=1, force=None):
    """out[b] = a[b] @ bt[b]^T (+ bias), correctly rounded for finite inputs (Design e).

    a (B, m, n), bt (B, p, n) C-contiguous float32/float64; bias (p,) or (0,); out
    (B, m, p).  force=True/False picks the path regardless of size (tests, bench).
    Returns (outputs not certified by the first pass, outputs sent to ozaki_fix), or
    None when Dot2 (matmul_nt) ran for all.
    """
    nb, m, n = a.shape
    p = bt.shape[1]
    ozaki = use_ozaki(m, n, p, a.dtype) if force is None else (force and 0 < n < 2 ** 26)
    if not ozaki or nb == 0 or m == 0 or p == 0:
        LA.matmul_nt(a, bt, bias, out, threads)
        return None
    with np.errstate(all="ignore"), _BlasThreads(threads):
        parts, ea, eb, sa, sb, lowest, rows = (_parts_f64 if a.dtype == np.float64
                                               else _parts_f32)(a, bt)
    p0 = parts[0]
    p1, p2 = parts[1:] if len(parts) == 3 else (p0, p0)
    flags = np.empty(out.shape, np.int8)
    eabs = 4 * (n + 8) * 2.0 ** -1074          # underflow in the rounded parts, Dot2
    bad = LA.ozaki_round(p0, p1, p2, bias, ea, eb, sa, sb, lowest, eabs,
                         out, flags)
    refined = bad
    if bad and a.dtype == np.float64:
        # Design e: float64 outputs of flag 1 get their two rounded parts by Dot2
        s_a, r_a, r_b, b_s, na, nb = rows
        refined = LA.ozaki_refine(p0, s_a, r_a, r_b, b_s, na, nb, _gamma2(n), eabs, bias,
                                  out, flags)
    elif bad:
        # Design e: float32 ones get their dot by Dot2 in float64 (exact products)
        refined = LA.ozaki_refine32(*rows, _gamma2(n), eabs, bias, out, flags)
    if refined:
        LA.ozaki_fix(a, bt, bias, flags, out)
    return bad, refined
