"""mp formulas for convolution and pooling: the direct definitions, written once
against ``ctx`` (see mpctx).  Sums are one exact ``_fsum``; comparisons (max, pivot) are
made on input values only.  conv2d multiplies padded cells as 0 * w (TorchLean's
x_pad, so IEEE's 0 * inf = NaN carries over); conv_transpose2d sums only the taps that
reach an output.
"""
from __future__ import annotations

import itertools

import numpy as np

from . import mp_impl, mp_vjp
from .conv_geometry import conv_out, pairs, pool_windows
from .mp_reductions import _fsum
from .mpctx import is_nan


def _obj(shape):
    return np.empty(shape, dtype=object)


def _n4(a):
    return a if a.ndim == 4 else a[None]


def _taps(params, w):
    (sh, sw), (ph, pw), (dh, dw) = params["stride"], params["padding"], params["dilation"]
    return sh, sw, ph, pw, dh, dw, w.shape[2], w.shape[3]


def _conv(ctx, x4, w, b, params, groups, out_hw=None, zero_pad=True):
    """conv2d on object arrays; zero_pad=False skips padded taps (for adjoints)."""
    n, c, h, wd = x4.shape
    oc, cg = w.shape[:2]
    sh, sw, ph, pw, dh, dw, kh, kw = _taps(params, w)
    ho, wo = out_hw or (conv_out(h, kh, sh, ph, dh), conv_out(wd, kw, sw, pw, dw))
    ocg = oc // groups
    out = _obj((n, oc, ho, wo))
    for s, o, i, j in itertools.product(range(n), range(oc), range(ho), range(wo)):
        g = o // ocg
        terms = [] if b is None else [b[o]]
        for cc, a, e in itertools.product(range(cg), range(kh), range(kw)):
            r, q = i * sh - ph + a * dh, j * sw - pw + e * dw
            if 0 <= r < h and 0 <= q < wd:
                terms.append(x4[s, g * cg + cc, r, q] * w[o, cc, a, e])
            elif zero_pad:
                terms.append(ctx.zero * w[o, cc, a, e])
        out[s, o, i, j] = _fsum(ctx, terms) if terms else ctx.zero
    return out


def _conv_t(ctx, x4, w, b, params, groups, out_hw):
    """conv_transpose2d on object arrays (only the taps that reach an output)."""
    n, ic, h, wd = x4.shape
    ocg = w.shape[1]
    sh, sw, ph, pw, dh, dw, kh, kw = _taps(params, w)
    icg = ic // groups
    ho, wo = out_hw
    out = _obj((n, ocg * groups, ho, wo))
    for s, o, i, j in itertools.product(range(n), range(ocg * groups), range(ho), range(wo)):
        g, ol = o // ocg, o % ocg
        terms = [] if b is None else [b[o]]
        for cc, a, e in itertools.product(range(icg), range(kh), range(kw)):
            r, q = i + ph - a * dh, j + pw - e * dw
            if r < 0 or q < 0 or r % sh or q % sw or r // sh >= h or q // sw >= wd:
                continue
            terms.append(x4[s, g * icg + cc, r // sh, q // sw] * w[g * icg + cc, ol, a, e])
        out[s, o, i, j] = _fsum(ctx, terms) if terms else ctx.zero
    return out


def _weight_grad(ctx, left4, right4, params, kshape, groups, transposed):
    """conv2d: dW[o, c', a, e] = sum g[n, o, i, j] x[n, c, i s - p + a d, ...];
    conv_transpose2d: dW[c, o', a, e] = sum x[n, c, i, j] g[n, o, i s - p + a d, ...]."""
    sh, sw, ph, pw, dh, dw = (params["stride"] + params["padding"] + params["dilation"])
    kh, kw = kshape[2], kshape[3]
    n, cl, ho, wo = left4.shape
    h, wd = right4.shape[2:]
    rows, cols = kshape[0], kshape[1]
    rg = rows // groups
    out = _obj(kshape)
    for o, cc, a, e in itertools.product(range(rows), range(cols), range(kh), range(kw)):
        g = o // rg
        terms = []
        for s, i, j in itertools.product(range(n), range(ho), range(wo)):
            r, q = i * sh - ph + a * dh, j * sw - pw + e * dw
            if 0 <= r < h and 0 <= q < wd:
                terms.append(left4[s, o, i, j] * right4[s, g * cols + cc, r, q])
        out[o, cc, a, e] = _fsum(ctx, terms) if terms else ctx.zero
    return out


def _bias_grad(ctx, g4):
    out = _obj(g4.shape[1])
    for o in range(g4.shape[1]):
        out[o] = _fsum(ctx, list(g4[:, o].ravel())) if g4[:, o].size else ctx.zero
    return out


@mp_impl("conv2d")
def conv2d(ctx, arrays, params):
    params = pairs(params)
    x, w, b = arrays
    return _conv(ctx, _n4(x), w, b, params, params["groups"])


@mp_vjp("conv2d")
def conv2d_vjp(ctx, arrays, params, out, g):
    params = pairs(params)
    x, w, b = arrays
    x4 = _n4(x)
    g4 = np.asarray(g, dtype=object).reshape((x4.shape[0],) + np.shape(out)[-3:])
    gx = _conv_t(ctx, g4, w, None, params, params["groups"], x4.shape[2:])
    gw = _weight_grad(ctx, g4, x4, params, w.shape, params["groups"], False)
    return gx.reshape(x.shape), gw, _bias_grad(ctx, g4)


@mp_impl("conv_transpose2d")
def conv_transpose2d(ctx, arrays, params):
    params = pairs(params)
    x, w, b = arrays
    x4 = _n4(x)
    n, c, h, wd = x4.shape
    sh, sw, ph, pw, dh, dw, kh, kw = _taps(params, w)
    op = params["output_padding"]
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + op[0] + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + op[1] + 1
    return _conv_t(ctx, x4, w, b, params, params["groups"], (ho, wo))


@mp_vjp("conv_transpose2d")
def conv_transpose2d_vjp(ctx, arrays, params, out, g):
    params = pairs(params)
    x, w, b = arrays
    x4 = _n4(x)
    g4 = np.asarray(g, dtype=object).reshape((x4.shape[0],) + np.shape(out)[-3:])
    groups = params["groups"]
    gx = _conv(ctx, g4, w, None, params, groups, out_hw=x4.shape[2:], zero_pad=False)
    gw = _weight_grad(ctx, x4, g4, params, w.shape, groups, True)
    return gx.reshape(x.shape), gw, _bias_grad(ctx, g4)


# ---- pools ----------------------------------------------------------------------------------

def _out_hw(name, params, h, w):
    if name.startswith("adaptive"):
        return tuple(params["output_size"])
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    return ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)


def _windows(name, params, x):
    x4 = _n4(x)
    n, c, h, w = x4.shape
    ho, wo = _out_hw(name, params, h, w)
    return x4, (ho, wo), pool_windows(name, params, h, w, ho, wo)


def _cells(x4, s, c, h0, h1, w0, w1, zero):
    """Window cells in row-major order with their positions (None: a padded cell = 0)."""
    h, w = x4.shape[2:]
    out = []
    for r in range(h0, h1):
        for q in range(w0, w1):
            inside = 0 <= r < h and 0 <= q < w
            out.append((x4[s, c, r, q] if inside else zero, (r, q) if inside else None))
    return out


def _first_best(ctx, cells, better):
    """Index of the first best cell; a NaN beats every number (the first NaN wins)."""
    k = 0
    for i, (v, _) in enumerate(cells[1:], 1):
        if is_nan(ctx, v):
            if not is_nan(ctx, cells[k][0]):
                k = i
        elif not is_nan(ctx, cells[k][0]) and better(v, cells[k][0]):
            k = i
    return k


def _smooth(ctx, cells, beta):
    """(y, pivot index, S) of TorchLean's smooth max over one window."""
    k = _first_best(ctx, cells, (lambda a, b: a > b) if beta > 0 else (lambda a, b: a < b))
    p = cells[k][0]
    if not ctx.isfinite(p):
        return p, k, None
    B = ctx.mpf(beta)
    S = _fsum(ctx, [ctx.exp(B * (v - p)) for v, _ in cells])
    return p + ctx.log(S) / B, k, S


def _pool_forward(name):
    def formula(ctx, arrays, params):
        params = pairs(params)
        x4, (ho, wo), (hs, he, ws, we, dh, dw) = _windows(name, params, arrays[0])
        n, c = x4.shape[:2]
        out = _obj((n, c, ho, wo))
        for s, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
            cells = _cells(x4, s, ch, hs[i], he[i], ws[j], we[j], ctx.zero)
            if name in ("max_pool2d", "adaptive_max_pool2d"):
                out[s, ch, i, j] = cells[_first_best(ctx, cells, lambda a, b: a > b)][0]
            elif name == "smooth_max_pool2d":
                out[s, ch, i, j] = _smooth(ctx, cells, params["beta"])[0]
            else:
                out[s, ch, i, j] = _fsum(ctx, [v for v, _ in cells]) / int(dh[i] * dw[j])
        return out
    return formula


def _pool_vjp(name):
    def rule(ctx, arrays, params, out, g):
        params = pairs(params)
        x = arrays[0]
        x4, (ho, wo), (hs, he, ws, we, dh, dw) = _windows(name, params, x)
        n, c = x4.shape[:2]
        g4 = np.asarray(g, dtype=object).reshape(n, c, ho, wo)
        terms = {}
        for s, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
            cells = _cells(x4, s, ch, hs[i], he[i], ws[j], we[j], ctx.zero)
            gv = g4[s, ch, i, j]
            if name in ("max_pool2d", "adaptive_max_pool2d"):
                k = _first_best(ctx, cells, lambda a, b: a > b)
                parts = [(cells[k][1], gv)]
            elif name == "smooth_max_pool2d":
                y, k, S = _smooth(ctx, cells, params["beta"])
                B = ctx.mpf(params["beta"])
                parts = [(pos, gv * ctx.exp(B * (v - cells[k][0])) / S) for v, pos in cells] \
                    if S is not None else [(cells[k][1], gv * ctx.nan)]
            else:
                d = int(dh[i] * dw[j])
                parts = [(pos, gv / d) for _, pos in cells]
            for pos, t in parts:
                if pos is not None:
                    terms.setdefault((s, ch) + pos, []).append(t)
        gx = _obj(x4.shape)
        for idx in itertools.product(*(range(k) for k in x4.shape)):
            t = terms.get(idx)
            gx[idx] = _fsum(ctx, t) if t else ctx.zero
        return (gx.reshape(x.shape),)
    return rule


for _name in ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
              "smooth_max_pool2d"):
    mp_impl(_name)(_pool_forward(_name))
    mp_vjp(_name)(_pool_vjp(_name))
