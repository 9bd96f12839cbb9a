"""mp formulas for attention: the real-number definitions written once against ``ctx``.

Scores s_j = scale * sum_t q_t k_jt over the allowed keys; weights
A_j = 1 / sum_l exp(s_l - s_j) (the softmax, with no shift: comparing computed scores is
not allowed in the interval context), each s_l - s_j one exact sum of products; a row
with no allowed key gives zeros (hard-masked softmax).
"""
from __future__ import annotations

import mpmath
import numpy as np

from . import mp_impl, mp_vjp
from .mp_reductions import _fsum, _softmax_row, _softmax_rule
from .mpctx import along


# |d| above 2^24 in exp(d): a weight below e^-(2^24) ~ 10^-7e6, which rounds to 0 in every
# float format even after products with the largest values any float product reaches
# (< 2^4400 ~ 10^1325); mpmath's exp of such arguments costs ~0.2 s each (mpf_pow_int)
EXP_CUT = 2 ** 24


def _exp(ctx, d):
    """ctx.exp.  An mpmath context evaluates it at prec + mag(d) bits (a private
    workprec: exp(-1e294) at 256 bits has no bits of its argument's fraction) and takes
    exp(d) = 0 / +inf beyond -+EXP_CUT (then 1 / sum = 0 exactly: the weight's real
    value rounds to 0 in every format, see EXP_CUT).  Other contexts (intervals) carry
    their own guarantee."""
    if isinstance(ctx, mpmath.ctx_mp.MPContext) and ctx.isfinite(d) and d != 0:
        if d < -EXP_CUT:
            return ctx.zero
        if d > EXP_CUT:
            return ctx.inf
        mag = ctx.mag(d)
        if mag > 0:
            with ctx.workprec(ctx.prec + mag + 16):
                r = ctx.exp(d)
            return +r
    return ctx.exp(d)


def _scale(ctx, E, scale):
    if scale is not None:
        return ctx.mpf(scale)
    return ctx.one if E == 0 else 1 / ctx.sqrt(E)


def _split(arrays, params):
    q, k, v = arrays
    L, E = q.shape[-2:]
    S, Ev = k.shape[-2], v.shape[-1]
    lead = q.shape[:-2]
    B = int(np.prod(lead, dtype=np.int64))
    m = params.get("mask")
    m = np.ones((B, L, S), dtype=bool) if m is None else np.asarray(m).reshape(B, L, S)
    return (q.reshape(B, L, E), k.reshape(B, S, E), v.reshape(B, S, Ev), m, B, L, S, E, Ev)


def _weights(ctx, qi, kb, mrow, scale):
    """(allowed key indices, weights A_j) of one query row: A_j = 1 / sum_l exp(s_l - s_j),
    each s_l - s_j one exact sum of products (no shift, no comparison of computed
    values; a shift by one score would round s_l - s_r for |s_r| >> |s_l - s_j|)."""
    idx = [j for j in range(kb.shape[0]) if mrow[j]]
    prods = {j: [a * b for a, b in zip(qi, kb[j])] for j in idx}
    A = [1 / _fsum(ctx, [_exp(ctx, _fsum(ctx, prods[l] + [-t for t in prods[j]]) * scale)
                         for l in idx]) for j in idx]
    return idx, A


@mp_impl("scaled_dot_product_attention")
def sdpa(ctx, arrays, params):
    q, k, v, m, B, L, S, E, Ev = _split(arrays, params)
    scale = _scale(ctx, E, params.get("scale"))
    out = np.empty((B, L, Ev), dtype=object)
    for b in range(B):
        for i in range(L):
            idx, A = _weights(ctx, q[b, i], k[b], m[b, i], scale)
            for c in range(Ev):
                out[b, i, c] = _fsum(ctx, [a * v[b, j, c] for a, j in zip(A, idx)]) \
                    if idx else ctx.zero
    return out.reshape(arrays[0].shape[:-1] + (Ev,))


@mp_vjp("scaled_dot_product_attention")
def sdpa_vjp(ctx, arrays, params, out, g):
    q, k, v, m, B, L, S, E, Ev = _split(arrays, params)
    scale = _scale(ctx, E, params.get("scale"))
    g = np.asarray(g, dtype=object).reshape(B, L, Ev)
    gq = np.empty((B, L, E), dtype=object)
    gk = [[[[] for _ in range(E)] for _ in range(S)] for _ in range(B)]
    gv = [[[[] for _ in range(Ev)] for _ in range(S)] for _ in range(B)]
    for b in range(B):
        for i in range(L):
            idx, A = _weights(ctx, q[b, i], k[b], m[b, i], scale)
            # dA_j - <A, dA> = sum_l A_l (dA_j - dA_l) (sum A = 1), each dA_j - dA_l one
            # fsum of exact products: with one-hot weights the plain difference cancels
            # to the working precision, the real value is the tiny weights' share
            gv_ = [[g[b, i, c] * v[b, j, c] for c in range(Ev)] for j in idx]
            dS = [a * _fsum(ctx, [al * _fsum(ctx, gv_[jj] + [-t for t in gv_[ll]])
                                for ll, al in enumerate(A)]) * scale
                  for jj, a in enumerate(A)]
            for t in range(E):
                gq[b, i, t] = _fsum(ctx, [ds * k[b, j, t] for ds, j in zip(dS, idx)]) \
                    if idx else ctx.zero
            for ds, a, j in zip(dS, A, idx):
                for t in range(E):
                    gk[b][j][t].append(ds * q[b, i, t])
                for c in range(Ev):
                    gv[b][j][c].append(a * g[b, i, c])

    def total(lists, shape):
        res = np.empty(shape, dtype=object)
        for b in range(shape[0]):
            for j in range(shape[1]):
                for t in range(shape[2]):
                    res[b, j, t] = _fsum(ctx, lists[b][j][t]) if lists[b][j][t] else ctx.zero
        return res
    return (gq.reshape(arrays[0].shape), total(gk, (B, S, E)).reshape(arrays[1].shape),
            total(gv, (B, S, Ev)).reshape(arrays[2].shape))


# ---- hard-masked softmax ---------------------------------------------------------------------
# TorchLean hardMaskedSoftmaxVecSpec: the softmax of the allowed entries (mp_reductions'
# row formula and VJP rule, with its IEEE rows), exactly 0 on blocked ones; no allowed
# entry: zeros.

def _hms_apply(ctx, rule, x, m, axis, *more):
    x1 = x.reshape(1) if x.ndim == 0 else x
    ax = 0 if x.ndim == 0 else axis
    m1 = np.broadcast_to(np.asarray(m, dtype=bool), x.shape).reshape(x1.shape)
    more = [np.asarray(a, dtype=object).reshape(x1.shape) for a in more]

    def row(xr, mr, *rest):
        idx = [j for j, ok in enumerate(mr) if ok]
        res = [ctx.zero] * len(xr)
        if idx:
            sub = rule([xr[j] for j in idx], *[[r[j] for j in idx] for r in rest])
            for j, v in zip(idx, sub):
                res[j] = v
        return res
    return along(row, x1, ax, m1, *more).reshape(x.shape)


@mp_impl("hard_masked_softmax")
def hard_masked_softmax(ctx, arrays, params):
    x, m = arrays
    return _hms_apply(ctx, lambda r: _softmax_row(ctx, r), x, m, params["axis"])


@mp_vjp("hard_masked_softmax")
def hard_masked_softmax_vjp(ctx, arrays, params, out, g):
    x, m = arrays
    gx = _hms_apply(ctx, lambda xr, yr, gr: _softmax_rule(ctx, yr, gr, xr), x, m,
                    params["axis"], out, g)
    return gx, None
