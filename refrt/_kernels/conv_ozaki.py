"""conv2d's products on the Ozaki path: out[s, g] = a[g] @ b[s, g] + bias (per row).

The same contract as `ozaki.matmul_nt` (every output of finite inputs correctly rounded,
certified per output, independent of BLAS order and thread count; inf/NaN rows and
columns by the Dot2 kernel's per-output path), for the layout conv2d wants:

Design:
a) Layout.  conv.im2col_kn writes the patch matrix transposed and in float64,
   b (S, G, K, P): one row per tap, one column per output position, for S samples and G
   groups.  The weights are a (G, M, K).  a[g] @ b[s, g] is then (M, P) = the NCHW
   output block of sample s and group g: no transpose of the result, and BLAS runs the
   plain NN product (m = output channels, n = taps, p = positions) per (s, g).
b) float32: a float32 product is exact in float64 and b already holds the float64
   values, so one float64 GEMM per (s, g) and the error bound gamma_K ||a_i|| ||b_k||
   (ozaki.py Design c).  float64: the split of ozaki.py Design a/b, with b's "rows"
   being its columns (one exponent tau per output position, the split along axis -2):
   Sa Sb (exact) + Sa Rb + Ra B, three GEMMs per (s, g).
c) The bias of output channel c is a per-row term here (matmul_nt's is per column), so
   conv.oz_round_rows adds it in the same double-double sum before the single rounding
   (ozaki.h Design a): y = W x + b is still one correctly rounded sum.
d) Outputs not certified (flags from ozaki.h) are gathered per output channel, so the
   channel's bias is one value for the gathered batch, and run through linalg's
   ozaki_refine / ozaki_refine32 (certified again) and ozaki_fix (superaccumulator for
   finite inputs, the Dot2 kernel's IEEE path for inf/NaN) on compact copies of the
   weight row and the gathered patch columns.  Same kernels, same bits as matmul_nt's
   fallbacks.
"""
import numpy as np

from . import linalg as LA
from . import conv as CK
from .ozaki import TAU_MAX, TINY, _BlasThreads, _beta, _gamma, _gamma2, _norms, _split, _U

_NORM_FLOOR = 2.0 ** -530           # ozaki.py Design b: squares below 2^-1074 are lost


def _exponents_cols(x, beta):
    """ozaki._exponents along axis -2 (one exponent per column of x (..., K, P))."""
    mx = np.maximum(np.max(x, axis=-2), -np.min(x, axis=-2))
    ok = np.isfinite(mx)
    tau = np.frexp(np.where(ok, mx, 0.0))[1].astype(np.intc)
    low = beta - 1072
    report = np.where(tau < low, TINY, tau).astype(np.intc)
    return np.maximum(tau, low).astype(np.intc), report, ok


def _exps(mx, low):
    """Design e: tau per row (column) from its max |x| (max < 2^tau), raised to `low` so
    that the second split's grid 2^(tau - 2 beta) stays >= 2^-1072; the reported exponent
    is TINY where it was raised (every output of that row is then recomputed), and the
    finite rows."""
    ok = np.isfinite(mx)
    tau = np.frexp(np.where(ok, mx, 0.0))[1].astype(np.intc)
    report = np.where(tau < low, TINY, tau).astype(np.intc)
    return np.maximum(tau, low).astype(np.intc), report, ok


def _split_cols(x, tau, beta):
    """ozaki._split along axis -2: x = s + r, s on the grid 2^(tau - beta) of its column."""
    c = (1.5 * np.ldexp(1.0, 52 - beta + np.minimum(tau, TAU_MAX)))[..., None, :]
    s = (x + c) - c
    big = tau > TAU_MAX
    if big.any():
        grid = np.ldexp(1.0, tau - beta)[..., None, :]
        s = np.where(big[..., None, :], x - np.fmod(x, grid), s)
    return s, x - s


def _col_norms(x, tau, bound):
    """ozaki._row_norms along axis -2 (upper bounds of the column 2-norms)."""
    n = x.shape[-2]
    direct = np.sqrt(np.einsum("...kp,...kp->...p", x, x)) + _NORM_FLOOR
    far = np.abs(tau) > 400
    if far.any():
        direct = np.where(far, np.sqrt(n) * (1 + 2.0 ** -40) * bound, direct)
    return direct


def _row_norms(x, tau, bound):
    n = x.shape[-1]
    direct = np.sqrt(np.einsum("...j,...j->...", x, x)) + _NORM_FLOOR
    far = np.abs(tau) > 400
    if far.any():
        direct = np.where(far, np.sqrt(n) * (1 + 2.0 ** -40) * bound, direct)
    return direct


def _gemms(x, y, S):
    """x (G, m, n) @ y (S, G, n, p) -> (S, G, m, p), one BLAS call per (s, g)."""
    G, m = x.shape[:2]
    out = np.empty((S, G, m, y.shape[-1]))
    for s in range(S):
        for g in range(G):
            np.matmul(x[g], y[s, g], out=out[s, g])
    return out


def _flag_array(shape):
    """(buffer, flags): int8 flags of `shape` on a buffer of whole 8-byte words."""
    size = int(np.prod(shape, dtype=np.int64))
    buf = np.zeros(-(-size // 8) * 8, np.int8)
    return buf, buf[:size].reshape(shape)


def _flagged(buf, size):
    """Flat indices of the nonzero flags (few): scan 8 bytes at a time, then the bytes
    of the nonzero words (np.nonzero on the int8 array costs ~10x more)."""
    words = np.flatnonzero(buf.view(np.uint64))
    idx = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    idx = idx[idx < size]
    return idx[buf[idx] != 0]


def matmul_kn(a, b, bias, out, threads=1):
    """out[s, g] = a[g] @ b[s, g] (+ bias[g m + i] on row i), correctly rounded for finite
    inputs (Design c/d).

    a (G, M, K) in out's dtype, C-contiguous; b (S, G, K, P) float64 holding values of
    out's dtype (conv.im2col_kn); bias (G M,) in out's dtype or (0,); out (S, G, M, P)
    C-contiguous float32/float64.  Returns (not certified by the first pass, sent to
    ozaki_fix)."""
    S, G, K, P = b.shape
    M = a.shape[1]
    f64 = out.dtype == np.float64
    with np.errstate(all="ignore"), _BlasThreads(threads):
        if not f64:
            a64 = a.astype(np.float64)
            p0 = _gemms(a64, b, S)                               # Design b
            p1 = p2 = p0
            na = _norms(a64, 0.0)
            nb = np.sqrt(np.einsum("sgkp,sgkp->sgp", b, b))
            ea = (_gamma(K) * na)[None]
            eb = nb[None]
            sa = np.zeros((G, M), np.intc)
            sb = np.zeros((S, G, P), np.intc)
            lowest = -2 ** 30
            rows = (a64, na)
        else:
            # Design e: two-level split, six GEMMs, the first three exact
            beta = _beta(K)
            low = 2 * beta - 1072
            ta, sa, oka = _exps(np.maximum(np.max(a, axis=-1), -np.min(a, axis=-1)), low)
            tb, sb, okb = _exps(np.maximum(np.max(b, axis=-2), -np.min(b, axis=-2)), low)
            a1, ra = _split(a, ta, beta)
            a2, a3 = _split(ra, ta - beta, beta)
            if tb.max(initial=0) <= TAU_MAX:
                b1, rb, b2, b3 = (np.empty_like(b) for _ in range(4))
                c1 = 1.5 * np.ldexp(1.0, 52 - beta + tb)
                CK.split2_cols(b, c1, np.ldexp(c1, -beta), b1, rb, b2, b3, threads)
            else:                                                # fmod columns
                b1, rb = _split_cols(b, tb, beta)
                b2, b3 = _split_cols(rb, tb - beta, beta)
            p0 = _gemms(a1, b1, S)                               # exact
            p1 = _gemms(a1, b2, S)                               # exact
            p1 += _gemms(a2, b1, S)                              # exact sum
            p2 = _gemms(a1, b3, S)                               # rounded, bounded
            p2 += _gemms(a2, rb, S)
            p2 += _gemms(a3, b, S)
            del b1, b2, b3
            g = (_gamma(K) + 3 * _U) * (1 + 2.0 ** -30)
            rk = np.sqrt(K) * (1 + 2.0 ** -40)
            ea = np.zeros((2, G, M))
            ea[0] = g * rk * np.ldexp(1.0, ta - 2 * beta)
            ea[0, ~oka] = np.inf                                 # ozaki.py Design f
            eb = np.zeros((2, S, G, P))
            eb[0] = 1.25 * rk * np.ldexp(1.0, tb)
            eb[0, ~okb] = np.inf
            lowest = 3 * beta - 1074
            rows = (a1, ra, rb, ta, tb, beta)
    fbuf, flags = _flag_array(out.shape)
    eabs = 4 * (K + 8) * 2.0 ** -1074
    bad = CK.oz_round_rows(p0, p1, p2, bias, np.ascontiguousarray(ea),
                           np.ascontiguousarray(eb), np.ascontiguousarray(sa),
                           np.ascontiguousarray(sb), lowest,
                           4 * (3 * K + 8) * 2.0 ** -1074 if f64 else eabs, out, flags,
                           threads)
    if not bad:
        return 0, 0
    # Design d: flag-1 outputs refined in one kernel pass, ordered by patch column
    s_i, g_i, m_i, k_i = np.unravel_index(_flagged(fbuf, flags.size), flags.shape)
    order = np.lexsort((m_i, k_i, g_i, s_i))
    idx = np.ascontiguousarray(np.stack([s_i, g_i, m_i, k_i], axis=1)[order], dtype=np.int_)
    if f64:
        # ozaki.py Design e's refine on the one-level split: exact = A1 B1 + A1 Rb + Ra B
        a1, ra, rb, ta, tb, beta = rows
        with np.errstate(all="ignore"):          # inf bounds: flag 2 (ozaki.py Design f)
            ma, mb = np.ldexp(1.0, ta), np.ldexp(1.0, tb)
            na = np.stack([_row_norms(a1, ta, ma),
                           _row_norms(ra, ta, np.ldexp(1.0, ta - beta))])
            nb = np.stack([_col_norms(rb, tb, np.ldexp(1.0, tb - beta)),
                           _col_norms(b, tb, mb)])
        left = CK.oz_refine_cols(idx, b, rb, a1, ra, p0, na, nb, _gamma2(K), eabs, bias,
                                 out, flags)
    else:
        a64, na = rows
        left = CK.oz_refine_cols(idx, b, b, a64, a64, p0, na[None], nb[None], _gamma2(K),
                                 eabs, bias, out, flags)
    if left:
        _fix(a, b, bias, out, flags, fbuf)
    return bad, left


def _fix(a, b, bias, out, flags, fbuf):
    """Design d: the outputs still flagged (ties, near underflow / overflow, inf/NaN),
    gathered per output channel for linalg.ozaki_fix."""
    S, G, M, P = out.shape
    s_i, g_i, m_i, k_i = np.unravel_index(_flagged(fbuf, flags.size), flags.shape)
    chan = g_i * M + m_i
    order = np.argsort(chan, kind="stable")
    s_i, g_i, m_i, k_i, chan = s_i[order], g_i[order], m_i[order], k_i[order], chan[order]
    cuts = np.flatnonzero(np.diff(chan)) + 1
    dt = out.dtype
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, chan.size]):
        s, k = s_i[lo:hi], k_i[lo:hi]
        gg, ii, F = int(g_i[lo]), int(m_i[lo]), hi - lo
        bc = np.ascontiguousarray(b[s, gg, :, k][None].astype(dt))   # (1, F, K), exact
        fl = np.ascontiguousarray(flags[s, gg, ii, k].reshape(1, 1, F))
        oc = np.ascontiguousarray(out[s, gg, ii, k].reshape(1, 1, F))
        bi = np.full(F, bias[gg * M + ii], dt) if bias.shape[0] else np.empty(0, dt)
        LA.ozaki_fix(np.ascontiguousarray(a[gg, ii][None, None]), bc, bi, fl, oc)
        out[s, gg, ii, k] = oc[0, 0]
