"""Bind the conv/pool kernels (``refrt._kernels.conv``) to op names (float32/float64).

conv2d's forward, from matmul's BLAS threshold on (one group's product over all
samples; float64 also from KN_MIN_TAPS_F64 taps: _use_kn), is conv.im2col_kn (the patch
matrix transposed, in float64) onto conv_ozaki.matmul_kn: the Ozaki scheme on NumPy's
BLAS, the bias of each output channel added inside the certified rounding, so every
output of finite inputs is correctly rounded (docs/matmul.md's contract; inf/NaN
outputs keep the Dot2 kernel's bits).  Smaller convs keep im2col (conv.im2col) onto
_mm_nt (Dot2, or ozaki.matmul_nt, there), one product per group with that group's bias
slice.  conv_transpose2d's forward and conv2d's input gradient (the same map) are that
conv2d of the zero-inserted input by the flipped weights (_conv_t_ozaki) when BLAS-sized
and finite, else conv.conv_transpose (gathered Dot2); float64 weight gradients run on
conv_ozaki.matmul_kn (_group_products).  The pools pass per-output window index arrays
(conv_geometry).  A (C, H, W) input is run as (1, C, H, W); the dispatcher reshapes the
result.  Transposes here are data movement.
"""
from __future__ import annotations

import math

import numpy as np

from .._kernels import conv as CK
from .._kernels import conv_ozaki as CO
from .._kernels import ozaki as OZ
from . import float_impl, float_vjp
from .conv_geometry import conv_out, inverse, pairs, pool_windows
from .float_reductions import _mm_nt

_NONE = {np.dtype(np.float32): np.empty(0, np.float32),
         np.dtype(np.float64): np.empty(0, np.float64)}


def _nchw(a):
    return np.ascontiguousarray(a if a.ndim == 4 else a[None])


def _im2col(x4, kh, kw, groups, stride, padding, dilation, ho, wo, threads):
    n, c = x4.shape[:2]
    cols = np.empty((groups, n, ho * wo, (c // groups) * kh * kw), dtype=x4.dtype)
    CK.im2col(x4, cols, kh, kw, *stride, *padding, *dilation, ho, wo, threads)
    return cols


# the forward's patch matrix is built for a chunk of samples at a time, at most ~256 MiB
# (a batch of 64 ResNet 3x3x256 layers would need 1.8 GB at once); outputs are
# independent dots, so chunking changes no bits
COLS_BYTES = 256 << 20


# Design (module docstring): the Ozaki path when one group's product is at least
# matmul's BLAS threshold (ozaki.OZAKI_MIN_FLOPS, 2 m n p over all samples), smaller
# convs keep im2col + _mm_nt (Dot2 there).  float64 also needs K >= KN_MIN_TAPS_F64
# taps: below, matmul_nt's one-level split (3 GEMMs, a Dot2 refine for the few percent
# of outputs its bound leaves) was as fast or faster than conv_ozaki's six GEMMs
# (bench_conv / thread clock, 2026-12-01: K = 256 1x1 94 vs 100 ms, K = 576 104 vs 92 ms,
# K = 1152 1.09 vs 1.45 s).  FORCE_OZAKI (tests) overrides both.
FORCE_OZAKI = None
KN_MIN_TAPS_F64 = 640


def _use_ozaki(n, k, ocg, hw, dtype):
    """The product is BLAS-sized (conv_transpose's rewrite, weight gradients)."""
    if FORCE_OZAKI is not None:
        return FORCE_OZAKI and k > 0
    return OZ.use_ozaki(n * hw, k, ocg, dtype) and k > 0


def _use_kn(n, k, ocg, hw, dtype):
    """conv_ozaki.matmul_kn for the forward."""
    if FORCE_OZAKI is not None:
        return FORCE_OZAKI and k > 0
    return _use_ozaki(n, k, ocg, hw, dtype) and (dtype == np.float32 or k >= KN_MIN_TAPS_F64)


# samples are taken in chunks of at most COLS_KN_BYTES of patch matrix (memory; the
# outputs are independent dots, so chunking changes no bits); within a chunk one BLAS
# call per group covers all its samples (per-sample calls were slower where Ho Wo is
# small: 1x1 / strided / grouped layers)
COLS_KN_BYTES = 32 << 20


def _conv_fwd_ozaki(x4, wg, bias, kh, kw, stride, padding, dilation, ho, wo, out, threads):
    """out (N, OC, Ho, Wo) = conv of x4 by wg (G, OC/G, K) (+ bias), per chunk of samples:
    conv.im2col_kn ((G, K, samples, Ho Wo) float64) then conv_ozaki.matmul_kn; the result
    (G, OC/G, samples, Ho Wo) is transposed into NCHW."""
    n = x4.shape[0]
    groups, ocg, k = wg.shape
    hw = ho * wo
    step = max(1, COLS_KN_BYTES // max(1, 8 * groups * k * hw))
    b = _NONE[x4.dtype] if bias is None else np.ascontiguousarray(bias)
    out4 = out.reshape(n, groups, ocg, hw)
    for s0 in range(0, n, step):
        xs = x4[s0:s0 + step]
        m = xs.shape[0]
        cols = np.empty((groups, k, m, hw))
        CK.im2col_kn(xs, cols, kh, kw, *stride, *padding, *dilation, ho, wo, threads)
        blk = np.empty((1, groups, ocg, m * hw), out.dtype)
        CO.matmul_kn(wg, cols.reshape(1, groups, k, m * hw), b, blk, threads)
        out4[s0:s0 + m] = blk.reshape(groups, ocg, m, hw).transpose(2, 0, 1, 3)
    return out


def _conv_fwd(x4, w, bias, stride, padding, dilation, groups, threads, out_hw=None):
    n, c, h, wd = x4.shape
    oc, cg, kh, kw = w.shape
    ho, wo = out_hw or (conv_out(h, kh, stride[0], padding[0], dilation[0]),
                        conv_out(wd, kw, stride[1], padding[1], dilation[1]))
    ocg, k = oc // groups, cg * kh * kw
    wg = np.ascontiguousarray(w).reshape(groups, ocg, k)
    out = np.empty((n, oc, ho, wo), dtype=x4.dtype)
    if n * oc * ho * wo and _use_kn(n, k, ocg, ho * wo, x4.dtype):
        return _conv_fwd_ozaki(x4, wg, bias, kh, kw, stride, padding, dilation, ho, wo,
                               out, threads)
    step = max(1, COLS_BYTES // max(1, c * kh * kw * ho * wo * x4.itemsize))
    for s0 in range(0, n, step):
        xs = x4[s0:s0 + step]
        m = xs.shape[0]
        cols = _im2col(xs, kh, kw, groups, stride, padding, dilation, ho, wo, threads)
        for g in range(groups):
            b = None if bias is None else bias[g * ocg:(g + 1) * ocg]
            y = _mm_nt(cols[g].reshape(1, m * ho * wo, k), wg[g][None], threads, b)
            out[s0:s0 + m, g * ocg:(g + 1) * ocg] = \
                y[0].reshape(m, ho, wo, ocg).transpose(0, 3, 1, 2)
    return out


def _conv_t(x4, w, bias, stride, padding, dilation, groups, out_hw, threads):
    n = x4.shape[0]
    if _conv_t_ozaki_ok(x4, w, bias, groups, out_hw):
        return _conv_t_ozaki(x4, w, bias, stride, padding, dilation, groups, out_hw, threads)
    out = np.empty((n, w.shape[1] * groups) + tuple(out_hw), dtype=x4.dtype)
    CK.conv_transpose(x4, np.ascontiguousarray(w), _NONE[x4.dtype] if bias is None else
                      np.ascontiguousarray(bias), out, *stride, *padding, *dilation, groups,
                      threads)
    return out


def _conv_t_ozaki_ok(x4, w, bias, groups, out_hw):
    """The transposed conv as a conv2d (below) when that conv takes the Ozaki path and
    every input is finite: the rewritten conv multiplies explicit zeros (the inserted and
    padded ones) by every weight, so an inf weight would leak NaN (0 * inf) into outputs
    that the gathered kernel's TorchLean semantics (conv.pyx Design b) never touch."""
    n, ic = x4.shape[:2]
    icg, ocg, kh, kw = ic // max(groups, 1), w.shape[1], w.shape[2], w.shape[3]
    if n * ic * ocg * out_hw[0] * out_hw[1] == 0 or not _use_ozaki(
            n, icg * kh * kw, ocg, out_hw[0] * out_hw[1], x4.dtype):
        return False
    return bool(np.isfinite(w).all() and np.isfinite(x4).all()
                and (bias is None or np.isfinite(bias).all()))


def _phase_taps(k, s, p, d, phase):
    """Design of _conv_t_ozaki, one axis: the taps i with i d = phase + p (mod s), in
    descending order (so that their input offsets c_i = (phase + p - i d) / s ascend by
    d / gcd(s, d)), the first offset and that spacing."""
    taps = [i for i in range(k - 1, -1, -1) if (phase + p - i * d) % s == 0]
    off = (phase + p - taps[0] * d) // s if taps else 0
    return taps, off, d // math.gcd(s, d)


def _pad_crop(a, lo_h, hi_h, lo_w, hi_w):
    """a (N, C, H, W) with lo/hi rows and columns added as zeros (cropped where < 0)."""
    n, c, h, w = a.shape
    out = np.zeros((n, c, h + lo_h + hi_h, w + lo_w + hi_w), a.dtype)
    src = a[:, :, max(0, -lo_h):h - max(0, -hi_h), max(0, -lo_w):w - max(0, -hi_w)]
    out[:, :, max(0, lo_h):max(0, lo_h) + src.shape[2],
        max(0, lo_w):max(0, lo_w) + src.shape[3]] = src
    return out


def _conv_t_ozaki(x4, w, bias, stride, padding, dilation, groups, out_hw, threads):
    """conv_transpose (x (N, IC, h, w) by w (IC, OC/G, kh, kw)) as s_h s_w conv2ds, one
    per output phase (sub-pixel form), so that only the taps that reach an output are
    multiplied.  One axis: y[t] = sum_{h, i: h s - p + i d = t} x[h] w[i]; for
    t = phase + s m the taps are those with i d = phase + p (mod s), at input h = m + c_i,
    c_i = (phase + p - i d) / s, which step by d / gcd(s, d) as i steps by
    s / gcd(s, d):
        y[phase + s m] = sum_r x[m + c_0 + r d'] w[i_r]     (i_r descending)
    a stride-1 conv2d with dilation d' of x padded by -c_0 (cropped where c_0 > 0), by the
    selected taps, channels swapped per group.  Every output is the same exact sum as the
    gathered kernel's, rounded once by the conv2d path (correctly rounded for finite
    inputs; only called for finite inputs, _conv_t_ozaki_ok).  A phase without taps is
    the bias."""
    n, ic, h, wd = x4.shape
    icg, ocg = ic // groups, w.shape[1]
    H, W = out_hw
    out = np.empty((n, groups * ocg, H, W), x4.dtype)
    wg = w.reshape(groups, icg, ocg, w.shape[2], w.shape[3])
    for ph in range(min(stride[0], H)):
        th, oh, dh = _phase_taps(w.shape[2], stride[0], padding[0], dilation[0], ph)
        mh = -(-(H - ph) // stride[0])
        for pw in range(min(stride[1], W)):
            tw, ow, dw = _phase_taps(w.shape[3], stride[1], padding[1], dilation[1], pw)
            mw = -(-(W - pw) // stride[1])
            view = out[:, :, ph::stride[0], pw::stride[1]]
            if not th or not tw:
                view[...] = 0 if bias is None else bias[None, :, None, None]
                continue
            xp = _pad_crop(x4, -oh, (mh - 1) + oh + (len(th) - 1) * dh + 1 - h,
                           -ow, (mw - 1) + ow + (len(tw) - 1) * dw + 1 - wd)
            wp = np.ascontiguousarray(wg[:, :, :, th][:, :, :, :, tw].transpose(0, 2, 1, 3, 4)
                                      ).reshape(groups * ocg, icg, len(th), len(tw))
            view[...] = _conv_fwd(xp, wp, bias, (1, 1), (0, 0), (dh, dw), groups, threads,
                                  out_hw=(mh, mw))
    return out


def _channel_sums(g4, threads):
    """sum(g, (0, 2, 3)) as Dot2 dots against ones (compensated, rounded once)."""
    n, c = g4.shape[:2]
    rows = np.ascontiguousarray(g4.transpose(1, 0, 2, 3)).reshape(1, c, -1)
    ones = np.ones((1, 1, rows.shape[2]), dtype=g4.dtype)
    return _mm_nt(rows, ones, threads)[0, :, 0]


# float64 weight gradients with at most this many bytes per copy of the patch matrix go
# through conv_ozaki.matmul_kn (its split keeps ~5 copies), larger ones through _mm_nt
KN_GRAD_BYTES = 128 << 20


def _group_products(left4, cols, groups, threads):
    """Per group: left (N, Cl, ...) channels of the group, flattened over (N, positions),
    times the patch matrix cols[g] (N * positions, K) -> (Cl/groups, K) per group.

    float64 products on the BLAS path run conv_ozaki.matmul_kn's two-level split (no
    refine pass: matmul_nt's one-level split leaves ~5-15% of these long dots, N * Ho * Wo
    terms, to its Dot2 refine), with the patch matrix as its (taps-last) right operand:
    a = the gradient's channels (G, Cl/G, N P), b = cols (1, G, N P, K)."""
    n, cl = left4.shape[:2]
    clg = cl // groups
    npos, k = cols.shape[1] * cols.shape[2], cols.shape[3]
    if (cols.dtype == np.float64 and npos * k * 8 <= KN_GRAD_BYTES and clg * npos * k
            and (FORCE_OZAKI or FORCE_OZAKI is None and OZ.use_ozaki(clg, npos, k))):
        a = np.ascontiguousarray(left4.reshape(n, groups, clg, -1).transpose(1, 2, 0, 3)
                                 ).reshape(groups, clg, npos)
        out = np.empty((1, groups, clg, k))
        CO.matmul_kn(a, cols.reshape(1, groups, npos, k), _NONE[cols.dtype], out, threads)
        return out.reshape(groups * clg, k)
    out = []
    for g in range(groups):
        a = left4[:, g * clg:(g + 1) * clg].transpose(1, 0, 2, 3).reshape(1, clg, -1)
        bt = cols[g].reshape(-1, cols.shape[3]).T[None]
        out.append(_mm_nt(a, bt, threads)[0])
    return np.concatenate(out, axis=0) if out else np.empty((0, cols.shape[3]), left4.dtype)


P = lambda params: (params["stride"], params["padding"], params["dilation"])  # noqa: E731


@float_impl("conv2d")
def conv2d(arrays, params, threads):
    params = pairs(params)
    x, w, b = arrays
    return _conv_fwd(_nchw(x), w, b, *P(params), params["groups"], threads)


@float_vjp("conv2d")
def conv2d_vjp(arrays, params, out, g, threads):
    params = pairs(params)
    x, w, b = arrays
    x4 = _nchw(x)
    g4 = _nchw(np.asarray(g, x.dtype).reshape((x4.shape[0],) + np.shape(out)[-3:]))
    groups = params["groups"]
    gx = _conv_t(g4, w, None, *P(params), groups, x4.shape[2:], threads)
    cols = _im2col(x4, w.shape[2], w.shape[3], groups, *P(params), g4.shape[2], g4.shape[3],
                   threads)
    gw = _group_products(g4, cols, groups, threads).reshape(w.shape)
    return gx.reshape(x.shape), gw, _channel_sums(g4, threads)


@float_impl("conv_transpose2d")
def conv_transpose2d(arrays, params, threads):
    params = pairs(params)
    x, w, b = arrays
    x4 = _nchw(x)
    n, c, h, wd = x4.shape
    (sh, sw), (ph, pw), (dh, dw) = P(params)
    op = params["output_padding"]
    ho = (h - 1) * sh - 2 * ph + dh * (w.shape[2] - 1) + op[0] + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (w.shape[3] - 1) + op[1] + 1
    return _conv_t(x4, w, b, *P(params), params["groups"], (ho, wo), threads)


@float_vjp("conv_transpose2d")
def conv_transpose2d_vjp(arrays, params, out, g, threads):
    params = pairs(params)
    x, w, b = arrays
    x4 = _nchw(x)
    g4 = _nchw(np.asarray(g, x.dtype).reshape((x4.shape[0],) + np.shape(out)[-3:]))
    groups = params["groups"]
    h, wd = x4.shape[2:]
    gx = _conv_fwd(g4, w, None, *P(params), groups, threads, out_hw=(h, wd))
    cols = _im2col(g4, w.shape[2], w.shape[3], groups, *P(params), h, wd, threads)
    gw = _group_products(x4, cols, groups, threads).reshape(w.shape)
    return gx.reshape(x.shape), gw, _channel_sums(g4, threads)


# ---- pools ------------------------------------------------------------------------------

def _geometry(name, params, h, w, ho, wo):
    return pool_windows(name, params, h, w, ho, wo)


def _bind_pool(name, kind):
    def fwd(arrays, params, threads):
        params = pairs(params)
        (x,) = arrays
        xp = _nchw(x)
        n, c, h, w = xp.shape
        shape = _out_hw(name, params, h, w)
        x3 = xp.reshape(n * c, h, w)
        hs, he, ws, we, dh, dw = _geometry(name, params, h, w, *shape)
        out = np.empty((n * c,) + shape, dtype=x.dtype)
        if kind == "max":
            CK.pool_max(x3, hs, he, ws, we, out, threads)
        elif kind == "avg":
            cap = int(max((he - hs).max(initial=0), 0) * max((we - ws).max(initial=0), 0))
            CK.pool_avg(x3, hs, he, ws, we, dh, dw, out, cap, threads)
        else:
            CK.pool_smooth_max(x3, hs, he, ws, we, out, params["beta"], threads)
        return out.reshape(n, c, *shape)

    def vjp(arrays, params, out, g, threads):
        params = pairs(params)
        (x,) = arrays
        xp = _nchw(x)
        n, c, h, w = xp.shape
        shape = _out_hw(name, params, h, w)
        x3 = xp.reshape(n * c, h, w)
        g3 = np.ascontiguousarray(np.asarray(g, x.dtype)).reshape((n * c,) + shape)
        hs, he, ws, we, dh, dw = _geometry(name, params, h, w, *shape)
        gx = np.zeros_like(x3)
        if kind == "max":
            CK.pool_max_vjp(x3, g3, hs, he, ws, we, gx, np.zeros_like(x3), threads)
        else:
            olo, ohi = inverse(hs, he, h)
            plo, phi = inverse(ws, we, w)
            cap = int(max((ohi - olo).max(initial=0), 0) * max((phi - plo).max(initial=0), 0))
            if kind == "avg":
                CK.pool_avg_vjp(g3, olo, ohi, plo, phi, dh, dw, gx, hs, he, ws, we, cap, threads)
            else:
                CK.pool_smooth_max_vjp(x3, g3, olo, ohi, plo, phi, hs, he, ws, we, gx,
                                       params["beta"], cap, threads)
        return (gx.reshape(x.shape),)

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


def _out_hw(name, params, h, w):
    if name.startswith("adaptive"):
        return tuple(params["output_size"])
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    return ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)


for _name, _kind in (("max_pool2d", "max"), ("avg_pool2d", "avg"),
                     ("adaptive_avg_pool2d", "avg"), ("adaptive_max_pool2d", "max"),
                     ("smooth_max_pool2d", "smooth")):
    _bind_pool(_name, _kind)
