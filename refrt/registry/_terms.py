"""Condition-number budgets for VJPs that are differences of terms (registry data).

A VJP component that is the difference of terms ``a - b`` of the same sign cannot be
computed to a few ulps of its own value when the exact ``a`` and ``b`` nearly cancel:
the problem itself is ill-conditioned there (relative condition number
``(|a| + |b|) / |a - b|``), and no formula in the working precision does better than the
rounding of its terms.  For such ops the registry declares ``vjp_terms(arrays, params,
g)``: per input, the magnitude ``|a| + |b|`` of the terms each component is a
difference of, in float64 (an estimate is enough for a budget).  The tolerance model
(``refrt.autodiff.vjp_tolerance``) then accepts a component when

    |got - want| <= ulps * eps * terms        (ulps: the op's VJP budget)

i.e. ``ulps`` ulps of the terms: the error of a backward-stable last step, ``ulps * kappa``
ulps of the result.  Where the terms do not cancel (one-hot targets, a dominant logit,
``g`` far from ``p * sum(g)``) this is the plain ulp budget, because the kernels use
the stable forms (refrt/_kernels/losses.pyx, softmax.pyx): there is no absolute floor.
Inputs are the prepared arrays (float32/float64; integer class ids for one-hot
targets); ``g`` is the upstream cotangent.
"""
from __future__ import annotations

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _rows_last(x):
    x = _f64(x)
    return x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)


def _softmax(z):
    """softmax and (lse - m, z - m) along the last axis; rows with a non-finite max give
    NaN (the budget is then not used: NaN components must match exactly)."""
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        d = z - m
        e = np.exp(d)
        s = e.sum(axis=-1, keepdims=True)
        return e / s, np.log(s), d


def _k(g, rows):
    return abs(float(np.asarray(g, dtype=np.float64).reshape(-1)[0])) / max(rows, 1)


def _targets(t, shape):
    t = np.asarray(t)
    if t.dtype.kind in "iu":                 # class ids -> one-hot rows
        oh = np.zeros(shape)
        if t.size:
            np.put_along_axis(oh, t.reshape(-1, 1), 1.0, axis=-1)
        return oh
    return _rows_last(t)


def cross_entropy_logits(arrays, params, g):
    z = _rows_last(arrays[0])
    t = _targets(arrays[1], z.shape)
    k = _k(g, z.shape[0])
    p, lse_m, d = _softmax(z)
    st = t.sum(axis=-1, keepdims=True)
    with np.errstate(over="ignore"):                    # a budget of inf is a budget
        dz = k * (p * np.abs(st) + np.abs(t))          # p_j sum(t) - t_j
        dt = k * (np.abs(lse_m) + np.abs(d))           # (lse - m) - (z_j - m)
    shape = np.shape(arrays[0])
    return dz.reshape(shape), (dt.reshape(shape) if np.asarray(arrays[1]).dtype.kind == "f"
                               else None)


def bce_with_logits(arrays, params, g):
    x, t = _f64(arrays[0]), _f64(arrays[1])
    k = abs(float(np.asarray(g, dtype=np.float64).reshape(-1)[0])) / max(x.size, 1)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        # x >= 0: ((1 - t) - t e) / (1 + e); x < 0: (e (1 - t) - t) / (1 + e)
        terms = np.where(x >= 0, np.abs(1 - t) + np.abs(t) * e, e * np.abs(1 - t) + np.abs(t))
        dx = k * terms / (1 + e)
    return dx, k * np.abs(x)


def softmax(arrays, params, g):
    """y_i (g_i - s), s = sum_j y_j g_j."""
    axis = params.get("axis", -1)
    x = np.moveaxis(_f64(arrays[0]), axis, -1)
    gg = np.moveaxis(_f64(g), axis, -1)
    y, _, _ = _softmax(x)
    s = (y * gg).sum(axis=-1, keepdims=True)
    return (np.moveaxis(y * (np.abs(gg) + np.abs(s)), -1, axis),)


def log_softmax(arrays, params, g):
    """g_i - p_i sum(g)."""
    axis = params.get("axis", -1)
    x = np.moveaxis(_f64(arrays[0]), axis, -1)
    gg = np.moveaxis(_f64(g), axis, -1)
    p, _, _ = _softmax(x)
    G = gg.sum(axis=-1, keepdims=True)
    return (np.moveaxis(np.abs(gg) + p * np.abs(G), -1, axis),)


def kl_div(arrays, params, g):
    """d/dt = k (log t + 1 - lp); d/dlp = -k t (no cancellation)."""
    lp, t = _f64(arrays[0]), _f64(arrays[1])
    k = _k(g, _rows_last(lp).shape[0])
    with np.errstate(all="ignore"):
        lt = np.where(t > 0, np.abs(np.log(np.where(t > 0, t, 1.0))) + 1, 0.0)
    return k * np.abs(t), k * (lt + np.abs(lp))


def binary_cross_entropy(arrays, params, g):
    """d/dp = k (p - t) / (p (1 - p)) (one rounding of p - t: no cancellation);
    d/dt = k (log(1 - p') - log p')."""
    p, t = _f64(arrays[0]), _f64(arrays[1])
    eps = float(params.get("eps", 1e-6))
    k = abs(float(np.asarray(g, dtype=np.float64).reshape(-1)[0])) / max(p.size, 1)
    pc = np.clip(p, eps, 1 - eps)
    with np.errstate(all="ignore"):
        dp = np.zeros_like(p)          # no cancellation: the plain ulp budget
        dt = k * (np.abs(np.log1p(-pc)) + np.abs(np.log(pc)))
    return dp, dt


def poisson_nll_loss(arrays, params, g):
    """log_input: exp(x) - t (cancels where exp(x) ~ t); target: -x (one term, exact)."""
    x, t = _f64(arrays[0]), _f64(arrays[1])
    k = abs(float(np.asarray(g, dtype=np.float64).reshape(-1)[0])) / max(x.size, 1)
    with np.errstate(all="ignore"):
        return k * (np.exp(x) + np.abs(t)), None


def cross_entropy(arrays, params, g):
    """F.cross_entropy: the cross_entropy_logits terms for the smoothed targets
    t' = (1 - ls) t + ls / C, k = g / (active rows); the target's cotangent (a sum of
    (lse - m) - (z_j - m)) as there."""
    z = _rows_last(arrays[0])
    C = z.shape[-1]
    ls = float(params.get("label_smoothing", 0.0))
    t_raw = np.asarray(arrays[1])
    if t_raw.dtype.kind in "iu":
        ids = t_raw.reshape(-1)
        active = ids != params.get("ignore_index", -100)
        oh = np.zeros(z.shape)
        if active.any():
            oh[np.flatnonzero(active), ids[active]] = 1.0
        t = (1 - ls) * oh + np.where(active[:, None], ls / max(C, 1), 0.0)
        rows = int(active.sum())
    else:
        t = (1 - ls) * _rows_last(t_raw) + ls / max(C, 1)
        rows = z.shape[0]
    k = _k(g, rows)
    p, lse_m, d = _softmax(z)
    st = t.sum(axis=-1, keepdims=True)
    dz = k * (p * np.abs(st) + np.abs(t))
    shape = np.shape(arrays[0])
    if t_raw.dtype.kind != "f":
        return dz.reshape(shape), None
    dt = _k(g, z.shape[0]) * (1 - ls) * (np.abs(lse_m) + np.abs(d))
    return dz.reshape(shape), dt.reshape(shape)


def _scaled_norm(v):
    """|v| along the last axis without overflow/underflow (scaled by max |v|)."""
    s = np.max(np.abs(v), axis=-1, keepdims=True)
    s = np.where((s > 0) & np.isfinite(s), s, 1.0)
    return s[..., 0] * np.sqrt(np.sum((v / s) ** 2, axis=-1))


def _cosine_terms(x, y, eps, g):
    """rows (R, n): |g| (|y_j| / (Nx Ny) + [|x| > eps] |C| |x_j| / |x|^2) for d/dx and
    the symmetric one for d/dy: dC/dx_j = y_j / (Nx Ny) - C x_j / |x|^2."""
    with np.errstate(all="ignore"):
        nx, ny = _scaled_norm(x), _scaled_norm(y)
        Nx, Ny = np.maximum(nx, eps), np.maximum(ny, eps)
        sx = np.max(np.abs(x), axis=-1)
        sy = np.max(np.abs(y), axis=-1)
        sx, sy = np.where(sx > 0, sx, 1.0), np.where(sy > 0, sy, 1.0)
        C = np.sum((x / sx[:, None]) * (y / sy[:, None]), axis=-1) * (sx / Nx) * (sy / Ny)
        g = np.abs(g)[:, None]
        ax = np.where((nx > eps)[:, None], np.abs(C)[:, None] * (np.abs(x) / nx[:, None]) / nx[:, None], 0.0)
        ay = np.where((ny > eps)[:, None], np.abs(C)[:, None] * (np.abs(y) / ny[:, None]) / ny[:, None], 0.0)
        dx = g * ((np.abs(y) / Ny[:, None]) / Nx[:, None] + ax)
        dy = g * ((np.abs(x) / Nx[:, None]) / Ny[:, None] + ay)
    return dx, dy


def cosine_similarity(arrays, params, g):
    x, y = np.broadcast_arrays(_f64(arrays[0]), _f64(arrays[1]))
    ax = params.get("axis", -1)
    xm, ym = np.moveaxis(x, ax, -1), np.moveaxis(y, ax, -1)
    shp = xm.shape
    gr = np.broadcast_to(_f64(g), shp[:-1]).reshape(-1)
    dx, dy = _cosine_terms(xm.reshape(-1, shp[-1]), ym.reshape(-1, shp[-1]),
                           float(params["eps"]), gr)
    back = lambda d: np.moveaxis(d.reshape(shp), -1, ax)
    return back(dx), back(dy)


def cosine_similarity_loss(arrays, params, g):
    x, y = _f64(arrays[0]), _f64(arrays[1])
    gr = np.asarray([float(np.asarray(g, dtype=np.float64).reshape(-1)[0])])
    dx, dy = _cosine_terms(x.reshape(1, -1), y.reshape(1, -1), float(params["eps"]), gr)
    return dx.reshape(x.shape), dy.reshape(y.shape)
