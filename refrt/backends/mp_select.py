"""The mp formula and VJP of ``where``: selection is exact in every context."""
from __future__ import annotations

from . import mp_impl, mp_vjp
from .mpctx import emap


@mp_impl("where")
def where(ctx, arrays, params):
    cond, x, y = arrays
    return emap(lambda c, a, b: a if c else b, cond, x, y)


@mp_vjp("where")
def where_vjp(ctx, arrays, params, out, g):
    # the unselected branch receives an exact zero (see refrt/_kernels/select.pyx (c))
    cond, x, y = arrays
    return (None, emap(lambda c, gi: gi if c else ctx.zero, cond, g),
            emap(lambda c, gi: ctx.zero if c else gi, cond, g))
