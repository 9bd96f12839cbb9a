"""mp formulas and VJPs of dropout, positional_encoding, rope and gcn_layer: the
real-number definitions against ``ctx`` (the dropout mask is the same integer SplitMix64
stream as the kernels', read from the parameters only)."""
from __future__ import annotations

import numpy as np

from . import mp_impl, mp_vjp
from .float_misc import dropout_mask
from .mp_reductions import _fsum
from ..registry._spec import EPSILON


def _dropout(ctx, x, params):
    x = np.asarray(x, dtype=object)
    if not params["training"]:
        return x.copy()
    keep = dropout_mask(x.size, params).astype(bool)
    one_minus_p = ctx.one - ctx.mpf(params["p"])
    eps = ctx.mpf(EPSILON)
    scale = one_minus_p if one_minus_p > eps else eps
    flat = x.reshape(-1)
    out = np.empty(x.size, dtype=object)
    for i in range(x.size):
        out[i] = flat[i] / scale if keep[i] else ctx.zero
    return out.reshape(x.shape)


mp_impl("dropout")(lambda ctx, arrays, params: _dropout(ctx, arrays[0], params))
mp_vjp("dropout")(lambda ctx, arrays, params, out, g: (_dropout(ctx, g, params),))


def _angle(ctx, pos, j, d):
    # pos / 10000^(2 (j // 2) / d), the real number TorchLean's Float formula rounds
    return ctx.mpf(pos) / ctx.exp(ctx.log(ctx.mpf(10000)) * (ctx.mpf(2 * (j // 2)) / d))


@mp_impl("positional_encoding")
def positional_encoding(ctx, arrays, params):
    (x,) = arrays
    out = np.empty(x.shape, dtype=object)
    d = x.shape[-1]
    for idx in np.ndindex(x.shape):
        p, j = idx[-2], idx[-1]
        a = _angle(ctx, params["start"] + p, j, d)
        out[idx] = x[idx] + (ctx.sin(a) if j % 2 == 0 else ctx.cos(a))
    return out


@mp_vjp("positional_encoding")
def positional_encoding_vjp(ctx, arrays, params, out, g):
    return (np.asarray(g, dtype=object).copy(),)


def _rope(ctx, x, params, sign):
    out = np.empty(x.shape, dtype=object)
    d = x.shape[-1]
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        pos = params["start"] + idx[-1]
        for j in range(0, d, 2):
            a = _angle(ctx, pos, j, d)
            c, s = ctx.cos(a), ctx.sin(a)
            if j + 1 < d:
                out[idx + (j,)] = row[j] * c - sign * row[j + 1] * s
                out[idx + (j + 1,)] = row[j + 1] * c + sign * row[j] * s
            else:
                out[idx + (j,)] = row[j] * c + row[j] * s
    return out


mp_impl("rope")(lambda ctx, arrays, params: _rope(ctx, arrays[0], params, 1))
mp_vjp("rope")(lambda ctx, arrays, params, out, g: (
    _rope(ctx, np.asarray(g, dtype=object), params, -1),))


def _mm(ctx, a, b, bias=None):
    m, n, p = a.shape[0], a.shape[1], b.shape[1]
    out = np.empty((m, p), dtype=object)
    for i in range(m):
        for k in range(p):
            terms = [a[i, j] * b[j, k] for j in range(n)]
            if bias is not None:
                terms.append(bias[k])
            out[i, k] = _fsum(ctx, terms)
    return out


@mp_impl("gcn_layer")
def gcn_layer(ctx, arrays, params):
    a, x, w, b = arrays
    return _mm(ctx, _mm(ctx, a, x), w, b)


@mp_vjp("gcn_layer")
def gcn_layer_vjp(ctx, arrays, params, out, g):
    a, x, w, b = arrays
    g = np.asarray(g, dtype=object)
    gwt = _mm(ctx, g, w.T)
    gb = np.array([_fsum(ctx, list(g[:, k])) for k in range(g.shape[1])] or [], dtype=object)
    return _mm(ctx, gwt, x.T), _mm(ctx, a.T, gwt), _mm(ctx, _mm(ctx, a, x).T, g), gb
