"""Abstract interval transformers for the forward-mode (JVP) ops, as data merged into
``transfer.INTERVAL``.  Same contract as there: real-number bounds in float64 over the
input box, ``(lo, hi, nan)``; the driver widens them by the op's tolerance.

* log_softmax_jvp: out_i = dx_i - S with S = sum_j exp(y_j) dx_j; exp is increasing and
  positive, so each term lies in the product of [exp(y_lo), exp(y_hi)] and the dx box, S
  in the sum of those (dx_i counted twice: sound, not tight).
* layer_norm_jvp / batch_norm2d_jvp: dxhat = s (P - xhat xhat^T / D) dx with s <=
  1/sqrt(eps) and P - xhat xhat^T / D positive semidefinite of norm <= 1 (mean(xhat^2) =
  var / (var + eps) <= 1), so |dxhat_i| <= ||dx_row||_2 / sqrt(eps); |xhat_i| <=
  sqrt(D - 1) (Samuelson); out = dxhat gamma + xhat dgamma + dbeta by interval products.
  eps = 0 gives no bound (a constant row is 0/0).
* scaled_dot_product_attention_jvp: out = sum_j A_j (dS_j - x) v_j + sum_j A_j dv_j with
  A a convex combination and x = sum_j A_j dS_j.  The second sum lies in the hull of dv's
  rows (SDPA's own bound, 0 added for a row with no allowed key); since sum_j A_j (dS_j -
  x) = 0, the first equals sum_j A_j (dS_j - x)(v_j - c) for c the centre of v's row box,
  so |first| <= (sum_j A_j |dS_j - x|) R <= 2 M R with M = max_j |dS_j| <= |scale|
  max_j sum_t (|dq_t| |k_jt| + |q_t| |dk_jt|) and R = half the width of v's hull.
* max_pool2d_jvp: the output is one dx in its window: between the window's least lower and
  greatest upper bound of dx.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry._norm2_layout import layout
from .transfer import _mul_bounds

INF = math.inf


def _unbounded(box):
    return box.nan | ~np.isfinite(box.lo) | ~np.isfinite(box.hi)


def _lsm_jvp(ins, p, shape):
    y, dx = ins
    ax = p.get("axis", -1)
    if y.lo.ndim == 0:
        return np.zeros(()), np.zeros(()), np.asarray(y.nan | dx.nan)
    with np.errstate(all="ignore"):
        el, eh = np.exp(y.lo), np.exp(y.hi)
        lo, hi, n = _mul_bounds(el, eh, dx.lo, dx.hi)
        slo = np.sum(lo, axis=ax, keepdims=True)
        shi = np.sum(hi, axis=ax, keepdims=True)
        olo, ohi = dx.lo - shi, dx.hi - slo
    bad = (_unbounded(y) | _unbounded(dx) | n | ~np.isfinite(eh)).any(axis=ax, keepdims=True)
    nan = np.broadcast_to(bad, shape) | np.isnan(olo) | np.isnan(ohi)
    return (np.where(np.isnan(olo), -INF, olo), np.where(np.isnan(ohi), INF, ohi),
            np.asarray(nan))


def _norm_jvp(name):
    def transfer(ins, p, shape):
        x, g, dx, dg, db = ins
        if name == "layer_norm_jvp":
            D = x.lo.shape[-1]
            R = int(np.prod(x.lo.shape[:-1], dtype=np.int64))
            rows = lambda a: np.asarray(a).reshape(R, D)                            # noqa: E731
            unrows = lambda a: np.asarray(a).reshape(shape)                         # noqa: E731
            expand = lambda a: np.broadcast_to(np.asarray(a).reshape(1, D), (R, D))  # noqa: E731
        else:
            L = layout("batch_norm", x.lo.shape, p)
            rows, unrows, expand = L.rows, L.unrows, L.expand
        R, D = np.asarray(rows(x.lo)).shape
        eps = float(p["eps"])
        with np.errstate(all="ignore"):
            m = np.maximum(np.abs(np.asarray(rows(dx.lo))), np.abs(np.asarray(rows(dx.hi))))
            B1 = np.sqrt(np.sum(m * m, axis=1, keepdims=True)) / math.sqrt(eps) if eps > 0 \
                else np.full((R, 1), INF)
            B1 = B1 * (1 + 2.0 ** -20) + 1e-300
            B = math.sqrt(max(D - 1, 0)) * (1 + 2.0 ** -20) + 2.0 ** -20
            lo1, hi1, n1 = _mul_bounds(np.broadcast_to(-B1, (R, D)), np.broadcast_to(B1, (R, D)),
                                       np.asarray(expand(g.lo)), np.asarray(expand(g.hi)))
            lo2, hi2, n2 = _mul_bounds(np.full((R, D), -B), np.full((R, D), B),
                                       np.asarray(expand(dg.lo)), np.asarray(expand(dg.hi)))
            lo = lo1 + lo2 + np.asarray(expand(db.lo))
            hi = hi1 + hi2 + np.asarray(expand(db.hi))
        rowbad = (np.asarray(rows(_unbounded(x))) | np.asarray(rows(_unbounded(dx)))).any(
            axis=1, keepdims=True) | ~np.isfinite(B1)
        n = (n1 | n2 | rowbad | np.asarray(expand(_unbounded(g))) | np.asarray(expand(
            _unbounded(dg))) | np.asarray(expand(_unbounded(db))) | np.isnan(lo) | np.isnan(hi))
        lo = np.where(np.isnan(lo), -INF, lo)
        hi = np.where(np.isnan(hi), INF, hi)
        return (np.asarray(unrows(lo)), np.asarray(unrows(hi)),
                np.asarray(unrows(np.broadcast_to(n, (R, D)))))
    return transfer


def _pool_jvp(ins, p, shape):
    from .. import ops
    x, dx = ins
    q = {k: p[k] for k in ("kernel_size", "stride", "padding")}
    with np.errstate(all="ignore"):
        lo = -np.asarray(ops.evaluate("max_pool2d", -np.asarray(dx.lo, np.float64), **q),
                         np.float64).reshape(shape)
        hi = np.asarray(ops.evaluate("max_pool2d", np.asarray(dx.hi, np.float64), **q),
                        np.float64).reshape(shape)
        bad = (dx.nan | np.isinf(dx.lo) | np.isinf(dx.hi)).astype(np.float64)
        nan = np.asarray(ops.evaluate("max_pool2d", bad, **q)).reshape(shape) > 0
    return np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi), nan


def _smooth_jvp(ins, p, shape):
    """A convex combination of the window's tangents, padded cells' 0 among them: within
    [min(window dx_lo, 0), max(window dx_hi, 0)] (0 always included: sound, looser)."""
    lo, hi, nan = _pool_jvp(ins, p, shape)
    x = ins[0]
    from .. import ops
    q = {k: p[k] for k in ("kernel_size", "stride", "padding")}
    bad = (x.nan | np.isinf(x.lo) | np.isinf(x.hi)).astype(np.float64)
    nan = nan | (np.asarray(ops.evaluate("max_pool2d", bad, **q)).reshape(shape) > 0)
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0), nan


def _sdpa_jvp(ins, p, shape):
    from .transfer_attention import _sdpa
    q, k, v, dq, dk, dv = ins
    lo2, hi2, nan = _sdpa((q, k, dv), p, shape)
    E, S = q.lo.shape[-1], k.lo.shape[-2]
    mag = lambda b: np.maximum(np.abs(b.lo), np.abs(b.hi))              # noqa: E731
    sc = p.get("scale")
    sc = abs(float(sc)) if sc is not None else (1.0 if E == 0 else 1 / math.sqrt(E))
    with np.errstate(all="ignore"):
        if S:
            M = (np.einsum("...it,...jt->...ij", mag(dq), mag(k))
                 + np.einsum("...it,...jt->...ij", mag(q), mag(dk))).max(axis=-1, keepdims=True)
            R = (v.hi.max(axis=-2, keepdims=True) - v.lo.min(axis=-2, keepdims=True)) / 2
        else:
            M = np.zeros(q.lo.shape[:-1] + (1,))
            R = np.zeros(q.lo.shape[:-2] + (1, v.lo.shape[-1]))
        B = 2 * sc * (1 + 2.0 ** -20) * M * R + 1e-300
        lo, hi = lo2 - B, hi2 + B
    lead = q.lo.shape[:-2]
    bad = np.zeros(lead, bool)
    for box in ins:
        u = _unbounded(box)
        bad = bad | (u.reshape(lead + (-1,)).any(axis=-1) if u.size else bad)
    nan = np.broadcast_to(bad[..., None, None], shape) | np.isnan(lo) | np.isnan(hi)
    return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi),
            np.asarray(nan))


INTERVAL_JVP = {"scaled_dot_product_attention_jvp": _sdpa_jvp, "smooth_max_pool2d_jvp": _smooth_jvp,"log_softmax_jvp": _lsm_jvp, "layer_norm_jvp": _norm_jvp("layer_norm_jvp"),
                "batch_norm2d_jvp": _norm_jvp("batch_norm2d_jvp"), "max_pool2d_jvp": _pool_jvp}
