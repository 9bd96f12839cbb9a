"""mp formulas for the math2 ops (sin, cos, erf, gelu_erf, leaky_relu, log_sigmoid, prod):
the real-number definitions, written once against ``ctx`` (see ``mpctx``).

Besides the protocol's functions these use ``ctx.sin``, ``ctx.cos``, ``ctx.erf`` and
``ctx.erfc`` (mpmath's, and the certified ones of ``refrt._oracle_special``).
"""
from __future__ import annotations

from . import mp_impl, mp_vjp
from .mpctx import emap, is_inf, is_nan, reduce_along

# Below x = -2**33, gelu_erf(x) = x erfc(|x|/sqrt 2) / 2 has magnitude < 2**-(2**64): 0 in
# every float format by 2**64 binades.  mpmath's own erfc fails above t ~ 1e154 (a float
# overflow in its series test), so the plain-mpmath context uses the asymptotic form
# e^(-t^2) / (t sqrt pi) (1 - 1/(2t^2)) there, relative error < 3/(4 t^4) < 2**-130
# (A&S 7.1.24); the certified context bounds it rigorously (refrt/_oracle_special.py d).
HUGE = 2.0 ** 33


def _erfc_pos(ctx, x):
    """erfc(-x / sqrt 2) = 2 Phi(x), direct for x >= -HUGE (an input comparison)."""
    t = -x / ctx.sqrt(ctx.mpf(2))
    if x < -HUGE and not hasattr(ctx, "_erfc_end"):
        return ctx.exp(-(t * t)) / (t * ctx.sqrt(ctx.pi)) * (1 - 1 / (2 * t * t))
    return ctx.erfc(t)


def _pdf(ctx, x):
    return ctx.exp(-(x * x) / 2) / ctx.sqrt(2 * ctx.pi)


def _trig(f):
    def formula(ctx, p, x):
        if is_nan(ctx, x) or is_inf(ctx, x):
            return ctx.nan
        return getattr(ctx, f)(x)
    return formula


def _gelu_erf(ctx, p, x):
    if is_inf(ctx, x):
        return x if x > 0 else ctx.zero
    return x * _erfc_pos(ctx, x) / 2


def _gelu_erf_vjp(ctx, p, g, z, x):
    if is_inf(ctx, x):
        return (g if x > 0 else g * 0,)
    return (g * (_erfc_pos(ctx, x) / 2 + x * _pdf(ctx, x)),)


def _log_sigmoid(ctx, p, x):
    # log(1 / (1 + e^-x)) = -log1p(e^-x); for x < 0 the same number as x - log1p(e^x)
    if is_inf(ctx, x):
        return ctx.zero if x > 0 else ctx.ninf
    return -ctx.log1p(ctx.exp(-x))


UNARY = {
    "sin": _trig("sin"),
    "cos": _trig("cos"),
    "erf": lambda ctx, p, x: x if is_nan(ctx, x) else ctx.erf(x),
    "gelu_erf": _gelu_erf,
    "leaky_relu": lambda ctx, p, x: x if x > 0 or is_nan(ctx, x) else ctx.mpf(p["negative_slope"]) * x,
    "log_sigmoid": _log_sigmoid,
}

UNARY_VJP = {
    "sin": lambda ctx, p, g, z, x: (g * ctx.cos(x),),
    "cos": lambda ctx, p, g, z, x: (-g * ctx.sin(x),),
    "erf": lambda ctx, p, g, z, x: (g * 2 / ctx.sqrt(ctx.pi) * ctx.exp(-(x * x)),),
    "gelu_erf": _gelu_erf_vjp,
    "leaky_relu": lambda ctx, p, g, z, x: (g if x > 0 else g * ctx.mpf(p["negative_slope"]),),
    "log_sigmoid": lambda ctx, p, g, z, x: (g / (1 + ctx.exp(x)),),   # sigmoid(-x)
}


def _register(name, f, df):
    @mp_impl(name)
    def formula(ctx, arrays, params):
        return emap(lambda v: f(ctx, params, v), arrays[0])

    @mp_vjp(name)
    def vjp(ctx, arrays, params, out, g):
        return (emap(lambda gi, zi, v: df(ctx, params, gi, zi, v)[0], g, out, arrays[0]),)

    formula.__name__, vjp.__name__ = name, name + "_vjp"


for _name, _f in UNARY.items():
    _register(_name, _f, UNARY_VJP[_name])


def _product(ctx, values):
    out = ctx.one
    for v in values:
        out = out * v
    return out


@mp_impl("prod")
def prod(ctx, arrays, params):
    return reduce_along(lambda r: _product(ctx, r), arrays[0], params["axis"])


@mp_vjp("prod")
def prod_vjp(ctx, arrays, params, out, g):
    import numpy as np
    x, axis = arrays[0], params["axis"]
    if axis is None or x.ndim == 0:
        flat = list(x.ravel())
        gv = g.ravel()[0] if g.ndim else g[()]
        res = np.empty(x.shape, dtype=object)
        res.reshape(-1)[:] = [gv * _product(ctx, flat[:i] + flat[i + 1:])
                              for i in range(len(flat))] if flat else []
        if x.ndim == 0:
            res = np.empty((), dtype=object)
            res[()] = gv
        return (res,)
    xm = np.moveaxis(x, axis, -1)
    res = np.empty(xm.shape, dtype=object)
    for idx in np.ndindex(xm.shape[:-1]):
        row, gv = list(xm[idx]), g[idx]
        res[idx] = np.array([gv * _product(ctx, row[:i] + row[i + 1:])
                             for i in range(len(row))] or [], dtype=object) \
            if row else res[idx]
    return (np.moveaxis(res, -1, axis),)
