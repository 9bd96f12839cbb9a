"""Bind the elementwise kernels to op names (float32/float64)."""
from __future__ import annotations

import numpy as np

from .._kernels import elementwise as K
from . import float_impl, float_vjp


def _flat_out(a):
    return np.empty(a.size, dtype=a.dtype)


@float_impl("exp")
def exp(arrays, params, threads):
    (x,) = arrays
    out = _flat_out(x)
    K.exp_fwd(x.reshape(-1), out, threads)
    return out.reshape(x.shape)


@float_vjp("exp")
def exp_vjp(arrays, params, out, g, threads):
    gx = np.empty(g.size, dtype=g.dtype)
    K.exp_vjp(np.ascontiguousarray(g).reshape(-1), out.reshape(-1), gx, threads)
    return (gx.reshape(g.shape),)
