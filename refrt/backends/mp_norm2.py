"""mp formulas for the norm2 ops: the real-number definitions written once against ``ctx``.

Each normalised set (``norm2_layout``) is a row: c = x - mean(x) (centred ops) or x,
v = sum(c^2) / D (or / 1 for weight_norm), y = c / sqrt(v + eps) * gamma + beta.  A row
with an inf or NaN is NaN (as the kernels: mean = +-inf or NaN); v + eps = 0 (eps = 0 and
a constant row) gives NaN (0 / 0).  Sums are exact before one rounding (``_fsum``).
"""
from __future__ import annotations

import numpy as np

from . import mp_impl, mp_vjp
from .mp_reductions import _fsum
from .norm2_layout import HAS_BETA, OPS, layout


def _bad(ctx, row):
    return any(ctx.isnan(v) or ctx.isinf(v) for v in row)


def _row_stats(ctx, row, eps, centred, mean):
    """(c list, inv_std) of one row, or None where v + eps = 0."""
    D = len(row)
    m = _fsum(ctx, row) / D if centred else ctx.zero
    # c_i = x_i - m as one exact sum (x_i - sum/D = (D x_i - sum) / D)
    c = [(_fsum(ctx, [D * v] + [-w for w in row]) / D) if centred else v for v in row]
    if all(v == row[0] for v in row) and (centred or row[0] == 0) and eps == 0:
        return c, None
    var = _fsum(ctx, [t * t for t in c]) / (D if mean else 1)
    return c, 1 / ctx.sqrt(var + ctx.mpf(eps))


def _obj(rows):
    return np.array(rows, dtype=object)


def _bind(name):
    beta_in = HAS_BETA[name]

    def fwd(ctx, arrays, params):
        x = arrays[0]
        L = layout(name, x.shape, params)
        xr, gr = L.rows(x), L.expand(arrays[1])
        br = L.expand(arrays[2]) if beta_in else None
        out = np.empty(xr.shape, dtype=object)
        for r in range(xr.shape[0]):
            row = list(xr[r])
            if _bad(ctx, row):
                out[r] = [ctx.nan] * len(row)
                continue
            c, inv = _row_stats(ctx, row, params["eps"], L.centred, L.mean)
            for i, ci in enumerate(c):
                b = br[r, i] if beta_in else ctx.zero
                out[r, i] = ctx.nan if inv is None else ci * inv * gr[r, i] + b
        return L.unrows(out)

    def vjp(ctx, arrays, params, out, g):
        x = arrays[0]
        L = layout(name, x.shape, params)
        xr, gam = L.rows(x), L.expand(arrays[1])
        gr = L.rows(np.asarray(g, dtype=object).reshape(x.shape))
        R, D = xr.shape
        gx = np.empty((R, D), dtype=object)
        px = np.empty((R, D), dtype=object)
        n = D if L.mean else 1
        for r in range(R):
            row = list(xr[r])
            c, inv = (None, None) if _bad(ctx, row) else \
                _row_stats(ctx, row, params["eps"], L.centred, L.mean)
            if inv is None:
                gx[r] = [ctx.nan] * D
                px[r] = [ctx.nan] * D
                continue
            xh = [ci * inv for ci in c]
            gg = [gr[r, i] * gam[r, i] for i in range(D)]
            m1 = _fsum(ctx, gg) / n if L.centred else ctx.zero
            m2 = _fsum(ctx, [a * b for a, b in zip(gg, xh)]) / n
            for i in range(D):
                gx[r, i] = inv * _fsum(ctx, [gg[i], -m1, -(xh[i] * m2)])
                px[r, i] = gr[r, i] * xh[i]
        red = L.reduce_view(px)
        ggamma = L.unreduce(_obj([_fsum(ctx, list(v)) if len(v) else ctx.zero for v in red]))
        res = [L.unrows(gx), ggamma]
        if beta_in:
            rb = L.reduce_view(gr)
            res.append(L.unreduce(_obj([_fsum(ctx, list(v)) if len(v) else ctx.zero for v in rb])))
        return tuple(res)

    mp_impl(name)(fwd)
    mp_vjp(name)(vjp)


for _name in OPS:
    _bind(_name)
