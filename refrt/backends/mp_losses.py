"""mp formulas for the losses and normalisation: direct real-number definitions.

Written once against ``ctx`` (see ``mpctx``).  Decisions (the probability clip, zero
targets, zero divisors) compare input values only, exactly; a term t * v with t == 0
is 0 (TorchLean's 0 * log 0 = 0), a limit gives +-inf, an undefined value NaN.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import mp_impl, mp_vjp
from .mpctx import scalar


def _count(n):
    return n if n > 0 else 1


def _rows(x):
    """The mean's denominator: the number of last-axis slices, at least 1 (an empty batch
    (0, C) gives a loss of 0, as the float kernels' max(m, 1))."""
    return max(int(np.prod(x.shape[:-1], dtype=np.int64)), 1) if x.ndim > 1 else 1


def _exact(v):
    """An input value as an exact rational (inputs and eps are binary floats); +-inf and
    NaN stay floats (they compare correctly with Fractions; Fraction(inf) raises)."""
    f = float(v)
    return Fraction(f) if f == f and abs(f) != float("inf") else f


def _isnan(ctx, v):
    return bool(ctx.isnan(v))


def _log(ctx, v):
    """log on [0, inf]: log 0 = -inf, negative or NaN gives NaN (never complex)."""
    if _isnan(ctx, v) or v < 0:
        return ctx.nan
    if v == 0:
        return ctx.ninf
    return ctx.log(v)


def _times(ctx, t, v):
    """t * v with the zero-coefficient convention (0 * +-inf = 0)."""
    if t == 0 and not _isnan(ctx, t):
        return ctx.zero
    return t * v


def _sum(ctx, terms):
    """Sum with IEEE-style infinities: +inf + -inf is NaN, never an exception."""
    terms = list(terms)
    if any(_isnan(ctx, v) for v in terms):
        return ctx.nan
    pos = any(v == ctx.inf for v in terms)
    neg = any(v == ctx.ninf for v in terms)
    if pos and neg:
        return ctx.nan
    if pos or neg:
        return ctx.inf if pos else ctx.ninf
    return ctx.fsum(terms) if terms else ctx.zero


def _target_rows(x, t):
    """Yield (score row, target row) pairs over the last-axis slices; integer class ids
    become one-hot rows (of the ctx's 0 and 1 via Python ints)."""
    C = x.shape[-1]
    if C == 0 or x.size == 0:          # no terms (N, 0) or no rows (0, C): nothing to yield
        return
    xs = x.reshape(-1, C)
    if t.dtype.kind in "iu":
        ids = t.reshape(-1)
        for r in range(xs.shape[0]):
            yield list(xs[r]), [1 if j == int(ids[r]) else 0 for j in range(C)]
    else:
        ts = t.reshape(-1, C)
        for r in range(xs.shape[0]):
            yield list(xs[r]), list(ts[r])


def _log_softmax_row(ctx, z):
    """z_j - log(sum exp z), as (z_j - m) - log1p(sum_{j != a} exp(z_j - m)) with m = z_a
    the first max: at a fixed precision, log(e^m + tiny) - m cancels to 0 once the other
    terms are below 2^-prec e^m (a dominant logit 5000 above the rest), while log1p
    keeps them; exact in the reals either way.  Non-finite rows use the direct form."""
    if any(_isnan(ctx, v) for v in z):
        return [ctx.nan] * len(z)
    finite = [v for v in z if ctx.isfinite(v)]
    if z and len(finite) == len(z):
        a = max(range(len(z)), key=lambda j: (z[j], -j))
        m = z[a]
        rest = _sum(ctx, [ctx.exp(v - m) for j, v in enumerate(z) if j != a]) if len(z) > 1 else ctx.zero
        l1 = ctx.log1p(rest)
        return [(v - m) - l1 for v in z]
    lse = _log(ctx, _sum(ctx, [ctx.exp(v) for v in z]))
    out = []
    for v in z:
        if lse == ctx.inf and v == ctx.inf or lse == ctx.ninf:
            out.append(ctx.nan)
        elif lse == ctx.inf:
            out.append(ctx.ninf)
        else:
            out.append(v - lse)
    return out


def _clip_logs(ctx, p, eps):
    """(log p', log(1 - p')) for p' = clip(p, eps, 1 - eps) with the exact real bound:
    at the upper bound log p' = log1p(-eps) and log(1 - p') = log(eps)."""
    if _isnan(ctx, p):
        return ctx.nan, ctx.nan
    lo = p if _exact(p) > _exact(eps) else ctx.mpf(eps)
    if _exact(lo) + _exact(eps) < 1:
        return _log(ctx, lo), (ctx.log1p(-lo) if _exact(lo) < 1 else _log(ctx, 1 - lo))
    return ctx.log1p(-ctx.mpf(eps)), _log(ctx, ctx.mpf(eps))


def _inside(p, eps):
    return _exact(p) > _exact(eps) and _exact(p) + _exact(eps) < 1


@mp_impl("mse_loss")
def mse_loss(ctx, arrays, params):
    p, t = arrays
    terms = [(a - b) * (a - b) for a, b in zip(p.ravel(), t.ravel())]
    return scalar(_sum(ctx, terms) / _count(p.size))


@mp_impl("bce_with_logits")
def bce_with_logits(ctx, arrays, params):
    x, t = arrays
    terms = []
    for xi, ti in zip(x.ravel(), t.ravel()):
        # softplus(x) - t x as (1 - t) x + log(1 + e^-x) for x > 0, -t x + log(1 + e^x)
        # otherwise: the same real number, written so that +-inf gives its limit.
        if _isnan(ctx, xi) or _isnan(ctx, ti):
            terms.append(ctx.nan)
            continue
        if xi > 0:
            terms += [_times(ctx, 1 - ti, xi), ctx.log1p(ctx.exp(-xi))]
        else:
            terms += [_times(ctx, -ti, xi), ctx.log1p(ctx.exp(xi))]
    return scalar(_sum(ctx, terms) / _count(x.size))


@mp_impl("binary_cross_entropy")
def binary_cross_entropy(ctx, arrays, params):
    p, t = arrays
    terms = []
    for pi, ti in zip(p.ravel(), t.ravel()):
        lp, l1m = _clip_logs(ctx, pi, params["eps"])
        terms += [_times(ctx, ti, -lp), _times(ctx, 1 - ti, -l1m)]
    return scalar(_sum(ctx, terms) / _count(p.size))


@mp_impl("cross_entropy_logits")
def cross_entropy_logits(ctx, arrays, params):
    x, t = arrays
    terms = []
    for z, tr in _target_rows(x, t):
        terms += [_times(ctx, tj, -v) for tj, v in zip(tr, _log_softmax_row(ctx, z))]
    return scalar(_sum(ctx, terms) / _rows(x))


@mp_impl("cross_entropy_probs")
def cross_entropy_probs(ctx, arrays, params):
    x, t = arrays
    terms = []
    for pr, tr in _target_rows(x, t):
        terms += [_times(ctx, tj, -_clip_logs(ctx, pj, params["eps"])[0])
                  for tj, pj in zip(tr, pr)]
    return scalar(_sum(ctx, terms) / _rows(x))


@mp_impl("nll_loss")
def nll_loss(ctx, arrays, params):
    x, t = arrays
    terms = []
    for lr, tr in _target_rows(x, t):
        terms += [_times(ctx, tj, -lj) for tj, lj in zip(tr, lr)]
    return scalar(_sum(ctx, terms) / _rows(x))


@mp_impl("kl_div")
def kl_div(ctx, arrays, params):
    x, t = arrays
    terms = []
    for lr, tr in _target_rows(x, t):
        # xlogy(t, t) - t lp = t (log t - lp), and 0 for t = 0 (also against lp = -inf)
        terms += [_times(ctx, tj, _sum(ctx, [_log(ctx, tj), -lj])) for tj, lj in zip(tr, lr)]
    return scalar(_sum(ctx, terms) / _rows(x))


# ---------------------------------------------------------------- VJPs

def _like(a, values):
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = values if values else []
    return out


def _g(g):
    return np.asarray(g, dtype=object).reshape(-1)[0]


@mp_vjp("mse_loss")
def mse_loss_vjp(ctx, arrays, params, out, g):
    p, t = arrays
    k = 2 * _g(g) / _count(p.size)
    gp = [k * (a - b) for a, b in zip(p.ravel(), t.ravel())]
    return _like(p, gp), _like(t, [-v for v in gp])


@mp_vjp("bce_with_logits")
def bce_with_logits_vjp(ctx, arrays, params, out, g):
    x, t = arrays
    k = _g(g) / _count(x.size)
    gx = [k * (1 / (1 + ctx.exp(-xi)) - ti) for xi, ti in zip(x.ravel(), t.ravel())]
    return _like(x, gx), _like(t, [-k * xi for xi in x.ravel()])


@mp_vjp("binary_cross_entropy")
def binary_cross_entropy_vjp(ctx, arrays, params, out, g):
    p, t = arrays
    k = _g(g) / _count(p.size)
    eps = params["eps"]
    gp, gt = [], []
    for pi, ti in zip(p.ravel(), t.ravel()):
        gp.append(k * (pi - ti) / (pi * (1 - pi)) if _inside(pi, eps) else ctx.zero)
        lp, l1m = _clip_logs(ctx, pi, eps)
        gt.append(k * _sum(ctx, [l1m, -lp]))
    return _like(p, gp), _like(t, gt)


def _row_vjp(ctx, x, t, g, score_grad, target_grad):
    k = _g(g) / _rows(x)
    gx, gt = [], []
    for sr, tr in _target_rows(x, t):
        gx += score_grad(sr, tr, k)
        gt += target_grad(sr, tr, k)
    return _like(x, gx), (None if t.dtype.kind in "iu" else _like(t, gt))


@mp_vjp("cross_entropy_logits")
def cross_entropy_logits_vjp(ctx, arrays, params, out, g):
    def dz(z, tr, k):
        # a +inf logit (or NaN, or an all -inf row): softmax is undefined, so is d/dz
        # (the softmax family's convention); -inf logits are exact zeros of softmax
        if any(v == ctx.inf or _isnan(ctx, v) for v in z) or all(v == ctx.ninf for v in z):
            return [ctx.nan] * len(z)
        e = [ctx.exp(v) for v in z]
        s, st = ctx.fsum(e), ctx.fsum([ctx.mpf(v) for v in tr])
        return [k * (ej / s * st - tj) for ej, tj in zip(e, tr)]

    def dt(z, tr, k):
        return [-k * v for v in _log_softmax_row(ctx, z)]
    return _row_vjp(ctx, *arrays, g, dz, dt)


@mp_vjp("cross_entropy_probs")
def cross_entropy_probs_vjp(ctx, arrays, params, out, g):
    eps = params["eps"]

    def dp(pr, tr, k):
        return [k * (-tj / pj) if _inside(pj, eps) else ctx.zero for pj, tj in zip(pr, tr)]

    def dt(pr, tr, k):
        return [-k * _clip_logs(ctx, pj, eps)[0] for pj in pr]
    return _row_vjp(ctx, *arrays, g, dp, dt)


@mp_vjp("nll_loss")
def nll_loss_vjp(ctx, arrays, params, out, g):
    return _row_vjp(ctx, *arrays, g, lambda lr, tr, k: [-k * tj for tj in tr],
                    lambda lr, tr, k: [-k * lj for lj in lr])


@mp_vjp("kl_div")
def kl_div_vjp(ctx, arrays, params, out, g):
    def dt(lr, tr, k):
        # log t + 1 - lp; TorchLean's real node at t = 0 (log 0 = 0, t t^-1 = 0): -lp
        return [k * (ctx.log(tj) + 1 - lj) if tj != 0 else -k * lj for tj, lj in zip(tr, lr)]
    return _row_vjp(ctx, *arrays, g, lambda lr, tr, k: [-k * tj for tj in tr], dt)


# ---------------------------------------------------------------- normalisation

def _bn_planes(x, channel_axis):
    """x as (N, C, S) object array: channel_axis=0 is (C, spatial...) with N = 1."""
    n = x.shape[0] if channel_axis == 1 else 1
    c = x.shape[channel_axis]
    return x.reshape(n, c, -1)


def _bn_std(ctx, var, eps):
    """sqrt(max(max(var, 0) + eps, 0)); the clamp decisions compare inputs exactly."""
    if _isnan(ctx, var):
        return ctx.nan
    v = var if var > 0 else ctx.zero
    if _exact(v) + _exact(eps) <= 0:
        return ctx.zero
    return ctx.sqrt(v + ctx.mpf(eps))


def _div(ctx, a, b):
    """a / b with b >= 0; division by zero gives +-inf (NaN for 0 / 0)."""
    if b == 0:
        if _isnan(ctx, a) or a == 0:
            return ctx.nan
        return ctx.inf if a > 0 else ctx.ninf
    return a / b


@mp_impl("batch_norm_inference")
def batch_norm_inference(ctx, arrays, params):
    x, mean, var, gamma, beta = arrays
    planes = _bn_planes(x, params["channel_axis"])
    out = np.empty(planes.shape, dtype=object)
    for c in range(planes.shape[1]):
        std = _bn_std(ctx, var[c], params["eps"])
        for n in range(planes.shape[0]):
            for s in range(planes.shape[2]):
                out[n, c, s] = _div(ctx, planes[n, c, s] - mean[c], std) * gamma[c] + beta[c]
    return out.reshape(x.shape)


def _ln_row(ctx, row, eps):
    """(x_hat list, 1/std) of one row: two-pass mean and variance, eps inside the sqrt."""
    D = len(row)
    mean = ctx.fsum(row) / D
    dev = [v - mean for v in row]
    var = ctx.fsum([d * d for d in dev]) / D
    if all(_exact(v) == _exact(row[0]) for v in row) and eps == 0:
        return [ctx.nan] * D, ctx.nan          # var + eps = 0: 0 / 0
    inv = 1 / ctx.sqrt(var + ctx.mpf(eps))
    return [d * inv for d in dev], inv


@mp_impl("layer_norm")
def layer_norm(ctx, arrays, params):
    x, gamma, beta = arrays
    D = x.shape[-1]
    rows = x.reshape(-1, D) if D else x.reshape(0, 0)
    out = np.empty(rows.shape, dtype=object)
    for r in range(rows.shape[0]):
        if any(_isnan(ctx, v) or ctx.isinf(v) for v in rows[r]):
            out[r] = [ctx.nan] * D      # inf - mean with mean = +-inf (or NaN)
            continue
        xhat, _ = _ln_row(ctx, list(rows[r]), params["eps"])
        out[r] = [xh * gamma[i] + beta[i] for i, xh in enumerate(xhat)]
    return out.reshape(x.shape)


@mp_vjp("batch_norm_inference")
def batch_norm_inference_vjp(ctx, arrays, params, out, g):
    x, mean, var, gamma, beta = arrays
    planes = _bn_planes(x, params["channel_axis"])
    gp = np.asarray(g, dtype=object).reshape(planes.shape)
    gx = np.empty(planes.shape, dtype=object)
    C = planes.shape[1]
    gmean, gvar, ggamma, gbeta = ([ctx.zero] * C for _ in range(4))
    gmean, gvar, ggamma, gbeta = list(gmean), list(gvar), list(ggamma), list(gbeta)
    for c in range(C):
        std = _bn_std(ctx, var[c], params["eps"])
        scale = gamma[c] / std
        sg, sgx = [], []
        for n in range(planes.shape[0]):
            for s in range(planes.shape[2]):
                gi = gp[n, c, s]
                xh = (planes[n, c, s] - mean[c]) / std
                gx[n, c, s] = gi * scale
                sg.append(gi)
                sgx.append(gi * xh)
        gbeta[c] = ctx.fsum(sg)
        ggamma[c] = ctx.fsum(sgx)
        gmean[c] = -gbeta[c] * scale
        # d/dvar of (x - mu) gamma v^(-1/2) = -1/2 x_hat gamma / v (var >= 0 side)
        gvar[c] = -ggamma[c] * scale / (2 * std) if var[c] >= 0 else ctx.zero
    as_arr = lambda v: np.array(v, dtype=object)
    return (gx.reshape(x.shape), as_arr(gmean), as_arr(gvar), as_arr(ggamma), as_arr(gbeta))


@mp_vjp("layer_norm")
def layer_norm_vjp(ctx, arrays, params, out, g):
    x, gamma, beta = arrays
    D = x.shape[-1]
    rows = x.reshape(-1, D)
    gr = np.asarray(g, dtype=object).reshape(rows.shape)
    gx = np.empty(rows.shape, dtype=object)
    ggamma = [[] for _ in range(D)]
    gbeta = [[] for _ in range(D)]
    for r in range(rows.shape[0]):
        xhat, inv = _ln_row(ctx, list(rows[r]), params["eps"])
        gg = [gr[r, i] * gamma[i] for i in range(D)]
        m1 = ctx.fsum(gg) / D
        m2 = ctx.fsum([a * b for a, b in zip(gg, xhat)]) / D
        for i in range(D):
            gx[r, i] = inv * (gg[i] - m1 - xhat[i] * m2)
            ggamma[i].append(gr[r, i] * xhat[i])
            gbeta[i].append(gr[r, i])
    return (gx.reshape(x.shape), np.array([ctx.fsum(v) for v in ggamma], dtype=object),
            np.array([ctx.fsum(v) for v in gbeta], dtype=object))
