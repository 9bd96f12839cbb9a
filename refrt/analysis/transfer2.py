"""Abstract interval transformers for the ops of issue 10 (math2, losses2), as data merged
into ``transfer.INTERVAL``.  Same contract as there: real-number bounds in float64 over
the input box, ``(lo, hi, nan[, extra])``; the driver widens them by the op's tolerance.
"""
from __future__ import annotations

import math

import numpy as np

from .domain import INF

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
# argmin of x Phi(x) (gelu_erf): x0 = -0.7517915246935645, value -0.16997120845...
GELU_ERF_MIN = -0.7517915246935645


def _gelu_erf(x):
    with np.errstate(all="ignore"):
        # Phi(x) = erfc(-x / sqrt 2) / 2: no cancellation of 1 + erf for x << 0
        y = x * 0.5 * _erfc(-x / math.sqrt(2))
    return np.where(np.isneginf(x), -0.0, np.where(np.isposinf(x), x, y))


def _leaky(x, p):
    s = p["negative_slope"]
    with np.errstate(all="ignore"):
        return np.where(x > 0, x, s * x)


# name -> UNARY entry (see transfer.UNARY)
UNARY2 = {
    "erf": (lambda x, p: _erf(x), "inc", None),
    "gelu_erf": (lambda x, p: _gelu_erf(x), "crit", ((GELU_ERF_MIN,), 1e-12)),
    # piecewise linear with its one kink at 0: extrema at the ends or at 0, any slope
    "leaky_relu": (_leaky, "crit", ((0.0,), 0.0)),
    "log_sigmoid": (lambda x, p: -np.logaddexp(0.0, -x), "inc", None),
}


def _trig(shift):
    """sin (shift 0) / cos (shift pi/2): [-1, 1], tightened when the box is narrower than
    a period and |x| < 2^20 (where x / (2 pi) in float64 still locates the extrema to
    ~2^-32; the end values are widened by 1e-12 for the float64 evaluation); NaN for an
    infinite end."""
    def t(ins, p, shape):
        x = ins[0]
        lo, hi = x.lo, x.hi
        nan = x.nan | np.isinf(lo) | np.isinf(hi)
        with np.errstate(all="ignore"):
            a, b = np.sin(lo + shift), np.sin(hi + shift)
            out_lo, out_hi = np.minimum(a, b) - 1e-12, np.maximum(a, b) + 1e-12
            # a maximum at u = pi/2 + 2 k pi, a minimum at -pi/2 + 2 k pi (u = x + shift)
            ul, uh = lo + shift, hi + shift
            kmax = np.ceil((ul - math.pi / 2) / (2 * math.pi) - 1e-9)
            has_max = kmax * 2 * math.pi + math.pi / 2 <= uh + 1e-9
            kmin = np.ceil((ul + math.pi / 2) / (2 * math.pi) - 1e-9)
            has_min = kmin * 2 * math.pi - math.pi / 2 <= uh + 1e-9
            wide = ~((np.abs(lo) < 2.0 ** 20) & (np.abs(hi) < 2.0 ** 20)) | \
                (hi - lo >= 2 * math.pi)
            out_hi = np.where(has_max | wide, 1.0, np.minimum(out_hi, 1.0))
            out_lo = np.where(has_min | wide, -1.0, np.maximum(out_lo, -1.0))
        return out_lo, out_hi, nan
    return t


def _prod(ins, p, shape):
    from .transfer import _mul_bounds
    x, ax = ins[0], p.get("axis")
    lo, hi, nan = x.lo, x.hi, x.nan
    if ax is None:
        lo, hi, nan = lo.reshape(-1, 1), hi.reshape(-1, 1), nan.reshape(-1, 1)
        ax = 0
    lo, hi, nan = (np.moveaxis(v, ax, 0) for v in (lo, hi, nan))
    plo, phi = np.ones(lo.shape[1:]), np.ones(lo.shape[1:])
    pnan = nan.any(axis=0)
    for k in range(lo.shape[0]):
        plo, phi, n2 = _mul_bounds(plo, phi, lo[k], hi[k])
        pnan = pnan | n2
    plo = np.where(np.isnan(plo), -INF, plo)
    phi = np.where(np.isnan(phi), INF, phi)
    return plo.reshape(shape), phi.reshape(shape), pnan.reshape(shape)


def _cosine(one_minus):
    """|C| <= 1 (Cauchy-Schwarz; clamped norms only shrink it): C in [-1, 1], 1 - C in
    [0, 2]; NaN where an input element may be NaN or infinite."""
    def t(ins, p, shape):
        x, y = ins
        bad = x.nan | y.nan | np.isinf(x.lo) | np.isinf(x.hi) | np.isinf(y.lo) | \
            np.isinf(y.hi)
        if one_minus:
            return np.zeros(()), np.full((), 2.0), np.asarray(bad.any())
        ax = p.get("axis", -1)
        nan = np.broadcast_to(bad, np.broadcast_shapes(x.shape, y.shape)).any(axis=ax)
        return -np.ones(shape), np.ones(shape), nan.reshape(shape)
    return t


def _abs_diff(ins, p, shape):
    from .transfer import _sub
    dl, dh, nan = _sub(ins, p, shape)
    s = (dl <= 0) & (dh >= 0)
    al = np.where(s, 0.0, np.minimum(np.abs(dl), np.abs(dh)))
    ah = np.maximum(np.abs(dl), np.abs(dh))
    return al, ah, nan


def _monotone_loss(term):
    """mean of term(|pred - target|) for a term non-decreasing in a >= 0 (l1, Huber,
    smooth L1, log-cosh): the bounds of |d| map to the bounds of each term."""
    def t(ins, p, shape):
        al, ah, nan = _abs_diff(ins, p, shape)
        with np.errstate(all="ignore"):
            ql, qh = term(al, p), term(ah, p)
            n = max(ins[0].size, 1)
            lo, hi = ql.sum() / n, qh.sum() / n
        return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi), nan.any())
    return t


def _huber(a, p):
    d = p["delta"]
    return np.where(a < d, 0.5 * a * a, d * (a - 0.5 * d))


def _smooth_l1(a, p):
    b = p["beta"]
    if b == 0:
        return a
    return np.where(a < b, 0.5 * a * a / b, a - 0.5 * b)


def _log_cosh(a, p):
    return np.logaddexp(a, -a) - math.log(2.0)


def _hinge(ins, p, shape):
    from .transfer import _mul_bounds
    a, b = ins
    ml, mh, nan = _mul_bounds(a.lo, a.hi, b.lo, b.hi)
    with np.errstate(all="ignore"):
        ql, qh = np.maximum(0.0, 1 - mh), np.maximum(0.0, 1 - ml)
        n = max(a.size, 1)
        lo, hi = ql.sum() / n, qh.sum() / n
    return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi),
            nan.any() | a.nan.any() | b.nan.any())


def _poisson(ins, p, shape):
    """exp(x) - t x: linear in t and convex in x, so the maximum over the box is at a
    corner; min_x is concave in t (a minimum of linear functions), so the minimum is at
    t = t_lo or t_hi, each at x* = clip(log t, x_lo, x_hi) (x_lo for t <= 0)."""
    from .transfer import _cancel_extra
    x, t = ins
    f = lambda xv, tv: np.exp(xv) - np.where(tv == 0, 0.0, tv * xv)
    with np.errstate(all="ignore"):
        corners = [f(xv, tv) for xv in (x.lo, x.hi) for tv in (t.lo, t.hi)]
        hi_t = np.maximum.reduce(corners)
        mins = []
        for tv in (t.lo, t.hi):
            xs = np.where(tv > 0, np.clip(np.log(np.where(tv > 0, tv, 1.0)), x.lo, x.hi), x.lo)
            mins.append(f(xs, tv))
        lo_t = np.minimum(mins[0], mins[1])
        n = max(x.size, 1)
        lo, hi = lo_t.sum() / n, hi_t.sum() / n
        mag = np.maximum(np.abs(lo_t), np.abs(hi_t)).sum()
    nan = x.nan.any() | t.nan.any() | (np.isinf(x.hi) & (t.hi > 0)).any() | \
        (np.isneginf(x.lo)).any()
    return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi), nan,
            _cancel_extra(mag, n) / n)


def _cross_entropy(ins, p, shape):
    """mean over active rows of sum_c t'_c L_c, L = -log_softmax in [-lp_hi, -lp_lo],
    t' = (1 - ls) t + ls / C (t one-hot for ids, 0 for ignored rows)."""
    from .transfer import _log_softmax_bounds, _mul_bounds
    z, t = ins
    ls = float(p.get("label_smoothing", 0.0))
    lp_lo, lp_hi, nan = _log_softmax_bounds(z, -1)
    C = z.shape[-1] if z.shape else 1
    Ll, Lh = (-lp_hi).reshape(-1, C), (-lp_lo).reshape(-1, C)
    if t.is_point and t.point.dtype.kind in "iu":
        ids = t.point.astype(np.int64).reshape(-1)
        active = ids != p.get("ignore_index", -100)
        oh = np.zeros(Ll.shape)
        if active.any():
            oh[np.flatnonzero(active), ids[active]] = 1.0
        tl = th = (1 - ls) * oh + np.where(active[:, None], ls / max(C, 1), 0.0)
        rows, tnan = int(active.sum()), False
    else:
        tl = ((1 - ls) * t.lo + ls / max(C, 1)).reshape(-1, C)
        th = ((1 - ls) * t.hi + ls / max(C, 1)).reshape(-1, C)
        rows, tnan = Ll.shape[0], bool(t.nan.any())
    if rows == 0:
        return np.zeros(()), np.zeros(()), np.asarray(False)
    plo, phi, n2 = _mul_bounds(tl, th, Ll, Lh)
    with np.errstate(all="ignore"):
        lo, hi = plo.sum() / rows, phi.sum() / rows
    return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi),
            np.asarray(bool(nan.any() or n2.any() or tnan)))


INTERVAL2 = {
    "sin": _trig(0.0), "cos": _trig(math.pi / 2), "prod": _prod,
    "cosine_similarity": _cosine(False), "cosine_similarity_loss": _cosine(True),
    "l1_loss": _monotone_loss(lambda a, p: a), "huber_loss": _monotone_loss(_huber),
    "smooth_l1_loss": _monotone_loss(_smooth_l1), "log_cosh_loss": _monotone_loss(_log_cosh),
    "hinge_loss": _hinge, "poisson_nll_loss": _poisson, "cross_entropy": _cross_entropy,
}
