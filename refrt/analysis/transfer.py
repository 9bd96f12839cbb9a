"""Abstract transformers, one per registry op, kept as data keyed by the op's name.

``INTERVAL[name](ins, p, out_shape) -> (lo, hi, nan[, extra])`` gives real-number bounds
of the op over the input intervals (``ins``: ``ATensor``; ``p``: the validated params),
computed in float64; the driver (``analyze``) widens them outward by the registry's
tolerance for the analysed dtype (``domain.widen``) and adds ``extra``, an absolute
radius for reductions whose float error is not relative to the result (cancellation).
``EXACT`` lists the ops whose float result is exactly the real result of its (float)
inputs (copies, selects, max/min), which are widened by float64 rounding only.

``UNARY`` describes the elementwise unary ops as data: the float64 function, and its
shape (``inc``/``dec`` monotone; ``crit`` with interior critical points whose values,
lowered by a margin, bound the extremum; the domain clip below which the op is NaN or
-inf).  An op missing from ``INTERVAL`` is reported "not analysed" and its output is
unbounded (never silently safe).
"""
from __future__ import annotations

import math

import numpy as np

from .domain import INF

K_GELU = math.sqrt(2 / math.pi)


def _silu(x):
    with np.errstate(all="ignore"):
        y = x / (1 + np.exp(-x))
    return np.where(np.isneginf(x), -0.0, np.where(np.isposinf(x), x, y))


def _gelu(x):
    with np.errstate(all="ignore"):
        y = x / (1 + np.exp(-2 * K_GELU * (x + 0.044715 * x ** 3)))
    return np.where(np.isneginf(x), -0.0, np.where(np.isposinf(x), x, y))


def _sigmoid(x):
    with np.errstate(all="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _elu(alpha):
    return lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


# name -> (function(x, params), kind, extra): kind "inc" | "dec" | "crit" (extra: critical
# points and a margin) | "clip" (increasing with a domain clip: extra (clip, nan below,
# value at the clip))
UNARY = {
    "neg": (lambda x, p: -x, "dec", None),
    "abs": (lambda x, p: np.abs(x), "crit", ((0.0,), 0.0)),
    "sign": (lambda x, p: np.sign(x), "inc", None),
    "square": (lambda x, p: x * x, "crit", ((0.0,), 0.0)),
    "exp": (lambda x, p: np.exp(x), "inc", None),
    "expm1": (lambda x, p: np.expm1(x), "inc", None),
    "log": (lambda x, p: np.log(x), "clip", (0.0, True)),
    "log1p": (lambda x, p: np.log1p(x), "clip", (-1.0, True)),
    "sqrt": (lambda x, p: np.sqrt(x), "clip", (0.0, True)),
    "sqrt_clamp": (lambda x, p: np.sqrt(np.maximum(x, 0.0)), "inc", None),
    "relu": (lambda x, p: np.maximum(x, 0.0), "inc", None),
    "sigmoid": (lambda x, p: _sigmoid(x), "inc", None),
    "logistic": (lambda x, p: _sigmoid(x), "inc", None),
    "tanh": (lambda x, p: np.tanh(x), "inc", None),
    "softplus": (lambda x, p: _softplus(x), "inc", None),
    "sinh": (lambda x, p: np.sinh(x), "inc", None),
    "cosh": (lambda x, p: np.cosh(x), "crit", ((0.0,), 0.0)),
    "silu": (lambda x, p: _silu(x), "crit", ((-1.2784645424748815,), 1e-12)),
    "gelu": (lambda x, p: _gelu(x), "crit", ((-0.7524614257654091,), 1e-12)),
    "smooth_abs": (lambda x, p: np.sqrt(x * x + p["eps"]), "crit", ((0.0,), 0.0)),
    "safe_log": (lambda x, p: np.log(_softplus(x) + p["eps"]), "inc", None),
    "elu": (lambda x, p: _elu(p["alpha"])(x), "crit", ((0.0,), 0.0)),
    "scale": (lambda x, p: p["c"] * x, "scale", None),
    "clamp": (lambda x, p: np.clip(x, p["lo"], p["hi"]), "inc", None),
}

# ops whose float result is never negative (NaN aside): a kernel of exp, a square, a
# variance of squared deviations, a probability; and never positive
NONNEG = {"exp", "sigmoid", "logistic", "softmax", "var", "square", "abs", "relu", "sqrt",
          "sqrt_clamp", "smooth_abs", "cosh", "softplus", "mse_loss"}
NONPOS = {"log_softmax"}
# ops whose float result keeps the sign of the real result when that sign is the same
# over the whole input box (rounding to nearest is monotone and 0 is representable; the
# compensated sums of terms of one sign have partial sums of that sign)
SIGN_KEEP = {"add", "sub", "mul", "div", "scale", "inv", "sum", "mean", "reduce_sum",
             "reduce_mean", "row_mean", "fixed_mask_scale", "fixed_inverted_dropout",
             "safe_div", "safe_inv", "exp", "expm1", "log", "log1p", "tanh", "sinh", "sqrt",
             "sigmoid", "logistic", "softplus", "silu", "gelu", "elu", "pow"}

EXACT = {"neg", "abs", "sign", "relu", "clamp", "minimum", "maximum", "where", "amax",
         "amin", "transpose", "broadcast_row", "broadcast_col", "broadcast_to", "concat",
         "reshape", "flatten", "swap_first_two", "transpose_last_two"}


def _unary(name):
    f, kind, extra = UNARY[name]

    def t(ins, p, shape):
        x = ins[0]
        lo, hi, nan = x.lo, x.hi, x.nan.copy()
        with np.errstate(all="ignore"):
            if kind == "scale":
                kind2 = "inc" if p["c"] >= 0 else "dec"
            else:
                kind2 = kind
            if kind2 == "clip":
                clip, _ = extra
                nan |= lo < clip
                cl, ch = np.maximum(lo, clip), np.maximum(hi, clip)
                a, b = f(cl, p), f(ch, p)
                out_lo, out_hi = a, b
            elif kind2 == "inc":
                out_lo, out_hi = f(lo, p), f(hi, p)
            elif kind2 == "dec":
                out_lo, out_hi = f(hi, p), f(lo, p)
            else:
                pts, margin = extra
                a, b = f(lo, p), f(hi, p)
                out_lo, out_hi = np.minimum(a, b), np.maximum(a, b)
                for c in pts:
                    inside = (lo <= c) & (c <= hi)
                    v = f(np.full(lo.shape, c), p)
                    out_lo = np.where(inside, np.minimum(out_lo, v - margin), out_lo)
                    out_hi = np.where(inside, np.maximum(out_hi, v), out_hi)
        if name == "clamp":
            # refrt's clamp maps NaN to a number in [lo, hi] (max/min select), not NaN
            out_lo = np.where(x.nan, np.minimum(out_lo, p["lo"]), out_lo)
            out_hi = np.where(x.nan, np.maximum(out_hi, p["hi"]), out_hi)
        if name == "scale" and p["c"] == 0:
            nan = nan | np.isinf(lo) | np.isinf(hi)
        return out_lo, out_hi, nan
    return t


def _mul_bounds(al, ah, bl, bh):
    with np.errstate(all="ignore"):
        c = np.stack([al * bl, al * bh, ah * bl, ah * bh])
    nanc = np.isnan(c)
    lo = np.where(nanc, INF, c).min(0)
    hi = np.where(nanc, -INF, c).max(0)
    anyn = nanc.any(0)
    lo = np.where(anyn, np.minimum(lo, 0.0), lo)
    hi = np.where(anyn, np.maximum(hi, 0.0), hi)
    return lo, hi, anyn


def _div_bounds(al, ah, bl, bh):
    zero = (bl <= 0) & (bh >= 0)
    with np.errstate(all="ignore"):
        c = np.stack([al / bl, al / bh, ah / bl, ah / bh])
    nanc = np.isnan(c)
    lo = np.where(nanc, INF, c).min(0)
    hi = np.where(nanc, -INF, c).max(0)
    nan = nanc.any(0) | (zero & (al <= 0) & (ah >= 0))
    lo = np.where(zero, -INF, lo)
    hi = np.where(zero, INF, hi)
    lo = np.where(nanc.all(0) & ~zero, -INF, lo)
    hi = np.where(nanc.all(0) & ~zero, INF, hi)
    return lo, hi, nan


def _inv(ins, p, shape):
    x = ins[0]
    lo, hi, nan = _div_bounds(np.ones(x.shape), np.ones(x.shape), x.lo, x.hi)
    return lo, hi, nan | x.nan


def _eps_shift(x, p):
    """Bounds of the float sum x + eps (its own rounding, one ulp of the dtype; the
    driver widens only the op's final result)."""
    from .domain import widen
    with np.errstate(all="ignore"):
        return widen(x.lo + p["eps"], x.hi + p["eps"], p["_lim"], 1.0)


def _safe_inv(ins, p, shape):
    lo, hi = _eps_shift(ins[0], p)
    a, b, nan = _div_bounds(np.ones(lo.shape), np.ones(lo.shape), lo, hi)
    return a, b, nan | ins[0].nan


def _add(ins, p, shape):
    a, b = ins
    with np.errstate(all="ignore"):
        lo, hi = a.lo + b.lo, a.hi + b.hi
    nan = a.nan | b.nan | (np.isposinf(a.hi) & np.isneginf(b.lo)) | \
        (np.isneginf(a.lo) & np.isposinf(b.hi))
    return lo, hi, nan


def _sub(ins, p, shape):
    a, b = ins
    with np.errstate(all="ignore"):
        lo, hi = a.lo - b.hi, a.hi - b.lo
    nan = a.nan | b.nan | (np.isposinf(a.hi) & np.isposinf(b.hi)) | \
        (np.isneginf(a.lo) & np.isneginf(b.lo))
    return lo, hi, nan


def _mul(ins, p, shape):
    a, b = ins
    lo, hi, n = _mul_bounds(a.lo, a.hi, b.lo, b.hi)
    return lo, hi, n | a.nan | b.nan


def _div(ins, p, shape):
    a, b = ins
    lo, hi, n = _div_bounds(a.lo, a.hi, b.lo, b.hi)
    return lo, hi, n | a.nan | b.nan


def _safe_div(ins, p, shape):
    a, b = ins
    bl, bh = _eps_shift(b, p)
    lo, hi, n = _div_bounds(a.lo, a.hi, bl, bh)
    return lo, hi, n | a.nan | b.nan


def _minmax(f):
    def t(ins, p, shape):
        a, b = ins
        return f(a.lo, b.lo), f(a.hi, b.hi), a.nan | b.nan
    return t


def _pow(ins, p, shape):
    x, y = ins
    with np.errstate(all="ignore"):
        c = np.stack([np.power(x.lo, y.lo), np.power(x.lo, y.hi),
                      np.power(x.hi, y.lo), np.power(x.hi, y.hi)])
    pos = x.lo > 0
    nanc = np.isnan(c).any(0)
    lo = np.where(pos & ~nanc, c.min(0), -INF)
    hi = np.where(pos & ~nanc, c.max(0), INF)
    return lo, hi, x.nan | y.nan | ~pos | nanc


def _cond(t):
    return t.point.astype(bool) if t.is_point else None


def _where(ins, p, shape):
    c, x, y = ins
    cond = _cond(c)
    if cond is None:
        return np.minimum(x.lo, y.lo), np.maximum(x.hi, y.hi), x.nan | y.nan
    return (np.where(cond, x.lo, y.lo), np.where(cond, x.hi, y.hi),
            np.where(cond, x.nan, y.nan))


def _mask_scale(ins, p, shape):
    return _mul(ins, p, shape)


def _dropout(ins, p, shape):
    x, m = ins
    k = 1.0 / p["keep"]
    if m.is_point:
        cl = ch = np.where(m.point != 0, k, 0.0)
    else:
        inc0 = (m.lo <= 0) & (m.hi >= 0)
        only0 = (m.lo == 0) & (m.hi == 0)
        cl = np.where(inc0, 0.0, k)
        ch = np.where(only0, 0.0, k)
    lo, hi, n = _mul_bounds(x.lo, x.hi, cl, ch)
    return lo, hi, n | x.nan


# ------------------------------------------------------------------- reductions ----
def _ax(p, key="axis"):
    return p.get(key)


def _count(shape, axis):
    if axis is None:
        return max(int(np.prod(shape)), 1) if len(shape) else 1
    return max(shape[axis], 1)


def _sum_core(lo, hi, nan, axis):
    with np.errstate(all="ignore"):
        slo, shi = lo.sum(axis=axis), hi.sum(axis=axis)
        absmax = np.maximum(np.abs(lo), np.abs(hi)).sum(axis=axis)
    n = _count(lo.shape, axis)
    slo = np.where(np.isnan(slo), -INF, slo)
    shi = np.where(np.isnan(shi), INF, shi)
    nanr = nan.any(axis=axis) | (np.isposinf(hi).any(axis=axis) & np.isneginf(lo).any(axis=axis))
    return slo, shi, nanr, absmax, n


def _cancel_extra(absmax, n, lim_u=2.0 ** -24):
    # compensated (Neumaier) summation: |s^ - s| <= 2u|s| + 2 n^2 u^2 sum|x_i|
    # (Higham, Accuracy and Stability, (4.11)); the 2u|s| part is the driver's widening
    with np.errstate(all="ignore"):
        return 2.0 * n * n * lim_u * lim_u * absmax


def _sum_extra(x, slo, shi, absmax, n, axis):
    """(below, above) radii of the summation error: with terms of one sign,
    sum|x_i| = |s|, so the error is relative to the sum at each end (a sum of positive
    terms stays positive); with mixed signs it is bounded by sum max(|lo|, |hi|)."""
    c = _cancel_extra(1.0, n)
    sym = _cancel_extra(absmax, n)
    nonneg = (x.lo >= 0).all(axis=axis)
    nonpos = (x.hi <= 0).all(axis=axis)
    below = np.where(nonneg, c * np.abs(slo), np.where(nonpos, c * np.abs(slo), sym))
    above = np.where(nonneg, c * np.abs(shi), np.where(nonpos, c * np.abs(shi), sym))
    return below, above


def _sum(ins, p, shape):
    lo, hi, nan, a, n = _sum_core(ins[0].lo, ins[0].hi, ins[0].nan, _ax(p))
    return lo, hi, nan, _sum_extra(ins[0], lo, hi, a, n, _ax(p))


def _mean(ins, p, shape, axis="axis"):
    ax = _ax(p, axis) if isinstance(axis, str) else axis
    lo, hi, nan, a, n = _sum_core(ins[0].lo, ins[0].hi, ins[0].nan, ax)
    b, t = _sum_extra(ins[0], lo, hi, a, n, ax)
    return lo / n, hi / n, nan, (b / n, t / n)


def _reduce_sum(ins, p, shape):
    return _sum(ins, {"axis": p["axis"]}, shape)


def _row_mean(ins, p, shape):
    return _mean(ins, p, shape, axis=1)


def _amax(ins, p, shape):
    x = ins[0]
    return x.lo.max(axis=_ax(p)), x.hi.max(axis=_ax(p)), x.nan.any(axis=_ax(p))


def _amin(ins, p, shape):
    x = ins[0]
    return x.lo.min(axis=_ax(p)), x.hi.min(axis=_ax(p)), x.nan.any(axis=_ax(p))


def _var(ins, p, shape):
    # population variance of values in [a, b] lies in [0, (b - a)^2 / 4] (Popoviciu)
    x, ax = ins[0], _ax(p)
    with np.errstate(all="ignore"):
        a, b = x.lo.min(axis=ax), x.hi.max(axis=ax)
        hi = (b - a) ** 2 / 4
        if np.all(x.lo == x.hi) and np.all(np.isfinite(x.lo)):
            v = np.var(x.lo, axis=ax)
            return v, v, x.nan.any(axis=ax)
    hi = np.where(np.isnan(hi), INF, hi)
    return np.zeros(np.shape(hi)), hi, x.nan.any(axis=ax) | ~np.isfinite(a) | ~np.isfinite(b)


def _lse(v, axis):
    with np.errstate(all="ignore"):
        m = v.max(axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        s = np.log(np.exp(v - m).sum(axis=axis, keepdims=True)) + m
    return np.squeeze(s, axis=axis) if axis is not None else s.reshape(())


def _logsumexp(ins, p, shape):
    x, ax = ins[0], _ax(p)
    return _lse(x.lo, ax), _lse(x.hi, ax), x.nan.any(axis=ax)


def _lse_excl(v, axis):
    """logsumexp over the axis of every entry but one, for each entry."""
    v = np.moveaxis(v, axis, -1)
    n = v.shape[-1]
    w = np.broadcast_to(v[..., None, :], v.shape + (n,)).copy()
    idx = np.arange(n)
    w[..., idx, idx] = -INF
    return np.moveaxis(_lse(w, -1), -1, axis)


def _log_softmax_bounds(x, axis):
    # log_softmax_i = -log(1 + sum_{j != i} exp(x_j - x_i)): decreasing in every x_j
    # (j != i), increasing in x_i
    with np.errstate(all="ignore"):
        lo = -np.logaddexp(0.0, _lse_excl(x.hi, axis) - x.lo)
        hi = -np.logaddexp(0.0, _lse_excl(x.lo, axis) - x.hi)
    lo = np.where(np.isnan(lo), -INF, lo)
    hi = np.where(np.isnan(hi), 0.0, np.minimum(hi, 0.0))
    nan = np.broadcast_to(x.nan.any(axis=axis, keepdims=True), x.shape) | \
        np.broadcast_to((np.isposinf(x.hi).sum(axis=axis, keepdims=True) > 0), x.shape) | \
        np.broadcast_to(np.isneginf(x.lo).all(axis=axis, keepdims=True), x.shape)
    return lo, hi, nan


def _log_softmax(ins, p, shape):
    return _log_softmax_bounds(ins[0], p["axis"])


def _softmax(ins, p, shape):
    lo, hi, nan = _log_softmax_bounds(ins[0], p["axis"])
    return np.exp(lo), np.minimum(np.exp(hi), 1.0), nan


# --------------------------------------------------------------------- linear ----
def _matmul_bounds(al, ah, bl, bh):
    """Bounds of a @ b (batched over leading axes), elementwise products summed."""
    if all(np.isfinite(v).all() for v in (al, ah, bl, bh)):
        with np.errstate(all="ignore"):
            am, ar = al / 2 + ah / 2, ah / 2 - al / 2
            bm, br = bl / 2 + bh / 2, bh / 2 - bl / 2
            m = am @ bm
            r = np.abs(am) @ br + ar @ np.abs(bm) + ar @ br
            mag = np.abs(am) @ np.abs(bm) + r
            slack = 4 * 2.0 ** -53 * (mag + np.abs(m) + r)
            lo, hi = m - r - slack, m + r + slack
        # an overflow of the float64 bound computation (inf - inf) is unbounded
        return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi),
                np.where(np.isnan(mag), INF, mag))
    lo, hi, nan = _mul_bounds(al[..., :, :, None], ah[..., :, :, None],
                              bl[..., None, :, :], bh[..., None, :, :])
    with np.errstate(all="ignore"):
        slo, shi = lo.sum(axis=-2), hi.sum(axis=-2)
        mag = np.maximum(np.abs(lo), np.abs(hi)).sum(axis=-2)
    return np.where(np.isnan(slo), -INF, slo), np.where(np.isnan(shi), INF, shi), mag


def _dot2_extra(mag, n):
    # Dot2 (Ogita, Rump, Oishi 2005, Prop. 5.5): |res - a.b| <= u|a.b| + gamma_n^2 |a|.|b|
    u = 2.0 ** -24
    g = n * u / (1 - n * u)
    return g * g * mag


def _matmul(ins, p, shape):
    a, b = ins
    lo, hi, mag = _matmul_bounds(a.lo, a.hi, b.lo, b.hi)
    n = a.shape[-1]
    nan = (a.nan.any(axis=-1)[..., :, None] | b.nan.any(axis=-2)[..., None, :])
    return lo, hi, np.broadcast_to(nan, lo.shape), _dot2_extra(mag, n)


def _linear(ins, p, shape):
    x, w, b = ins
    lo, hi, mag = _matmul_bounds(x.lo, x.hi, w.lo.T, w.hi.T)
    n = x.shape[-1]
    lo, hi = lo + b.lo, hi + b.hi
    nan = x.nan.any(axis=-1)[..., None] | w.nan.any(axis=-1) | b.nan
    return lo, hi, np.broadcast_to(nan, lo.shape), _dot2_extra(mag + np.maximum(np.abs(b.lo), np.abs(b.hi)), n + 1)


def _affine(ins, p, shape):
    x, A, b = ins
    lo, hi, mag = _matmul_bounds(A.lo, A.hi, x.lo.reshape(-1, 1), x.hi.reshape(-1, 1))
    lo, hi, mag = lo[:, 0] + b.lo, hi[:, 0] + b.hi, mag[:, 0]
    nan = A.nan.any(axis=-1) | x.nan.any() | b.nan
    return lo, hi, nan, _dot2_extra(mag + np.maximum(np.abs(b.lo), np.abs(b.hi)), x.size + 1)


# ---------------------------------------------------------------------- losses ----
def _rows(shape):
    return max(int(np.prod(shape[:-1])), 1) if len(shape) > 1 else 1


def _target_dot(lp_lo, lp_hi, t, shape):
    """-sum(t * lp) / rows for float targets, or -lp at the class for integer ids."""
    if t.is_point and t.point.dtype.kind in "iu":
        ids = t.point.astype(np.int64)
        lo = -np.take_along_axis(lp_hi, ids[..., None], -1)[..., 0]
        hi = -np.take_along_axis(lp_lo, ids[..., None], -1)[..., 0]
        rows = max(ids.size, 1)
        return lo.sum() / rows, hi.sum() / rows, np.zeros((), bool)
    plo, phi, nan = _mul_bounds(t.lo, t.hi, -lp_hi, -lp_lo)
    with np.errstate(all="ignore"):
        lo, hi = plo.sum(), phi.sum()
    rows = _rows(shape)
    return (np.where(np.isnan(lo), -INF, lo) / rows, np.where(np.isnan(hi), INF, hi) / rows,
            nan.any() | t.nan.any())


def _ce_logits(ins, p, shape):
    z, t = ins
    lo, hi, nan = _log_softmax_bounds(z, -1)
    a, b, n = _target_dot(lo, hi, t, z.shape)
    return a, b, n | nan.any(), _cancel_extra(np.maximum(np.abs(a), np.abs(b)) * 4, z.size)


def _clip_log(x, lo_c, hi_c):
    with np.errstate(all="ignore"):
        return (np.log(np.clip(x.lo, lo_c, hi_c)), np.log(np.clip(x.hi, lo_c, hi_c)))


def _ce_probs(ins, p, shape):
    x, t = ins
    eps = p["eps"]
    lo, hi = _clip_log(x, eps, 1 - eps)
    # the clip maps a NaN probability into [eps, 1 - eps]
    lo = np.where(x.nan, np.log(eps), lo)
    hi = np.where(x.nan, np.log1p(-eps), hi)
    a, b, n = _target_dot(lo, hi, t, x.shape)
    return a, b, n | x.nan.any()


def _nll(ins, p, shape):
    x, t = ins
    return _target_dot(x.lo, x.hi, t, x.shape)


def _kl(ins, p, shape):
    x, t = ins
    # xlogy(t, t) = t log t on [0, inf): min -1/e at t = 1/e, otherwise at the ends
    with np.errstate(all="ignore"):
        f = lambda v: np.where(v > 0, v * np.log(np.where(v > 0, v, 1.0)), 0.0)
        a, b = f(np.maximum(t.lo, 0)), f(np.maximum(t.hi, 0))
        inside = (t.lo <= 1 / math.e) & (t.hi >= 1 / math.e)
        xl = np.where(inside, -1 / math.e - 1e-12, np.minimum(a, b))
        xh = np.maximum(a, b)
    plo, phi, nan = _mul_bounds(t.lo, t.hi, -x.hi, -x.lo)
    rows = _rows(x.shape)
    with np.errstate(all="ignore"):
        lo, hi = (xl + plo).sum() / rows, (xh + phi).sum() / rows
    return (np.where(np.isnan(lo), -INF, lo), np.where(np.isnan(hi), INF, hi),
            nan.any() | (t.lo < 0).any() | x.nan.any() | t.nan.any())


def _mse(ins, p, shape):
    a, b = ins
    dl, dh, nan = _sub(ins, p, shape)
    s = (dl <= 0) & (dh >= 0)
    with np.errstate(all="ignore"):
        ql = np.where(s, 0.0, np.minimum(dl * dl, dh * dh))
        qh = np.maximum(dl * dl, dh * dh)
    n = max(a.size, 1)
    return ql.sum() / n, qh.sum() / n, nan.any(), _cancel_extra(qh.sum(), n) / n


def _bce_logits(ins, p, shape):
    x, t = ins
    # softplus(x) - t x: convex in x, linear in t, so its maximum over the box is at a
    # corner; for t in [0, 1] every term is >= 0 (the kernel's form makes that exact)
    with np.errstate(all="ignore"):
        f = lambda xv, tv: np.where(np.isinf(xv),
                                    np.where((xv > 0) == True, (1 - tv) * np.abs(xv), tv * np.abs(xv)),  # noqa: E712
                                    _softplus(xv) - tv * xv)
        c = np.stack([f(x.lo, t.lo), f(x.lo, t.hi), f(x.hi, t.lo), f(x.hi, t.hi)])
        c = np.where(np.isnan(c), INF, c)
        hi = c.max(0)
        in01 = (t.lo >= 0) & (t.hi <= 1)
        lo = np.where(in01, 0.0, -INF)
    n = max(x.size, 1)
    return lo.sum() / n, hi.sum() / n, (x.nan | t.nan).any() | ~in01.all(), \
        _cancel_extra(hi.sum(), n) / n


def _bce(ins, p, shape):
    x, t = ins
    eps = p["eps"]
    with np.errstate(all="ignore"):
        la, lb = np.log(np.clip(x.lo, eps, 1 - eps)), np.log(np.clip(x.hi, eps, 1 - eps))
        ma, mb = np.log1p(-np.clip(x.hi, eps, 1 - eps)), np.log1p(-np.clip(x.lo, eps, 1 - eps))
    al, ah, n1 = _mul_bounds(t.lo, t.hi, la, lb)
    bl, bh, n2 = _mul_bounds(1 - t.hi, 1 - t.lo, ma, mb)
    n = max(x.size, 1)
    with np.errstate(all="ignore"):
        lo, hi = -(ah + bh).sum() / n, -(al + bl).sum() / n
    return lo, hi, (n1 | n2 | x.nan | t.nan).any(), _cancel_extra(np.abs(lo) + np.abs(hi), n) / n


def _norm_core(xm_lo, xm_hi, d_lo, d_hi, g, b, bound=None):
    """((x - mean) / den) * gamma + beta with den in [d_lo, d_hi] > 0."""
    lo, hi, n1 = _div_bounds(xm_lo, xm_hi, d_lo, d_hi)
    if bound is not None:
        lo, hi = np.maximum(lo, -bound), np.minimum(hi, bound)
    lo, hi, n2 = _mul_bounds(lo, hi, g[0], g[1])
    return lo + b[0], hi + b[1], n1 | n2


def _layer_norm(ins, p, shape):
    x, g, b = ins
    eps = p["eps"]
    mlo, mhi = x.lo.mean(axis=-1, keepdims=True), x.hi.mean(axis=-1, keepdims=True)
    vlo, vhi, vnan = _var([x], {"axis": -1}, shape)
    d_lo = np.sqrt(np.maximum(vlo, 0.0) + eps)[..., None] * (1 - 2.0 ** -20)
    d_hi = np.sqrt(vhi + eps)[..., None] * (1 + 2.0 ** -20)
    # |x_i - mean| / sigma <= sqrt(d - 1) for the population deviation (Samuelson)
    bound = math.sqrt(max(x.shape[-1] - 1, 0)) * (1 + 2.0 ** -20) + 2.0 ** -20
    lo, hi, n = _norm_core(x.lo - mhi, x.hi - mlo, d_lo, d_hi, (g.lo, g.hi), (b.lo, b.hi),
                           bound)
    return lo, hi, n | x.nan.any(axis=-1, keepdims=True) | vnan[..., None] | g.nan | b.nan


def _batch_norm(ins, p, shape):
    x, m, v, g, b = ins
    ca = p.get("channel_axis", 0)
    ex = tuple(i for i in range(x.lo.ndim) if i != ca)
    c = lambda a: np.expand_dims(a, ex)
    eps = p["eps"]
    d_lo = c(np.sqrt(np.maximum(np.maximum(v.lo, 0.0) + eps, 0.0))) * (1 - 2.0 ** -20)
    d_hi = c(np.sqrt(np.maximum(np.maximum(v.hi, 0.0) + eps, 0.0))) * (1 + 2.0 ** -20)
    lo, hi, n = _norm_core(x.lo - c(m.hi), x.hi - c(m.lo), d_lo, d_hi,
                           (c(g.lo), c(g.hi)), (c(b.lo), c(b.hi)))
    return lo, hi, n | x.nan | c(m.nan | v.nan | g.nan | b.nan)


# --------------------------------------------------------------- conditioning ----
# The registry's tolerances are ulps of the *result*, measured on input families; a
# composite kernel can exceed them where its algorithm cancels (logsumexp of values
# whose result is near 0, softmax of a wide spread, a variance of large values).  So
# these ops also get a radius (tol + 4) * eps * COND[name](ins, p, lo, hi): the magnitude of
# the intermediate quantities their algorithm rounds, from the usual forward-error
# analysis (each intermediate carries a relative error of a few u); ("rel", f) is a
# relative radius f * |bound| at each end (the result's sign is then kept).
def _amax_abs(x, axis, keep=False):
    with np.errstate(all="ignore"):
        return np.maximum(np.abs(x.lo), np.abs(x.hi)).max(axis=axis, keepdims=keep)


def _n(x, axis):
    return x.shape[axis] if axis is not None and x.shape else max(x.size, 1)


def _cond_lse(ins, p, lo, hi):
    x, ax = ins[0], p.get("axis")
    return 2 * _amax_abs(x, ax) + math.log(_n(x, ax) + 1) + np.maximum(np.abs(lo), np.abs(hi))


def _cond_lsm(ins, p, lo, hi):
    x, ax = ins[0], p["axis"]
    return np.broadcast_to(3 * _amax_abs(x, ax, True) + math.log(_n(x, ax) + 1), lo.shape)


def _cond_softmax(ins, p, lo, hi):
    x, ax = ins[0], p["axis"]
    # exp(x - m): the rounding of x - m is a relative error of u |x - m| in the result
    return "rel", np.broadcast_to(2 * _amax_abs(x, ax, True) + _n(x, ax) + 4, lo.shape)


def _cond_var(ins, p, lo, hi):
    x, ax = ins[0], p.get("axis")
    n = _n(x, ax)
    m = _amax_abs(x, ax)
    with np.errstate(all="ignore"):
        return (n + 4) * m * m


def _cond_loss(ins, p, lo, hi):
    z = ins[0]
    return (z.size + 4) * (2 * _amax_abs(z, None) + math.log(z.shape[-1] + 1 if z.shape else 2)) \
        * max(float(np.max(np.abs(np.concatenate([ins[1].lo.ravel(), ins[1].hi.ravel()]))))
              if ins[1].size else 1.0, 1.0) / max(_rows(z.shape), 1)


def _cond_terms(ins, p, lo, hi):
    return (ins[0].size + 4) * np.maximum(np.abs(lo), np.abs(hi)) + 1e-300


def _cond_norm(ins, p, lo, hi):
    # (x - mean) / sqrt(var + eps) * gamma + beta: x - mean carries u |x|, divided by at
    # least sqrt(eps) (magnitudes over the whole tensor)
    x, g, b = ins[0], ins[-2], ins[-1]
    gm, bm, m = _amax_abs(g, None), _amax_abs(b, None), _amax_abs(x, None)
    with np.errstate(all="ignore"):
        return (x.shape[-1] + 8) * (m / math.sqrt(p["eps"]) + 1) * gm + bm + \
            np.abs(lo) + np.abs(hi)


def _cond_elementwise(power=1):
    def c(ins, p, lo, hi):
        x = ins[0]
        m = np.maximum(np.abs(x.lo), np.abs(x.hi))
        with np.errstate(all="ignore"):
            return "rel", 1 + m ** power
    return c


COND = {"logsumexp": _cond_lse, "log_softmax": _cond_lsm, "softmax": _cond_softmax,
        "var": _cond_var, "cross_entropy_logits": _cond_loss,
        "cross_entropy_probs": _cond_terms, "nll_loss": _cond_terms, "kl_div": _cond_terms,
        "bce_with_logits": _cond_terms, "binary_cross_entropy": _cond_terms,
        "mse_loss": _cond_terms, "layer_norm": _cond_norm, "batch_norm_inference": _cond_norm,
        "gelu": _cond_elementwise(3), "silu": _cond_elementwise(), "elu": _cond_elementwise(),
        "sigmoid": _cond_elementwise(), "logistic": _cond_elementwise(),
        "softplus": _cond_elementwise(), "safe_log": _cond_elementwise(),
        "tanh": _cond_elementwise(), "smooth_abs": _cond_elementwise(),
        "sinh": _cond_elementwise(), "cosh": _cond_elementwise()}


from .transfer2 import INTERVAL2, UNARY2  # noqa: E402  (issue 10's ops, same contract)
from .transfer_indexing import INTERVAL_INDEXING  # noqa: E402  (issue 10, indexing/rnn/other)

UNARY.update(UNARY2)
INTERVAL = {name: _unary(name) for name in UNARY}
INTERVAL.update(INTERVAL2)
INTERVAL.update(INTERVAL_INDEXING)
from .transfer_conv import INTERVAL_CONV  # noqa: E402  (conv and pooling, same contract)
INTERVAL.update(INTERVAL_CONV)
from .transfer_attention import INTERVAL_ATTN  # noqa: E402  (attention and norm2 ops)
INTERVAL.update(INTERVAL_ATTN)
from .transfer_misc2 import INTERVAL_MISC2  # noqa: E402  (misc2 ops: masks, clipping, scan, quantizer)
INTERVAL.update(INTERVAL_MISC2)
from .transfer_jvp import INTERVAL_JVP  # noqa: E402  (forward-mode JVP ops)
INTERVAL.update(INTERVAL_JVP)
INTERVAL.update({
    "inv": _inv, "safe_inv": _safe_inv, "add": _add, "sub": _sub, "mul": _mul,
    "div": _div, "safe_div": _safe_div, "minimum": _minmax(np.minimum),
    "maximum": _minmax(np.maximum), "pow": _pow, "where": _where,
    "fixed_mask_scale": _mask_scale, "fixed_inverted_dropout": _dropout,
    "sum": _sum, "mean": _mean, "amax": _amax, "amin": _amin, "var": _var,
    "logsumexp": _logsumexp, "softmax": _softmax, "log_softmax": _log_softmax,
    "reduce_sum": _reduce_sum, "reduce_mean": _mean, "row_mean": _row_mean,
    "matmul": _matmul, "linear": _linear, "affine": _affine,
    "mse_loss": _mse, "cross_entropy_logits": _ce_logits, "cross_entropy_probs": _ce_probs,
    "nll_loss": _nll, "bce_with_logits": _bce_logits, "binary_cross_entropy": _bce,
    "kl_div": _kl, "layer_norm": _layer_norm, "batch_norm_inference": _batch_norm,
})

# pure re-indexing ops: handled by ``gather`` in the driver (the op's own kernel run on
# element indices gives the source of every output element)
GATHER = ("transpose", "broadcast_row", "broadcast_col", "broadcast_to", "concat",
          "reshape", "flatten", "swap_first_two", "transpose_last_two")
