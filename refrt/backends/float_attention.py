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
