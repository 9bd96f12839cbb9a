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


# ---- cosine similarity -----------------------------------------------------------------

def _clamped(ctx, ss, eps):
    """(max(sqrt(ss), eps), clamped?): |x| > eps compared as ss > eps**2 (exact on the
    squares, no square root in the test)."""
    e = ctx.mpf(eps)
    if ss > e * e:
        return ctx.sqrt(ss), False
    return e, True


def _cos_row(ctx, x, y, eps):
    dot = ctx.fsum(a * b for a, b in zip(x, y))
    sx, sy = ctx.fsum(a * a for a in x), ctx.fsum(b * b for b in y)
    nx, cx = _clamped(ctx, sx, eps)
    ny, cy = _clamped(ctx, sy, eps)
    return dot, sx, sy, nx, ny, cx, cy


def _cos_value(ctx, x, y, eps):
    if any(is_nan(ctx, v) or is_inf(ctx, v) for v in list(x) + list(y)):
        return ctx.nan
    dot, _, _, nx, ny, _, _ = _cos_row(ctx, x, y, eps)
    if nx == 0 or ny == 0:                     # eps = 0 and a zero vector: 0 / 0
        return ctx.nan
    return dot / (nx * ny)


def _cos_grads(ctx, x, y, eps, g):
    dot, sx, sy, nx, ny, cx, cy = _cos_row(ctx, x, y, eps)
    c = dot / (nx * ny)
    gx = [g * (b / (nx * ny) - (ctx.zero if cx else c * a / sx)) for a, b in zip(x, y)]
    gy = [g * (a / (nx * ny) - (ctx.zero if cy else c * b / sy)) for a, b in zip(x, y)]
    return gx, gy


def _rows2(x, y, axis):
    import numpy as np
    xm, ym = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    return xm, ym


@mp_impl("cosine_similarity")
def cosine_similarity(ctx, arrays, params):
    import numpy as np
    xm, ym = _rows2(*arrays, params["axis"])
    out = np.empty(xm.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = _cos_value(ctx, list(xm[idx]), list(ym[idx]), params["eps"])
    return out


@mp_vjp("cosine_similarity")
def cosine_similarity_vjp(ctx, arrays, params, out, g):
    import numpy as np
    axis = params["axis"]
    xm, ym = _rows2(*arrays, axis)
    gx, gy = np.empty(xm.shape, dtype=object), np.empty(xm.shape, dtype=object)
    for idx in np.ndindex(xm.shape[:-1]):
        a, b = _cos_grads(ctx, list(xm[idx]), list(ym[idx]), params["eps"], g[idx])
        gx[idx] = np.array(a, dtype=object)
        gy[idx] = np.array(b, dtype=object)
    return np.moveaxis(gx, -1, axis), np.moveaxis(gy, -1, axis)


@mp_impl("cosine_similarity_loss")
def cosine_similarity_loss(ctx, arrays, params):
    from .mpctx import scalar
    x, y = arrays
    return scalar(1 - _cos_value(ctx, list(x.ravel()), list(y.ravel()), params["eps"]))


@mp_vjp("cosine_similarity_loss")
def cosine_similarity_loss_vjp(ctx, arrays, params, out, g):
    import numpy as np
    x, y = arrays
    gv = g.ravel()[0] if g.ndim else g[()]
    a, b = _cos_grads(ctx, list(x.ravel()), list(y.ravel()), params["eps"], -gv)
    return (np.array(a, dtype=object).reshape(x.shape),
            np.array(b, dtype=object).reshape(y.shape))
