"""mp formulas for the elementwise ops: the direct real-number definitions."""
from __future__ import annotations

from . import mp_impl, mp_vjp
from .mpctx import emap


@mp_impl("exp")
def exp(ctx, arrays, params):
    return emap(ctx.exp, arrays[0])


@mp_vjp("exp")
def exp_vjp(ctx, arrays, params, out, g):
    return (emap(lambda gi, yi: gi * yi, g, out),)
