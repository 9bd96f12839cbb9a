"""mp formulas for multi-head attention: the real-number composition written once against
``ctx`` from the pieces of the other mp formulas: projections are exact sums of products
(mp_reductions._mm, one fsum per entry), each head the scaled_dot_product_attention
formula and VJP (mp_attention, no shift and no comparison of computed values), the
output projection again one fsum per entry."""
from __future__ import annotations

import numpy as np

from . import mp_impl, mp_vjp
from .mp_attention import sdpa as _sdpa, sdpa_vjp as _sdpa_vjp
from .mp_reductions import _fsum, _mm


def _obj(a):
    return np.asarray(a, dtype=object)


def _heads(P, N, T, H, hd):
    """(N T, H hd) -> (N, H, T, hd)."""
    return P.reshape(N, T, H, hd).transpose(0, 2, 1, 3)


def _unheads(X, N, T, H, hd):
    return X.transpose(0, 2, 1, 3).reshape(N * T, H * hd)


def _setup(ctx, arrays, params):
    q, k, v, wq, wk, wv, wo, bq, bk, bv, bo = (_obj(a) for a in arrays)
    N = q.shape[0] if q.ndim == 3 else 1
    L, S, D, H = q.shape[-2], k.shape[-2], wq.shape[1], params["num_heads"]
    hd = D // H
    xs = [a.reshape(-1, a.shape[-1]) for a in (q, k, v)]
    P = [_mm(ctx, x, w, b) for x, w, b in zip(xs, (wq, wk, wv), (bq, bk, bv))]
    heads = [_heads(P[0], N, L, H, hd), _heads(P[1], N, S, H, hd), _heads(P[2], N, S, H, hd)]
    hp = {"mask": params.get("mask"), "scale": params.get("scale")}
    return xs, heads, hp, (N, L, S, D, H, hd)


@mp_impl("multi_head_attention")
def multi_head_attention(ctx, arrays, params):
    xs, heads, hp, (N, L, S, D, H, hd) = _setup(ctx, arrays, params)
    O = _unheads(_sdpa(ctx, heads, hp), N, L, H, hd)
    wo, bo = _obj(arrays[6]), _obj(arrays[10])
    return _mm(ctx, O, wo, bo).reshape(np.shape(arrays[0])[:-1] + (wo.shape[1],))


def _colsum(ctx, a):
    res = np.empty(a.shape[1], dtype=object)
    for j in range(a.shape[1]):
        res[j] = _fsum(ctx, list(a[:, j])) if a.shape[0] else ctx.zero
    return res


@mp_vjp("multi_head_attention")
def multi_head_attention_vjp(ctx, arrays, params, out, g):
    xs, heads, hp, (N, L, S, D, H, hd) = _setup(ctx, arrays, params)
    wo = _obj(arrays[6])
    O = _unheads(_sdpa(ctx, heads, hp), N, L, H, hd)
    g2 = _obj(g).reshape(-1, wo.shape[1])
    gwo = _mm(ctx, O.T, g2)
    gbo = _colsum(ctx, g2)
    dO = _heads(_mm(ctx, g2, wo.T), N, L, H, hd)
    dheads = _sdpa_vjp(ctx, heads, hp, None, dO)
    gx, gw, gb = [], [], []
    for x, w, dh, T, a in zip(xs, arrays[3:6], dheads, (L, S, S), arrays[:3]):
        dP = _unheads(_obj(dh), N, T, H, hd)
        gx.append(_mm(ctx, dP, _obj(w).T).reshape(np.shape(a)))
        gw.append(_mm(ctx, x.T, dP))
        gb.append(_colsum(ctx, dP))
    return (*gx, *gw, gwo, *gb, gbo)
