"""Bind the attention kernels (``refrt._kernels.attention``) to op names.

The binding flattens leading (batch, head) dims to one batch axis B, materialises the
mask as uint8 (B, L, S) (data movement) and rounds the scale to a double-word: the
default 1/sqrt(E) as hi + lo (hi the correctly rounded value, lo the rounded remainder,
from a 128-bit private mpmath context), a given scale as (scale, 0).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np

from .._kernels import attention as K
from . import float_impl, float_vjp
from .float_reductions import SM, _as_rows, _from_rows

_DUMMY = np.ones(1, dtype=np.uint8)


def scale_dw(E, scale, dtype):
    """(hi, lo) in ``dtype`` with hi + lo = the score multiplier to ~2p bits."""
    if scale is not None:
        return dtype.type(scale), dtype.type(0)
    if E == 0:
        return dtype.type(1), dtype.type(0)
    ctx = mpmath.MPContext()
    ctx.prec = 128
    exact = 1 / ctx.sqrt(E)
    hi = dtype.type(float(exact))
    lo = dtype.type(float(exact - ctx.mpf(float(hi))))
    return hi, lo


def dims(q, k, v):
    L, E = q.shape[-2:]
    S, Ev = k.shape[-2], v.shape[-1]
    B = int(np.prod(q.shape[:-2], dtype=np.int64))
    return B, L, S, E, Ev


def _mask(params):
    m = params.get("mask")
    if m is None:
        return _DUMMY, False
    return np.ascontiguousarray(m, dtype=np.uint8).reshape(-1), True


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


@float_impl("scaled_dot_product_attention")
def sdpa(arrays, params, threads):
    q, k, v = arrays
    B, L, S, E, Ev = dims(q, k, v)
    out = np.zeros(q.shape[:-1] + (Ev,), dtype=q.dtype)
    if out.size:
        m, has = _mask(params)
        hi, lo = scale_dw(E, params.get("scale"), q.dtype)
        K.sdpa_fwd(_flat(q), _flat(k), _flat(v), m, has, hi, lo, B, L, S, E, Ev,
                   out.reshape(-1), threads)
    return out


@float_vjp("scaled_dot_product_attention")
def sdpa_vjp(arrays, params, out, g, threads):
    q, k, v = arrays
    B, L, S, E, Ev = dims(q, k, v)
    gq, gk, gv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    if B and L and S:
        m, has = _mask(params)
        hi, lo = scale_dw(E, params.get("scale"), q.dtype)
        g = np.ascontiguousarray(g, dtype=q.dtype).reshape(-1)
        K.sdpa_vjp(_flat(q), _flat(k), _flat(v), m, has, hi, lo, B, L, S, E, Ev, g,
                   gq.reshape(-1), gk.reshape(-1), gv.reshape(-1), threads)
    return gq, gk, gv


# ---- hard-masked softmax (TorchLean hardMaskedSoftmaxSpec) ---------------------------------
# SDPA's rule on given scores: blocked entries become -inf (data movement) and the rows go
# through refrt's softmax row kernel (refrt/_kernels/softmax.pyx: max shift, one exp per
# entry, exp(-inf) = 0 exactly); a row whose every entry is blocked comes back NaN from it
# (all -inf) and every blocked entry is then set to +0, which gives that row zeros.

def _hms_rows(x, m, axis):
    x1 = x.reshape(1) if x.ndim == 0 else x
    m1 = np.broadcast_to(m, x.shape).reshape(x1.shape)
    ax = x1.ndim - 1 if x.ndim == 0 else axis
    rows, moved = _as_rows(np.where(m1, x1, x1.dtype.type(-np.inf)), ax)
    mrows, _ = _as_rows(np.ascontiguousarray(m1), ax)
    return rows, mrows, moved, ax, x1


@float_impl("hard_masked_softmax")
def hard_masked_softmax(arrays, params, threads):
    x, m = arrays
    rows, mrows, moved, ax, x1 = _hms_rows(x, m, params["axis"])
    y = np.empty_like(rows)
    with np.errstate(invalid="ignore"):
        SM.softmax_rows(rows, y, threads)
    y = np.where(mrows, y, x.dtype.type(0))
    return _from_rows(y, moved, ax, x1.ndim).reshape(x.shape)


@float_vjp("hard_masked_softmax")
def hard_masked_softmax_vjp(arrays, params, out, g, threads):
    """softmax's VJP kernel y (g - <y, g>) with g set to 0 on blocked entries (their y is
    0: they add nothing to <y, g>, and an inf cotangent there is never read)."""
    x, m = arrays
    _, mrows, moved, ax, x1 = _hms_rows(x, m, params["axis"])
    y, _ = _as_rows(np.asarray(out, x.dtype).reshape(x1.shape), ax)
    g2, _ = _as_rows(np.asarray(g, x.dtype).reshape(x1.shape), ax)
    g2 = np.where(mrows, g2, x.dtype.type(0))
    gx = np.empty_like(y)
    SM.softmax_vjp(np.ascontiguousarray(y), np.ascontiguousarray(g2), gx, threads)
    gx = np.where(mrows, gx, x.dtype.type(0))
    return _from_rows(gx, moved, ax, x1.ndim).reshape(x.shape), None
