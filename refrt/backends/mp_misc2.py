"""mp formulas and VJPs of logical_not, any, all, detach, rand_uniform, clip_gradients,
clip_by_percentile, diagonal_scan, quantize, dequantize, argmax and argmin: the
real-number definitions against ``ctx``.

Every branch decides on *input* values, exactly: masks, positions, the percentile's
sort and the quantizer's rnd(x / scale) read the inputs as the floats they are
(``float(v)`` of an exact input, in every context) and compare them with Python's exact
float / Fraction arithmetic, and clip_gradients decides sum(g^2) > max_norm^2 on exact
rationals.  The values then come from ctx arithmetic (sqrt, division) where they are
not integers."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import mp_impl, mp_vjp
from .mpctx import emap, reduce_along
from .mp_reductions import _fsum
from ..registry.misc2 import uniform_value


def _f(v) -> float:
    """The float an exact input value holds (mpf, Arb point, interval point, Fraction)."""
    return float(v)


def _zeros(ctx, arrays):
    out = []
    for a in arrays:
        z = np.empty(a.shape, dtype=object)
        z.reshape(-1)[:] = [ctx.zero] * a.size
        out.append(z)
    return tuple(out)


def _zeros_vjp(ctx, arrays, params, out, g):
    return _zeros(ctx, arrays)


for _name in ("logical_not", "any", "all", "argmax", "argmin", "detach", "rand_uniform",
              "quantize"):
    mp_vjp(_name)(_zeros_vjp)


@mp_impl("logical_not")
def logical_not(ctx, arrays, params):
    return emap(lambda v: ctx.one if _f(v) == 0 else ctx.zero, arrays[0])


def _truth(v) -> bool:
    x = _f(v)
    return x != 0          # NaN != 0 is true


@mp_impl("any")
def any_(ctx, arrays, params):
    return reduce_along(lambda row: ctx.one if any(_truth(v) for v in row) else ctx.zero,
                        arrays[0], params["axis"])


@mp_impl("all")
def all_(ctx, arrays, params):
    return reduce_along(lambda row: ctx.one if all(_truth(v) for v in row) else ctx.zero,
                        arrays[0], params["axis"])


def _argext(row, is_max):
    vals = [_f(v) for v in row]
    best = 0
    if math.isnan(vals[0]):
        return 0
    for j in range(1, len(vals)):
        if math.isnan(vals[j]):
            return j
        if (vals[j] > vals[best]) if is_max else (vals[j] < vals[best]):
            best = j
    return best


@mp_impl("argmax")
def argmax(ctx, arrays, params):
    return reduce_along(lambda row: ctx.mpf(_argext(row, True)), arrays[0], params["axis"])


@mp_impl("argmin")
def argmin(ctx, arrays, params):
    return reduce_along(lambda row: ctx.mpf(_argext(row, False)), arrays[0], params["axis"])


@mp_impl("detach")
def detach(ctx, arrays, params):
    return np.asarray(arrays[0], dtype=object).copy()


@mp_impl("rand_uniform")
def rand_uniform(ctx, arrays, params):
    x = arrays[0]
    out = np.empty(x.shape, dtype=object)
    s, c = params["seed"], params["counter"]
    out.reshape(-1)[:] = [ctx.mpf(uniform_value(s, c, i)) for i in range(x.size)]
    return out


# ---- clip_gradients ----------------------------------------------------------------

def _clip_case(g, max_norm):
    """"keep" (sum(g^2) <= m^2, or a NaN: the comparison is false), "inf" (an infinite
    element: N = inf) or "clip", decided exactly on the input floats."""
    vals = [_f(v) for v in g.reshape(-1)]
    if any(math.isnan(v) for v in vals):
        return "keep"
    if any(math.isinf(v) for v in vals):
        return "inf"
    s = sum(Fraction(v) * Fraction(v) for v in vals)
    m = Fraction(abs(float(max_norm)))
    return "clip" if s > m * m else "keep"


@mp_impl("clip_gradients")
def clip_gradients(ctx, arrays, params):
    g = np.asarray(arrays[0], dtype=object)
    case = _clip_case(g, params["max_norm"])
    if case == "keep":
        return g.copy()
    if case == "inf":
        return emap(lambda v: v * ctx.zero, g)
    n = ctx.sqrt(_fsum(ctx, [v * v for v in g.reshape(-1)]))
    c = ctx.mpf(abs(params["max_norm"])) / n
    return emap(lambda v: v * c, g)


@mp_vjp("clip_gradients")
def clip_gradients_vjp(ctx, arrays, params, out, gbar):
    g = np.asarray(arrays[0], dtype=object)
    gbar = np.asarray(gbar, dtype=object)
    case = _clip_case(g, params["max_norm"])
    if case == "keep":
        return (gbar.copy(),)
    if case == "inf":
        return (emap(lambda v: v * ctx.zero, gbar),)
    s = _fsum(ctx, [v * v for v in g.reshape(-1)])
    n = ctx.sqrt(s)
    c = ctx.mpf(abs(params["max_norm"])) / n
    d = _fsum(ctx, [a * b for a, b in zip(g.reshape(-1), gbar.reshape(-1))])
    t = d / s
    return (emap(lambda x, gb: c * (gb - x * t), g, gbar),)


# ---- clip_by_percentile --------------------------------------------------------------

def _bound(g, pct):
    """(k, b as a float): the percentile element's position (stable sort of |g|, NaN
    last, as the float backend) and |g_k|."""
    vals = [abs(_f(v)) for v in g.reshape(-1)]
    n = len(vals)
    if not n:
        return None, None
    r = (min(int(pct), 100) * (n - 1)) // 100
    order = sorted(range(n), key=lambda i: (math.isnan(vals[i]), 0.0 if math.isnan(vals[i])
                                            else vals[i]))
    k = order[r]
    return k, vals[k]


def _clamp_sym(ctx, v, b, bb):
    """clampSpec(v, -b, b) on the input float v and the bound b (a float; bb its ctx
    value): t = v if -b <= v else -b; b if b <= t else t."""
    x = _f(v)
    if math.isnan(b):
        return ctx.nan
    if not (-b <= x):
        return -bb
    return bb if b <= x else v


@mp_impl("clip_by_percentile")
def clip_by_percentile(ctx, arrays, params):
    g = np.asarray(arrays[0], dtype=object)
    k, b = _bound(g, params["pct"])
    if k is None:
        return g.copy()
    bb = ctx.fabs(g.reshape(-1)[k])
    return emap(lambda v: _clamp_sym(ctx, v, b, bb), g)


@mp_vjp("clip_by_percentile")
def clip_by_percentile_vjp(ctx, arrays, params, out, gbar):
    g = np.asarray(arrays[0], dtype=object)
    gbar = np.asarray(gbar, dtype=object)
    k, b = _bound(g, params["pct"])
    if k is None or math.isnan(b):
        return _zeros(ctx, [g])
    flat, gb = g.reshape(-1), gbar.reshape(-1)
    res = np.empty(flat.size, dtype=object)
    into_b = []
    for i in range(flat.size):
        x = _f(flat[i])
        if -b <= x <= b:
            res[i] = gb[i]
        else:
            res[i] = ctx.zero
            into_b.append(gb[i] if x > b else -gb[i])
        # NaN: y = -b, so -gbar flows into b (the else branch: not -b <= NaN)
    xk = _f(flat[k])
    sign = 1 if xk > 0 else (-1 if xk < 0 else 0)
    if sign:
        res[k] = _fsum(ctx, [res[k]] + [sign * t for t in into_b])
    return (res.reshape(g.shape),)


# ---- diagonal_scan -------------------------------------------------------------------

def _scan(ctx, a, b, h0):
    T = a.shape[0]
    h = np.empty(a.shape, dtype=object)
    prev = np.asarray(h0, dtype=object)
    for t in range(T):
        prev = emap(lambda at, p, bt: at * p + bt, a[t], prev, b[t])
        h[t] = prev
    return h


@mp_impl("diagonal_scan")
def diagonal_scan(ctx, arrays, params):
    a, b, h0 = (np.asarray(v, dtype=object) for v in arrays)
    return _scan(ctx, a, b, h0)


@mp_vjp("diagonal_scan")
def diagonal_scan_vjp(ctx, arrays, params, out, g):
    a, b, h0 = (np.asarray(v, dtype=object) for v in arrays)
    g = np.asarray(g, dtype=object)
    T = a.shape[0]
    h = _scan(ctx, a, b, h0)
    ga = np.empty(a.shape, dtype=object)
    gb = np.empty(a.shape, dtype=object)
    lam = None
    for t in range(T - 1, -1, -1):
        lam = g[t].copy() if t == T - 1 else emap(lambda gt, an, ln: gt + an * ln,
                                                   g[t], a[t + 1], lam)
        gb[t] = lam
        prev = h[t - 1] if t > 0 else h0
        ga[t] = emap(lambda ln, p: ln * p, lam, prev)
    gh0 = emap(lambda a0, ln: a0 * ln, a[0], lam) if T else _zeros(ctx, [h0])[0]
    return ga, gb, gh0


# ---- the affine quantizer ------------------------------------------------------------

def _round_half_even(q: Fraction) -> int:
    return round(q)       # Fraction.__round__: the nearest integer, ties to even


def _code(v, scale, z, qmin, qmax):
    x = _f(v)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return qmax if x > 0 else qmin
    k = _round_half_even(Fraction(x) / Fraction(scale)) + z
    return min(qmax, max(qmin, k))


@mp_impl("quantize")
def quantize(ctx, arrays, params):
    p = params

    def one(v):
        c = _code(v, p["scale"], p["zero_point"], p["qmin"], p["qmax"])
        return ctx.nan if c is None else ctx.mpf(c)
    return emap(one, arrays[0])


@mp_impl("dequantize")
def dequantize(ctx, arrays, params):
    s, z = ctx.mpf(params["scale"]), ctx.mpf(params["zero_point"])
    return emap(lambda k: s * (k - z), arrays[0])


@mp_vjp("dequantize")
def dequantize_vjp(ctx, arrays, params, out, g):
    s = ctx.mpf(params["scale"])
    return (emap(lambda v: s * v, np.asarray(g, dtype=object)),)
