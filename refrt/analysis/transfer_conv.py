"""Abstract interval transformers for convolution and pooling, as data merged into
``transfer.INTERVAL`` (same contract: real-number bounds in float64 over the input box,
``(lo, hi, nan[, extra])``; the driver widens them by the op's tolerance).

conv2d / conv_transpose2d are bilinear: with midpoints m and radii r of x and w, every
output lies in conv(xm, wm) -+ (conv(|xm|, wr) + conv(xr, |wm|) + conv(xr, wr)), each
computed in float64 (NumPy) and widened by 4 * 2^-53 of the magnitudes (as
transfer._matmul_bounds); the Dot2 error term is transfer._dot2_extra.  An infinite bound
anywhere makes the result unbounded.  The pools are monotone nondecreasing in every input
(max, mean, and the smooth max, whose partials are a softmax >= 0, for either sign of
beta), so [f(lo), f(hi)] with f the op's own float64 kernel, widened by 2^-50 relative.
"""
from __future__ import annotations

import numpy as np

from .domain import INF

U64 = 2.0 ** -53


def _n4(a):
    return a if a.ndim == 4 else a[None]


def _conv_np(x4, w, stride, padding, dilation, groups, out_hw=None):
    """conv2d in float64 (NumPy, no bias): zero padding, taps gathered per kernel cell."""
    n, c, h, wd = x4.shape
    oc, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = out_hw[0] if out_hw else (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = out_hw[1] if out_hw else (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    big_h = max(h + 2 * ph, (ho - 1) * sh + dh * (kh - 1) + 1)
    big_w = max(wd + 2 * pw, (wo - 1) * sw + dw * (kw - 1) + 1)
    xp = np.zeros((n, c, big_h, big_w))
    xp[:, :, ph:ph + h, pw:pw + wd] = x4
    ocg = oc // groups
    out = np.zeros((n, oc, ho, wo))
    with np.errstate(all="ignore"):
        for i in range(kh):
            for j in range(kw):
                tap = xp[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw]
                for g in range(groups):
                    out[:, g * ocg:(g + 1) * ocg] += np.einsum(
                        "nchw,oc->nohw", tap[:, g * cg:(g + 1) * cg], w[g * ocg:(g + 1) * ocg, :, i, j])
    return out


def _conv_t_np(x4, w, stride, padding, dilation, groups, out_hw):
    """conv_transpose2d in float64 (NumPy, no bias): each tap scattered, then cropped."""
    n, ic, h, wd = x4.shape
    _, ocg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = out_hw
    big = np.zeros((n, ocg * groups, max((h - 1) * sh + dh * (kh - 1) + 1, ho + ph),
                    max((wd - 1) * sw + dw * (kw - 1) + 1, wo + pw)))
    icg = ic // groups
    with np.errstate(all="ignore"):
        for i in range(kh):
            for j in range(kw):
                for g in range(groups):
                    big[:, g * ocg:(g + 1) * ocg, i * dh:i * dh + (h - 1) * sh + 1:sh,
                        j * dw:j * dw + (wd - 1) * sw + 1:sw] += np.einsum(
                        "nchw,co->nohw", x4[:, g * icg:(g + 1) * icg],
                        w[g * icg:(g + 1) * icg, :, i, j])
    return big[:, :, ph:ph + ho, pw:pw + wo]


def _bilinear(lin, terms):
    def t(ins, p, shape):
        x, w, b = ins
        x4lo, x4hi = _n4(x.lo), _n4(x.hi)
        if not all(np.isfinite(v).all() for v in (x4lo, x4hi, w.lo, w.hi, b.lo, b.hi)):
            return np.full(shape, -INF), np.full(shape, INF), np.ones(shape, bool)
        with np.errstate(all="ignore"):
            xm, xr = x4lo / 2 + x4hi / 2, x4hi / 2 - x4lo / 2
            wm, wr = w.lo / 2 + w.hi / 2, w.hi / 2 - w.lo / 2
            m = lin(xm, wm, p)
            r = lin(np.abs(xm), wr, p) + lin(xr, np.abs(wm), p) + lin(xr, wr, p)
            mag = lin(np.abs(xm), np.abs(wm), p) + r
            bm = np.maximum(np.abs(b.lo), np.abs(b.hi))[None, :, None, None]
            slack = 4 * U64 * (mag + np.abs(m) + r + bm)
            lo = m - r - slack + b.lo[None, :, None, None]
            hi = m + r + slack + b.hi[None, :, None, None]
        lo, hi = np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi)
        nan = np.broadcast_to(bool(x.nan.any() or w.nan.any() or b.nan.any()), lo.shape)
        from .transfer import _dot2_extra
        extra = _dot2_extra(mag + bm, terms(w) + 1)
        return lo.reshape(shape), hi.reshape(shape), nan.reshape(shape), \
            np.broadcast_to(extra, lo.shape).reshape(shape)
    return t


def _conv_lin(a, w, p):
    return _conv_np(a, w, p["stride"], p["padding"], p["dilation"], p["groups"])


def _conv_t_lin(a, w, p):
    (sh, sw), (ph, pw), (dh, dw) = p["stride"], p["padding"], p["dilation"]
    h, wd = a.shape[2:]
    op = p["output_padding"]
    ho = (h - 1) * sh - 2 * ph + dh * (w.shape[2] - 1) + op[0] + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (w.shape[3] - 1) + op[1] + 1
    return _conv_t_np(a, w, p["stride"], p["padding"], p["dilation"], p["groups"], (ho, wo))


def _monotone(name):
    def t(ins, p, shape):
        from .. import ops
        x = ins[0]
        q = {k: v for k, v in p.items() if not k.startswith("_")}
        with np.errstate(all="ignore"):
            lo = np.asarray(ops.evaluate(name, x.lo, **q), np.float64).reshape(shape)
            hi = np.asarray(ops.evaluate(name, x.hi, **q), np.float64).reshape(shape)
            bad = (x.nan | np.isinf(x.lo) | np.isinf(x.hi)).astype(np.float64)
            nan = np.asarray(ops.evaluate("max_pool2d" if "adaptive" not in name else
                                          "adaptive_max_pool2d", bad,
                                          **{k: v for k, v in q.items() if k not in
                                             ("count_include_pad", "beta")})).reshape(shape) > 0
            lo = lo - 2.0 ** -50 * np.abs(lo) - 1e-300
            hi = hi + 2.0 ** -50 * np.abs(hi) + 1e-300
        return np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi), nan
    return t


INTERVAL_CONV = {
    "conv2d": _bilinear(_conv_lin, lambda w: w.shape[1] * w.shape[2] * w.shape[3]),
    "conv_transpose2d": _bilinear(_conv_t_lin, lambda w: w.shape[0] * w.shape[2] * w.shape[3]),
    "max_pool2d": _monotone("max_pool2d"), "avg_pool2d": _monotone("avg_pool2d"),
    "adaptive_avg_pool2d": _monotone("adaptive_avg_pool2d"),
    "adaptive_max_pool2d": _monotone("adaptive_max_pool2d"),
    "smooth_max_pool2d": _monotone("smooth_max_pool2d"),
}
