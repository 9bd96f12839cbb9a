"""mp formulas for the norm2 ops: the real-number definitions written once against ``ctx``.

Each normalised set (``norm2_layout``) is a row: c = x - mean(x) (centred ops) or x,
v = sum(c^2) / D (or / 1 for weight_norm), y = c / sqrt(v + eps) * gamma + beta.  A row
with an inf or NaN is NaN (as the kernels: mean = +-inf or NaN); v + eps = 0 (eps = 0 and
a constant row) gives NaN (0 / 0).  Sums are exact before one rounding (``_fsum``).
"""
from __future__ import annotations

from contextlib import contextmanager

import mpmath
import numpy as np

from . import mp_impl, mp_vjp
from .mp_reductions import _fsum
from ..registry._norm2_layout import HAS_BETA, OPS, layout


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


def _span(ctx, *rows):
    """Exponent span (bits) of the nonzero finite values of the rows."""
    mags = [ctx.mag(v) for r in rows for v in r if ctx.isfinite(v) and v != 0]
    return (max(mags) - min(mags)) if mags else 0


@contextmanager
def _row_prec(ctx, *rows, factor=4):
    """For an mpmath context, a private workprec of prec + factor * span + 64 bits for one
    row's formula: the VJP's gg_i - mean(gg) - xhat_i mean(gg xhat) and the forward's
    xhat gamma + beta cancel terms that are products of up to four inputs, so a row whose
    entries span 2000 binades (the wide family) needs ~8000 bits, not 256, for the
    difference to be right; results are rounded back to prec by the caller (+v).  Other
    contexts (intervals) carry their own guarantee."""
    if isinstance(ctx, mpmath.ctx_mp.MPContext):
        need = ctx.prec + factor * _span(ctx, *rows) + 64
        if need > ctx.prec:
            with ctx.workprec(need):
                yield
            return
    yield


def _obj(rows):
    return np.array(rows, dtype=object)


def _vjp_row(ctx, row, gam, gr, eps, L, n):
    D = len(row)
    c, inv = (None, None) if _bad(ctx, row) else _row_stats(ctx, row, eps, L.centred, L.mean)
    if inv is None:
        return [ctx.nan] * D, [ctx.nan] * D
    xh = [ci * inv for ci in c]
    gg = [gr[i] * gam[i] for i in range(D)]
    m1 = _fsum(ctx, gg) / n if L.centred else ctx.zero
    m2 = _fsum(ctx, [a * b for a, b in zip(gg, xh)]) / n
    return ([inv * _fsum(ctx, [gg[i], -m1, -(xh[i] * m2)]) for i in range(D)],
            [gr[i] * xh[i] for i in range(D)])


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
            brow = list(br[r]) if beta_in else []
            with _row_prec(ctx, row, list(gr[r]), brow, [ctx.mpf(params["eps"])]):
                c, inv = _row_stats(ctx, row, params["eps"], L.centred, L.mean)
                vals = [ctx.nan if inv is None else
                        ci * inv * gr[r, i] + (br[r, i] if beta_in else ctx.zero)
                        for i, ci in enumerate(c)]
            out[r] = [+v for v in vals]
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
            with _row_prec(ctx, row, list(gam[r]), list(gr[r]), [ctx.mpf(params["eps"])]):
                grow, prow = _vjp_row(ctx, row, gam[r], gr[r], params["eps"], L, n)
            gx[r] = [+v for v in grow]
            px[r] = prow                   # unrounded: summed exactly below
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
