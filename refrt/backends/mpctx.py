"""The context protocol that mp formulas are written against, and array helpers.

A formula sees only ``ctx`` and object arrays of ``ctx`` numbers.  It may use
``ctx.mpf``, ``+ - * /`` and unary minus, ``ctx.exp, log, log1p, expm1, sqrt, tanh,
sinh, cosh, fsum, fabs``, the constants ``ctx.zero, ctx.one, ctx.inf, ctx.ninf,
ctx.nan``, and the predicates below.  Comparisons (``<``, ``>``, ``==``) are made only
on *input* values, which are exact; that is what lets the oracle run the same formula
in an interval or an exact-rational context.

Domain edges are handled explicitly (mpmath would return a complex number for
``sqrt(-1)``): a limit gives +-inf (``log(0) = -inf``), an undefined value gives NaN.
"""
from __future__ import annotations

import threading

import numpy as np
import mpmath

# mpmath memoises constants (pi, ln2, ...) in function attributes shared by every
# context, writing the value and its precision non-atomically; concurrent evaluations at
# different precisions could read a constant at the wrong precision.  Every mp
# evaluation in refrt (the mp backend and the oracle) holds this lock; mpmath is pure
# Python under the GIL, so it costs no parallelism.
MPMATH_LOCK = threading.RLock()


# Contexts are reused per precision: mpmath.MPContext() costs ~50 us (it builds its
# function table), and a `refrt check` run built ~870 of them.  One cache per thread, so
# a context's working precision (``workprec`` inside a formula) is never shared between
# threads; the precision is set again on every hand-out in case a caller changed it.
_CONTEXTS = threading.local()


def make_context(prec: int) -> mpmath.MPContext:
    """A private mpmath context at ``prec`` bits (reused per precision and thread):
    never touches ``mpmath.mp``."""
    prec = int(prec)
    cache = getattr(_CONTEXTS, "by_prec", None)
    if cache is None:
        cache = _CONTEXTS.by_prec = {}
    ctx = cache.get(prec)
    if ctx is None:
        if len(cache) > 64:            # precisions come from a short Ziv ladder
            cache.clear()
        ctx = cache[prec] = mpmath.MPContext()
    ctx.prec = prec
    return ctx


def to_ctx(ctx, a: np.ndarray) -> np.ndarray:
    """Exact conversion of a float array to an object array of ctx numbers.

    Integer arrays (class ids) are returned unchanged.
    """
    if a.dtype.kind in "iub":
        return a
    flat = [ctx.mpf(float(v)) for v in a.ravel().tolist()]
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = flat if flat else []
    if a.ndim == 0:
        out = np.empty((), dtype=object)
        out[()] = flat[0]
    return out


def emap(fn, *arrays) -> np.ndarray:
    """Apply a scalar function elementwise over object arrays; always returns an
    object ndarray (0-d included)."""
    shape = arrays[0].shape
    res = np.empty(shape, dtype=object)
    flats = [a.ravel() for a in arrays]
    out = res.ravel() if res.ndim else res.reshape(1)
    for i in range(out.size):
        out[i] = fn(*(f[i] for f in flats))
    return res


def along(fn, x: np.ndarray, axis, *more) -> np.ndarray:
    """Apply ``fn(row, *more_rows) -> list`` to every 1-d slice along ``axis`` (same-shape
    result), or ``fn(row) -> scalar`` when reducing: see ``reduce_along``."""
    xm = np.moveaxis(x, axis, -1)
    mm = [np.moveaxis(m, axis, -1) for m in more]
    out = np.empty(xm.shape, dtype=object)
    for idx in np.ndindex(xm.shape[:-1]):
        out[idx] = np.asarray(fn(list(xm[idx]), *(list(m[idx]) for m in mm)) or [], dtype=object) \
            if xm.shape[-1] else out[idx]
    return np.moveaxis(out, -1, axis)


def reduce_along(fn, x: np.ndarray, axis) -> np.ndarray:
    """Apply ``fn(list) -> scalar`` along ``axis`` (``None``: over all elements)."""
    if axis is None:
        res = np.empty((), dtype=object)
        res[()] = fn(list(x.ravel()))
        return res
    xm = np.moveaxis(x, axis, -1)
    out = np.empty(xm.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(list(xm[idx]))
    return out


def scalar(value) -> np.ndarray:
    res = np.empty((), dtype=object)
    res[()] = value
    return res


def is_nan(ctx, v) -> bool:
    return bool(ctx.isnan(v))


def is_inf(ctx, v) -> bool:
    return bool(ctx.isinf(v))
