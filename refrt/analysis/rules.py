"""Unsafe-op rules: the danger zones an op's argument must stay out of, as data.

Two sources, both tables:
* every array argument with a registry domain other than the reals (``Arg.domain``:
  log's (0, inf), sqrt's [0, inf), log1p's (-1, inf), pow's base, the probabilities of
  the losses, batch norm's running variance, ...): the zone is the domain's complement;
* ``EXTRA``: zones that are not a domain because the real function is defined there but
  the float one is not: a divisor that is 0 (div, inv; safe_div/safe_inv at y = -eps,
  where y + eps is exactly 0 in IEEE addition), and exp-like arguments above the dtype's
  overflow threshold.

The thresholds are the dtype's exact limits: exp overflows once e^x exceeds the largest
finite float, x > ln(max) (88.7228... in float32, 709.78... in float64), lowered by the
op's registry tolerance (a kernel within k ulps may round up to inf slightly earlier);
cosh/sinh at acosh/asinh(max) likewise.  DEBAR's rounded constants (1e38, 1e-37) are not
used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

from ..domains import REALS
from ..registry import OPS
from .domain import INF


@dataclass(frozen=True)
class Zone:
    """A danger zone [low, high] (ends open or closed) of one argument, in words."""

    arg: str
    low: float
    high: float
    low_open: bool
    high_open: bool
    words: str

    def reached(self, lo, hi):
        """Elementwise: whether [lo, hi] meets the zone."""
        a = (hi > self.low) if self.low_open else (hi >= self.low)
        b = (lo < self.high) if self.high_open else (lo <= self.high)
        return a & b

    def meet(self, lo, hi):
        """The part of [lo, hi] inside the zone (scalars)."""
        return max(lo, self.low), min(hi, self.high)

    def contains(self, v):
        v = np.asarray(v, dtype=np.float64)
        a = (v > self.low) if self.low_open else (v >= self.low)
        b = (v < self.high) if self.high_open else (v <= self.high)
        return a & b

    def interval(self):
        lb = "(" if self.low_open else "["
        rb = ")" if self.high_open else "]"
        return f"{lb}{_fmt(self.low)}, {_fmt(self.high)}{rb}"


def _fmt(v):
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.9g}"


def _overflow_threshold(fn, dtype, ulps):
    """The real x above which fn(x) exceeds the dtype's max, lowered by ``ulps`` relative
    (the kernel's error), rounded down to float64."""
    fmax = float(np.finfo(dtype).max)
    ctx = mpmath.MPContext()
    ctx.prec = 80
    t = fn(ctx, ctx.mpf(fmax))
    t = t * (1 - ctx.mpf(ulps) * ctx.mpf(float(np.finfo(dtype).eps)))
    return float(ctx.nstr(t, 20)) * (1 - 2.0 ** -50)


def _domain_zones(spec):
    zones = []
    for a in spec.args:
        if a.role in ("condition", "class_target", "index") or a.domain == REALS:
            continue
        d = a.domain
        if d.low > -INF:
            zones.append(Zone(a.name, -INF, d.low, True, d.low_inclusive,
                              f"argument '{a.name}' below the domain {d}"))
        if d.high < INF:
            zones.append(Zone(a.name, d.high, INF, d.high_inclusive, True,
                              f"argument '{a.name}' above the domain {d}"))
    return zones


def _zero(arg, what="divisor"):
    return lambda dtype, p: [Zone(arg, 0.0, 0.0, False, False, f"{what} '{arg}' = 0 "
                                  "(division by zero)")]


def _minus_eps(arg):
    def z(dtype, p):
        e = -float(np.asarray(p["eps"], dtype))
        return [Zone(arg, e, e, False, False, f"'{arg}' = -eps: {arg} + eps is exactly 0 "
                     "(division by zero)")]
    return z


def _exp_like(fn, words, sym=False):
    def z(dtype, p, op=None):
        tol = OPS[op].tol[dtype] if op else 0
        t = _overflow_threshold(fn, dtype, tol + 1)
        zs = [Zone("x", t, INF, False, True, f"argument 'x' above {words} overflow "
                   f"threshold {t:.9g} ({np.dtype(dtype).name} max = "
                   f"{float(np.finfo(dtype).max):.9g})")]
        if sym:
            zs.append(Zone("x", -INF, -t, True, False, f"argument 'x' below -{t:.9g} "
                           f"({words} overflows)"))
        return zs
    return z


# op -> zone maker(dtype, validated params) for the dangers that are not domains
EXTRA = {
    "div": _zero("y"),
    "inv": _zero("x"),
    "safe_div": _minus_eps("y"),
    "safe_inv": _minus_eps("x"),
    "exp": _exp_like(lambda c, m: c.log(m), "exp's"),
    "expm1": _exp_like(lambda c, m: c.log(m + 1), "expm1's"),
    "cosh": _exp_like(lambda c, m: c.acosh(m), "cosh's", sym=True),
    "sinh": _exp_like(lambda c, m: c.asinh(m), "sinh's", sym=True),
}

_CACHE = {}


def zones(op, dtype, params):
    """Every danger zone of ``op`` at ``dtype`` (empty when the op has none)."""
    dtype = np.dtype(dtype)
    key = (op, dtype.name, repr(sorted((k, v) for k, v in params.items()
                                       if k == "eps")))
    if key not in _CACHE:
        zs = _domain_zones(OPS[op])
        maker = EXTRA.get(op)
        if maker is not None:
            try:
                zs += maker(dtype, params, op=op)
            except TypeError:
                zs += maker(dtype, params)
        _CACHE[key] = zs
    return _CACHE[key]


def has_rules(op):
    return op in EXTRA or bool(_domain_zones(OPS[op]))


UNSAFE_OPS = tuple(n for n in OPS if has_rules(n))
