"""mp formulas for attention: the real-number definitions written once against ``ctx``.

Scores s_j = scale * sum_t q_t k_jt over the allowed keys; weights exp(s_j - s_r) / sum,
with the shift s_r = the first allowed score (any shift gives the same real number; the
max is not used because comparing computed scores is not allowed in the interval
context); a row with no allowed key gives zeros (hard-masked softmax).
"""
from __future__ import annotations

import numpy as np

from . import mp_impl, mp_vjp


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
    """(allowed key indices, weights A_j) of one query row."""
    idx = [j for j in range(kb.shape[0]) if mrow[j]]
    if not idx:
        return idx, []
    s = [ctx.fsum([a * b for a, b in zip(qi, kb[j])]) * scale for j in idx]
    e = [ctx.exp(sj - s[0]) for sj in s]
    total = ctx.fsum(e)
    return idx, [ej / total for ej in e]


@mp_impl("scaled_dot_product_attention")
def sdpa(ctx, arrays, params):
    q, k, v, m, B, L, S, E, Ev = _split(arrays, params)
    scale = _scale(ctx, E, params.get("scale"))
    out = np.empty((B, L, Ev), dtype=object)
    for b in range(B):
        for i in range(L):
            idx, A = _weights(ctx, q[b, i], k[b], m[b, i], scale)
            for c in range(Ev):
                out[b, i, c] = ctx.fsum([a * v[b, j, c] for a, j in zip(A, idx)]) \
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
            dA = [ctx.fsum([g[b, i, c] * v[b, j, c] for c in range(Ev)]) for j in idx]
            x = ctx.fsum([a * d for a, d in zip(A, dA)])
            dS = [a * (d - x) * scale for a, d in zip(A, dA)]
            for t in range(E):
                gq[b, i, t] = ctx.fsum([ds * k[b, j, t] for ds, j in zip(dS, idx)]) \
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
                    res[b, j, t] = ctx.fsum(lists[b][j][t]) if lists[b][j][t] else ctx.zero
        return res
    return (gq.reshape(arrays[0].shape), total(gk, (B, S, E)).reshape(arrays[1].shape),
            total(gv, (B, S, Ev)).reshape(arrays[2].shape))
