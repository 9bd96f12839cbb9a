"""mp formulas for the pairwise regression losses (l1, Huber, smooth L1, log-cosh, hinge,
Poisson): the real-number definitions written once against ``ctx`` (see ``mpctx``).

Each op is a scalar term ``term(ctx, p, x, t)`` and a scalar derivative pair
``dterm(ctx, p, x, t) -> (d/dx, d/dt)``; the loss is sum(term) / meanDenom.  The
comparisons (a < delta, 1 - x t > 0) are on exact input differences/products, which the
rational context decides exactly and the interval context at enough precision.
"""
from __future__ import annotations

from . import mp_impl, mp_vjp
from .mp_losses import _count, _g, _like, _log_softmax_row, _sum
from .mpctx import scalar


def _sign(ctx, d):
    return ctx.one if d > 0 else (-ctx.one if d < 0 else ctx.zero)


def _huber(ctx, p, x, t):
    d = x - t
    a = ctx.fabs(d)
    delta = ctx.mpf(p["delta"])
    return d * d / 2 if a < delta else delta * (a - delta / 2)


def _smooth_l1(ctx, p, x, t):
    d = x - t
    a = ctx.fabs(d)
    beta = ctx.mpf(p["beta"])
    return d * d / (2 * beta) if a < beta else a - beta / 2


def _log_cosh(ctx, p, x, t):
    # log cosh d = log1p(2 sinh(d/2)^2) (cosh d = 1 + 2 sinh^2(d/2)): the same real number,
    # with no 1 + tiny for the enclosure to resolve; +-inf gives +inf
    d = x - t
    if ctx.isinf(d):
        return ctx.inf
    s = ctx.sinh(d / 2)
    return ctx.log1p(2 * s * s)


def _hinge(ctx, p, x, t):
    v = 1 - x * t
    return v if v > 0 else ctx.zero


TERMS = {
    "l1_loss": lambda ctx, p, x, t: ctx.fabs(x - t),
    "huber_loss": _huber,
    "smooth_l1_loss": _smooth_l1,
    "log_cosh_loss": _log_cosh,
    "hinge_loss": _hinge,
    "poisson_nll_loss": lambda ctx, p, x, t: ctx.exp(x) - t * x,
}


def _clamp_d(ctx, d, c):
    return d if ctx.fabs(d) < c else c * _sign(ctx, d)


def _smooth_l1_d(ctx, p, x, t):
    d, beta = x - t, ctx.mpf(p["beta"])
    v = d / beta if ctx.fabs(d) < beta else _sign(ctx, d)
    return v, -v


def _hinge_d(ctx, p, x, t):
    if 1 - x * t > 0:
        return -t, -x
    return ctx.zero, ctx.zero


DTERMS = {
    "l1_loss": lambda ctx, p, x, t: (_sign(ctx, x - t), -_sign(ctx, x - t)),
    "huber_loss": lambda ctx, p, x, t: (_clamp_d(ctx, x - t, ctx.mpf(p["delta"])),
                                        -_clamp_d(ctx, x - t, ctx.mpf(p["delta"]))),
    "smooth_l1_loss": _smooth_l1_d,
    "log_cosh_loss": lambda ctx, p, x, t: (ctx.tanh(x - t), -ctx.tanh(x - t)),
    "hinge_loss": _hinge_d,
    "poisson_nll_loss": lambda ctx, p, x, t: (ctx.exp(x) - t, -x),
}


def _register(name, term, dterm):
    @mp_impl(name)
    def formula(ctx, arrays, params):
        x, t = arrays
        terms = [term(ctx, params, a, b) for a, b in zip(x.ravel(), t.ravel())]
        return scalar(_sum(ctx, terms) / _count(x.size))

    @mp_vjp(name)
    def vjp(ctx, arrays, params, out, g):
        x, t = arrays
        k = _g(g) / _count(x.size)
        ds = [dterm(ctx, params, a, b) for a, b in zip(x.ravel(), t.ravel())]
        return _like(x, [k * d[0] for d in ds]), _like(t, [k * d[1] for d in ds])

    formula.__name__, vjp.__name__ = name, name + "_vjp"


for _name, _term in TERMS.items():
    _register(_name, _term, DTERMS[_name])


# ---- cross_entropy (ignore_index, label_smoothing) ---------------------------------------

def _ce_rows(ctx, arrays, params):
    """[(L row, target row or class id)] for the active rows, and whether ids are used."""
    import numpy as np
    x, t = arrays
    C = x.shape[-1]
    xr = x.reshape(-1, C)
    ids = t.dtype.kind in "iu"
    tr = t.reshape(-1) if ids else t.reshape(-1, C)
    out = []
    for i in range(xr.shape[0]):
        if ids and int(tr[i]) == params["ignore_index"]:
            continue
        row = list(xr[i])
        if any(ctx.isnan(v) or ctx.isinf(v) for v in row):
            return None, ids
        # L = -log_softmax by mp_losses' log1p form: lse - z_j for the max logit is
        # log1p(sum exp(z_c - m)), which lse - m at a fixed precision cancels to 0
        out.append(([-v for v in _log_softmax_row(ctx, row)] if C else [], tr[i], i))
    return out, ids


@mp_impl("cross_entropy")
def cross_entropy(ctx, arrays, params):
    rows, ids = _ce_rows(ctx, arrays, params)
    if rows is None:
        return scalar(ctx.nan)
    C = arrays[0].shape[-1]
    ls = ctx.mpf(params["label_smoothing"])
    terms = []
    for L, t, _ in rows:
        if not C:
            continue
        smooth = ls / C * ctx.fsum(L)
        main = L[int(t)] if ids else ctx.fsum(ti * li for ti, li in zip(t, L))
        terms.append((1 - ls) * main + smooth)
    return scalar(ctx.fsum(terms) / _count(len(rows)))


@mp_vjp("cross_entropy")
def cross_entropy_vjp(ctx, arrays, params, out, g):
    import numpy as np
    x, t = arrays
    C = x.shape[-1]
    rows, ids = _ce_rows(ctx, arrays, params)
    ls = ctx.mpf(params["label_smoothing"])
    k = _g(g) / _count(len(rows))
    gx = np.empty((int(np.prod(x.shape[:-1], dtype=np.int64)), C), dtype=object)
    gx[...] = ctx.zero
    gt = None if ids else np.empty(gx.shape, dtype=object)
    if gt is not None:
        gt[...] = ctx.zero
    for L, tr, i in rows:
        p = [ctx.exp(-li) for li in L]
        tp = [(1 - ls) * (1 if j == int(tr) else 0) + ls / C for j in range(C)] if ids \
            else [(1 - ls) * tj + ls / C for tj in tr]
        ts = ctx.fsum(tp)
        gx[i] = [k * (pj * ts - tj) for pj, tj in zip(p, tp)]
        if gt is not None:
            gt[i] = [k * (1 - ls) * li for li in L]
    return gx.reshape(x.shape), (None if gt is None else gt.reshape(t.shape))
