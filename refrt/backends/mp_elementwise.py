"""mp formulas for the elementwise ops: the direct real-number definitions.

Each op is a scalar function ``f(ctx, p, x[, y])`` (``p`` the params dict) and a scalar
VJP ``df(ctx, p, g, z, x[, y])`` returning one gradient per input (``z`` is the forward
result); the loops at the bottom lift them over object arrays and register them.

Rules (see refrt/backends/mpctx.py): only ``ctx`` functions and arithmetic, comparisons
only on input values and parameters, domain edges guarded explicitly.  mpmath has no
signed zero, so a division by a zero input follows the convention y = +0 (x / 0 = +inf
for x > 0, -inf for x < 0, NaN for x = 0 or NaN) unless ``mpctx.is_neg_zero`` marks it.  Where a textbook form
cancels at any fixed precision (1 + tanh(u) as u -> -inf, 1 - sigmoid(x) as x -> inf)
the formula uses an exactly equal form without the subtraction.
"""
from __future__ import annotations

from . import mp_impl, mp_vjp
from . import mpctx
from .mpctx import emap, is_inf, is_nan


def _is_neg_zero(ctx, v):
    """Whether input v was a float -0.0; needs a ``mpctx.is_neg_zero`` hook (to_ctx cannot
    mark it yet: mpmath has no signed zero), else every zero counts as +0."""
    hook = getattr(mpctx, "is_neg_zero", None)
    return bool(hook and hook(ctx, v))


def _over_zero(ctx, x, zero=None):
    """x / zero under IEEE rules, ``zero`` an input zero (+0 unless marked -0)."""
    if is_nan(ctx, x) or x == 0:
        return ctx.nan
    positive = (x > 0) != (zero is not None and _is_neg_zero(ctx, zero))
    return ctx.inf if positive else ctx.ninf


def _quot(ctx, a, b, zero=None):
    """a / b with IEEE division by zero (b == 0 exactly when an input is zero; ``zero``
    is that input when its sign decides, else the zero is +0)."""
    return _over_zero(ctx, a, zero) if b == 0 else a / b


def _sigmoid(ctx, x):
    return ctx.one / (ctx.one + ctx.exp(-x))


def _softplus(ctx, x):
    return ctx.log1p(ctx.exp(x))


def _is_integer(v):
    return v == int(v)


def _pow(ctx, x, y):
    """C99 pow on real numbers (Annex F special cases)."""
    if y == 0 or x == 1:
        return ctx.one
    if is_nan(ctx, x) or is_nan(ctx, y):
        return ctx.nan
    if x < 0:
        if is_inf(ctx, y):
            if x == -1:
                return ctx.one
            return ctx.inf if (x < -1) == (y > 0) else ctx.zero
        if not _is_integer(y):
            return ctx.nan
        mag = _pow(ctx, -x, y)
        return -mag if int(y) % 2 else mag
    if x == 0:
        return ctx.inf if y < 0 else ctx.zero
    return ctx.exp(y * ctx.log(x))


def _gelu_2u(ctx, x):
    """2u = 2 k (x + c x^3), k = sqrt(2/pi), c = 44715/1000000 (exact rational)."""
    k = ctx.sqrt(ctx.mpf(2) / ctx.pi)
    c = ctx.mpf(44715) / 1000000
    return 2 * k * (x + c * x * x * x), 2 * k * (1 + 3 * c * x * x)


def _gelu(ctx, p, x):
    # x (1 + tanh(u)) / 2 == x sigmoid(2u), since 1 + tanh(u) = 2 / (1 + e^-2u)
    if is_inf(ctx, x):
        return x if x > 0 else ctx.zero
    return x * _sigmoid(ctx, _gelu_2u(ctx, x)[0])


def _gelu_vjp(ctx, p, g, z, x):
    if is_inf(ctx, x):
        return (g if x > 0 else g * 0,)
    w, dw = _gelu_2u(ctx, x)
    s, sm = _sigmoid(ctx, w), _sigmoid(ctx, -w)
    return (g * (s + x * s * sm * dw),)   # 1 + t = 2s, 1 - t^2 = 4 s (1 - s)


def _clamp(ctx, p, x):
    lo, hi = ctx.mpf(p["lo"]), ctx.mpf(p["hi"])
    v = x if lo <= x else lo
    return hi if hi <= v else v


def _log(ctx, p, x):
    if x < 0:
        return ctx.nan
    return ctx.ninf if x == 0 else ctx.log(x)


def _log1p(ctx, p, x):
    if x < -1:
        return ctx.nan
    return ctx.ninf if x == -1 else ctx.log1p(x)


def _sign(ctx, p, x):
    if is_nan(ctx, x):
        return ctx.nan
    return ctx.one if x > 0 else (-ctx.one if x < 0 else ctx.zero)


def _safe_inv(ctx, p, x):
    eps = ctx.mpf(p["eps"])
    return _over_zero(ctx, ctx.one) if x == -eps else ctx.one / (x + eps)


def _safe_log(ctx, p, x):
    eps = ctx.mpf(p["eps"])
    if eps == 0 and x == ctx.ninf:
        return ctx.ninf
    return ctx.log(_softplus(ctx, x) + eps)


def _logistic(ctx, p, x):
    if x == ctx.inf:
        return ctx.one                       # e^x / (e^x + 1) -> 1
    e = ctx.exp(x)
    return e / (e + 1)


def _silu(ctx, p, x):
    if x == ctx.ninf:
        return ctx.zero                      # x sigmoid(x) -> 0
    return x / (ctx.one + ctx.exp(-x))


def _minimum(ctx, p, x, y):
    if is_nan(ctx, x) or is_nan(ctx, y):
        return ctx.nan
    return x if x <= y else y


def _maximum(ctx, p, x, y):
    if is_nan(ctx, x) or is_nan(ctx, y):
        return ctx.nan
    return x if x >= y else y


def _div(ctx, p, x, y):
    return _over_zero(ctx, x, y) if y == 0 else x / y


def _safe_div(ctx, p, x, y):
    eps = ctx.mpf(p["eps"])
    return _over_zero(ctx, x) if y == -eps else x / (y + eps)


def _dropout(ctx, p, x, mask):
    return x / ctx.mpf(p["keep"]) if mask != 0 else 0 * x


UNARY = {
    "neg": lambda ctx, p, x: -x,
    "abs": lambda ctx, p, x: ctx.fabs(x),
    "sign": _sign,
    "square": lambda ctx, p, x: x * x,
    "inv": lambda ctx, p, x: _over_zero(ctx, ctx.one, x) if x == 0 else ctx.one / x,
    "exp": lambda ctx, p, x: ctx.exp(x),
    "log": _log,
    "log1p": _log1p,
    "expm1": lambda ctx, p, x: ctx.expm1(x),
    "sqrt": lambda ctx, p, x: ctx.nan if x < 0 else ctx.sqrt(x),
    "sqrt_clamp": lambda ctx, p, x: ctx.sqrt(x) if x > 0 else (x if is_nan(ctx, x) else ctx.zero),
    "safe_inv": _safe_inv,
    "safe_log": _safe_log,
    "clamp": _clamp,
    "relu": lambda ctx, p, x: ctx.zero if x <= 0 else x,
    "sigmoid": lambda ctx, p, x: _sigmoid(ctx, x),
    "tanh": lambda ctx, p, x: ctx.tanh(x),
    "softplus": lambda ctx, p, x: _softplus(ctx, x),
    "logistic": _logistic,
    "silu": _silu,
    "gelu": _gelu,
    "smooth_abs": lambda ctx, p, x: ctx.sqrt(x * x + ctx.mpf(p["eps"])),
    "sinh": lambda ctx, p, x: ctx.sinh(x),
    "cosh": lambda ctx, p, x: ctx.cosh(x),
    "elu": lambda ctx, p, x: x if x > 0 else ctx.mpf(p["alpha"]) * ctx.expm1(x),
    "scale": lambda ctx, p, x: x * ctx.mpf(p["c"]),
}

BINARY = {
    "add": lambda ctx, p, x, y: x + y,
    "sub": lambda ctx, p, x, y: x - y,
    "mul": lambda ctx, p, x, y: x * y,
    "div": _div,
    "pow": lambda ctx, p, x, y: _pow(ctx, x, y),
    "safe_div": _safe_div,
    "minimum": _minimum,
    "maximum": _maximum,
    "fixed_mask_scale": lambda ctx, p, x, coeff: coeff * x,
    "fixed_inverted_dropout": _dropout,
}


# ---- VJPs: (ctx, p, g, z, x[, y]) -> tuple of gradients ------------------------------

def _tie_split(ctx, g, x, y, x_wins):
    if is_nan(ctx, x) or is_nan(ctx, y):
        return ctx.zero, ctx.zero
    if x == y:
        return g / 2, g / 2
    return (g, ctx.zero) if x_wins else (ctx.zero, g)


def _pow_vjp(ctx, p, g, z, x, y):
    # d/dy x**y = log(x) x**y is undefined for x < 0 as a real function of y (NaN, as the
    # float kernel's log of a negative number; mpmath would return a complex number)
    gy = ctx.zero if z == 0 else (ctx.nan if x < 0 else g * ctx.log(x) * z)
    return g * y * _pow(ctx, x, y - 1), gy


UNARY_VJP = {
    "neg": lambda ctx, p, g, z, x: (-g,),
    "abs": lambda ctx, p, g, z, x: (g if x > 0 else (-g if x < 0 else ctx.zero),),
    "sign": lambda ctx, p, g, z, x: (ctx.zero,),
    "square": lambda ctx, p, g, z, x: (2 * g * x,),
    "inv": lambda ctx, p, g, z, x: (_quot(ctx, -g, x * x),),
    "exp": lambda ctx, p, g, z, x: (g * ctx.exp(x),),
    "log": lambda ctx, p, g, z, x: (_quot(ctx, g, x, x),),
    "log1p": lambda ctx, p, g, z, x: (_quot(ctx, g, 1 + x),),
    "expm1": lambda ctx, p, g, z, x: (g * ctx.exp(x),),
    "sqrt": lambda ctx, p, g, z, x: (ctx.nan if x < 0 else _quot(ctx, g, 2 * ctx.sqrt(x), x),),
    "sqrt_clamp": lambda ctx, p, g, z, x: (g / (2 * ctx.sqrt(x)) if x > 0 else ctx.zero,),
    "safe_inv": lambda ctx, p, g, z, x: (_quot(ctx, -g, (x + ctx.mpf(p["eps"])) ** 2),),
    "safe_log": lambda ctx, p, g, z, x: (g * _sigmoid(ctx, x) /
                                         (_softplus(ctx, x) + ctx.mpf(p["eps"])),),
    "clamp": lambda ctx, p, g, z, x: (g if p["lo"] < x < p["hi"] else ctx.zero,),
    "relu": lambda ctx, p, g, z, x: (g if x > 0 else ctx.zero,),
    "sigmoid": lambda ctx, p, g, z, x: (g * _sigmoid(ctx, x) * _sigmoid(ctx, -x),),
    "tanh": lambda ctx, p, g, z, x: (g / ctx.cosh(x) ** 2,),
    "softplus": lambda ctx, p, g, z, x: (g * _sigmoid(ctx, x),),
    "logistic": lambda ctx, p, g, z, x: (g * _sigmoid(ctx, x) * _sigmoid(ctx, -x),),
    "silu": lambda ctx, p, g, z, x: (g * 0 if x == ctx.ninf else      # the limit, as silu(-inf)
                                     g * _sigmoid(ctx, x) * (1 + x * _sigmoid(ctx, -x)),),
    "gelu": _gelu_vjp,
    "smooth_abs": lambda ctx, p, g, z, x: (_quot(ctx, g * x, ctx.sqrt(x * x + ctx.mpf(p["eps"]))),),
    "sinh": lambda ctx, p, g, z, x: (g * ctx.cosh(x),),
    "cosh": lambda ctx, p, g, z, x: (g * ctx.sinh(x),),
    "elu": lambda ctx, p, g, z, x: (g if x > 0 else g * ctx.mpf(p["alpha"]) * ctx.exp(x),),
    "scale": lambda ctx, p, g, z, x: (g * ctx.mpf(p["c"]),),
}

BINARY_VJP = {
    "add": lambda ctx, p, g, z, x, y: (g, g),
    "sub": lambda ctx, p, g, z, x, y: (g, -g),
    "mul": lambda ctx, p, g, z, x, y: (g * y, g * x),
    "div": lambda ctx, p, g, z, x, y: (_quot(ctx, g, y, y), _quot(ctx, -g * x, y * y)),
    "pow": _pow_vjp,
    "safe_div": lambda ctx, p, g, z, x, y: (_quot(ctx, g, y + ctx.mpf(p["eps"])),
                                            _quot(ctx, -g * x, (y + ctx.mpf(p["eps"])) ** 2)),
    "minimum": lambda ctx, p, g, z, x, y: _tie_split(ctx, g, x, y, x < y),
    "maximum": lambda ctx, p, g, z, x, y: _tie_split(ctx, g, x, y, x > y),
    "fixed_mask_scale": lambda ctx, p, g, z, x, coeff: (g * coeff, None),
    "fixed_inverted_dropout": lambda ctx, p, g, z, x, mask: (
        g / ctx.mpf(p["keep"]) if mask != 0 else 0 * g, None),
}


# inputs that receive no gradient (their VJP entry is None)
NO_GRAD = {"fixed_mask_scale": 1, "fixed_inverted_dropout": 1}


def _register(name, f, df):
    @mp_impl(name)
    def formula(ctx, arrays, params):
        return emap(lambda *v: f(ctx, params, *v), *arrays)

    @mp_vjp(name)
    def vjp(ctx, arrays, params, out, g):
        grads = emap(lambda gi, zi, *v: df(ctx, params, gi, zi, *v), g, out, *arrays)
        return tuple(None if NO_GRAD.get(name) == k else emap(lambda t: t[k], grads)
                     for k in range(len(arrays)))

    formula.__name__, vjp.__name__ = name, name + "_vjp"


for _name, _f in UNARY.items():
    _register(_name, _f, UNARY_VJP[_name])
for _name, _f in BINARY.items():
    _register(_name, _f, BINARY_VJP[_name])
